//! Removing Authentication-Results fields that claim our authserv-id
//! before a message is stored (RFC 8601 section 5: a receiver MUST remove
//! or rename such fields arriving from outside, or a sender could write
//! our verdict for us). Removed rather than renamed: the fields are
//! forgeries or stale, and a renamed one would still be read by filters
//! that match on the value.

/// The header section `header` (fields, each ending in CRLF, and possibly
/// the empty line ending the section) without the Authentication-Results
/// fields whose authserv-id is `authserv_id` (ASCII case-insensitive),
/// and how many were removed.
pub fn remove_forged(header: &[u8], authserv_id: &str) -> (Vec<u8>, usize) {
    let mut kept = Vec::with_capacity(header.len());
    let mut removed = 0;
    for field in fields(header) {
        if claims(field, authserv_id) {
            removed += 1;
        } else {
            kept.extend_from_slice(field);
        }
    }
    (kept, removed)
}

/// The fields of a header section, each with its folded continuation
/// lines and line ends (the ending empty line comes last, on its own).
fn fields(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = header;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = 0;
        loop {
            end += rest[end..].iter().position(|&b| b == b'\n').map_or(rest.len() - end, |i| i + 1);
            // The empty line ends the section: never a continuation.
            let first_line = &rest[..end];
            if first_line == b"\r\n" || first_line == b"\n" {
                break;
            }
            match rest.get(end) {
                Some(b' ' | b'\t') => continue,
                _ => break,
            }
        }
        let (field, tail) = rest.split_at(end);
        rest = tail;
        Some(field)
    })
}

/// Whether `field` is an Authentication-Results field naming
/// `authserv_id` (RFC 8601 section 2.2: the value starts with the
/// authserv-id, after optional CFWS; a quoted-string is compared by its
/// content).
fn claims(field: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = field.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = field[..colon].trim_ascii_end();
    if !name.eq_ignore_ascii_case(b"Authentication-Results") {
        return false;
    }
    let value = skip_cfws(&field[colon + 1..]);
    let id = match value.first() {
        Some(b'"') => {
            let inner = &value[1..];
            &inner[..inner.iter().position(|&b| b == b'"').unwrap_or(inner.len())]
        }
        _ => {
            let end = value
                .iter()
                .position(|&b| matches!(b, b';' | b'(' | b' ' | b'\t' | b'\r' | b'\n'))
                .unwrap_or(value.len());
            &value[..end]
        }
    };
    id.eq_ignore_ascii_case(authserv_id.as_bytes())
}

/// `value` without its leading whitespace, line breaks and comments
/// (nested, as RFC 5322 section 3.2.2 allows).
fn skip_cfws(mut value: &[u8]) -> &[u8] {
    loop {
        value = value.trim_ascii_start();
        if value.first() != Some(&b'(') {
            return value;
        }
        let mut depth = 0usize;
        let mut end = value.len();
        let mut escaped = false;
        for (i, &b) in value.iter().enumerate() {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        value = &value[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::remove_forged;

    #[test]
    fn only_fields_naming_our_authserv_id_are_removed() {
        let header = b"Received: from x\r\n\tby y\r\n\
            Authentication-Results: mx.test; spf=pass\r\n\
            authentication-results:  (comment (nested)) \"MX.Test\";\r\n\tdkim=pass\r\n\
            Authentication-Results:\r\n mx.test;\r\n dmarc=pass\r\n\
            Authentication-Results: mx.test.evil; spf=pass\r\n\
            Authentication-Results: other.example; dkim=pass header.d=mx.test\r\n\
            X-Authentication-Results: mx.test; spf=pass\r\n\
            Subject: hi\r\n\
            \r\n";
        let (kept, removed) = remove_forged(header, "mx.test");
        assert_eq!(removed, 3);
        assert_eq!(
            String::from_utf8(kept).unwrap(),
            "Received: from x\r\n\tby y\r\n\
             Authentication-Results: mx.test.evil; spf=pass\r\n\
             Authentication-Results: other.example; dkim=pass header.d=mx.test\r\n\
             X-Authentication-Results: mx.test; spf=pass\r\n\
             Subject: hi\r\n\
             \r\n"
        );
    }

    #[test]
    fn a_section_without_forgeries_is_kept_byte_for_byte() {
        for header in [&b""[..], b"\r\n", b"A: 1\r\n\r\n", b"A: 1\r\n", b"No colon at all"] {
            assert_eq!(remove_forged(header, "mx.test"), (header.to_vec(), 0));
        }
    }
}
