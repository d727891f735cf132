//! Splitting a forward-path into its local part and domain, as the guest
//! hands it over: without angle brackets and without a source route
//! (`<@a,@b:user@c>` arrives as `user@c`), otherwise exactly as the client
//! wrote it.

/// Splits `forward_path` into `(local part, domain)` at its last `@` (RFC
/// 5321 section 4.1.2: a quoted local part such as `"user@other"` may hold
/// `@`, a domain never does). No `@` at all, as in the bare `postmaster`
/// RFC 5321 section 4.1.1.3 allows, gives no domain.
///
/// Both are returned as written: a domain is compared case-insensitively
/// (ASCII), by lowering or `eq_ignore_ascii_case`, and nothing else is
/// "fixed": `user@example.org.` (trailing dot), `user@[192.0.2.1]`
/// (address literal), `user%other@example.org` and `a!b@example.org` keep
/// their domain as written, and a domain that is not exactly one of ours
/// after lowering is not ours; the relay decision depends on that.
pub fn split(forward_path: &str) -> (&str, Option<&str>) {
    match forward_path.rsplit_once('@') {
        Some((local_part, domain)) => (local_part, Some(domain)),
        None => (forward_path, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn the_domain_is_after_the_last_at_and_nothing_is_fixed() {
        for (path, local_part, domain) in [
            ("user@example.org", "user", Some("example.org")),
            ("\"a b\"@example.org", "\"a b\"", Some("example.org")),
            ("\"user@other\"@example.org", "\"user@other\"", Some("example.org")),
            ("postmaster", "postmaster", None),
            ("user@[192.0.2.1]", "user", Some("[192.0.2.1]")),
            ("user@example.org.", "user", Some("example.org.")),
            ("USER@EXAMPLE.ORG", "USER", Some("EXAMPLE.ORG")),
            ("a!b@example.org", "a!b", Some("example.org")),
            ("user%other@example.org", "user%other", Some("example.org")),
        ] {
            assert_eq!(split(path), (local_part, domain), "{path}");
        }
    }

    #[test]
    fn the_domain_compares_case_insensitively_but_exactly() {
        let (_, domain) = split("USER@EXAMPLE.ORG");
        assert!(domain.unwrap().eq_ignore_ascii_case("example.org"));
        let (_, domain) = split("user@example.org.");
        assert!(!domain.unwrap().eq_ignore_ascii_case("example.org"));
    }
}
