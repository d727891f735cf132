use super::*;

fn domains() -> Domains {
    Domains::parse(&["example.org", "Example.NET"]).unwrap()
}

fn table(text: &str) -> RecipientTable {
    RecipientTable::parse(text, "rcpt", &domains(), "+").unwrap()
}

fn mailbox(address: &str) -> Destination {
    let (user, domain) = address.split_once('@').unwrap();
    Destination::Mailbox(Mailbox::new(user, domain).unwrap())
}

fn found(table: &RecipientTable, forward_path: &str) -> Vec<Destination> {
    match table.lookup(forward_path) {
        Lookup::Found(destinations) => destinations.to_vec(),
        other => panic!("{forward_path}: {other:?}"),
    }
}

const TABLE: &str = "\
# mailboxes
alice@example.org      alice@example.org
bob@example.org        bob@example.org
# an alias to several mailboxes, a copy kept elsewhere, one target twice
sales@example.org      alice@example.org, bob@example.org
                       Carol@Elsewhere.Example alice@example.org
postmaster@example.org alice@example.org
bob+list@example.org   bob@example.org, list-archive@lists.example
@example.net           bob@example.org
";

#[test]
fn an_alias_reaches_each_of_its_mailboxes_once_and_forwards_the_rest() {
    let table = table(TABLE);
    assert_eq!(table.len(), 6);
    assert_eq!(found(&table, "alice@example.org"), [mailbox("alice@example.org")]);
    assert_eq!(
        found(&table, "sales@example.org"),
        [
            mailbox("alice@example.org"),
            mailbox("bob@example.org"),
            Destination::Outgoing("carol@elsewhere.example".into()),
        ]
    );
}

#[test]
fn keys_and_domains_match_case_insensitively() {
    let table = table("ALICE@EXAMPLE.ORG alice@example.org\n");
    for forward_path in ["alice@example.org", "ALICE@EXAMPLE.ORG", "Alice@Example.Org"] {
        assert_eq!(found(&table, forward_path), [mailbox("alice@example.org")], "{forward_path}");
    }
    // A domain configured in upper case is ours in any case.
    let table = RecipientTable::parse("@EXAMPLE.net bob@example.org\n", "rcpt", &domains(), "+").unwrap();
    assert_eq!(found(&table, "anyone@eXample.NET"), [mailbox("bob@example.org")]);
}

#[test]
fn subaddresses_find_their_user_and_an_exact_key_comes_first() {
    let table = table(TABLE);
    for forward_path in ["bob+tag@example.org", "BOB+Tag@example.org", "bob+@example.org", "bob+a+b@example.org"] {
        assert_eq!(found(&table, forward_path), [mailbox("bob@example.org")], "{forward_path}");
    }
    assert_eq!(
        found(&table, "bob+list@example.org"),
        [mailbox("bob@example.org"), Destination::Outgoing("list-archive@lists.example".into())]
    );
    // The user before the delimiter must itself be a key (or the domain
    // have a catch-all).
    assert_eq!(table.lookup("carol+tag@example.org"), Lookup::Unknown);
    // The catch-all of the subaddress's own domain, never another's.
    assert_eq!(found(&table, "carol+tag@example.net"), [mailbox("bob@example.org")]);
}

#[test]
fn a_local_part_starting_with_the_delimiter_is_not_split() {
    let table = table(TABLE);
    // `+tag` would split into no user at all: it is an unknown user like
    // any other, which only a catch-all takes.
    assert_eq!(table.lookup("+tag@example.org"), Lookup::Unknown);
    assert_eq!(table.lookup("+@example.org"), Lookup::Unknown);
    assert_eq!(found(&table, "+tag@example.net"), [mailbox("bob@example.org")]);
}

#[test]
fn the_delimiter_is_configurable_as_a_set_or_off() {
    let text = "bob@example.org bob@example.org\n";
    let dash = RecipientTable::parse(text, "rcpt", &domains(), "-").unwrap();
    assert_eq!(found(&dash, "bob-tag@example.org"), [mailbox("bob@example.org")]);
    assert_eq!(dash.lookup("bob+tag@example.org"), Lookup::Unknown);
    let either = RecipientTable::parse(text, "rcpt", &domains(), "+-").unwrap();
    for forward_path in ["bob-tag@example.org", "bob+tag@example.org", "bob-a+b@example.org", "bob+a-b@example.org"] {
        assert_eq!(found(&either, forward_path), [mailbox("bob@example.org")], "{forward_path}");
    }
    let off = RecipientTable::parse(text, "rcpt", &domains(), "").unwrap();
    assert_eq!(off.lookup("bob+tag@example.org"), Lookup::Unknown);
    assert_eq!(found(&off, "bob@example.org"), [mailbox("bob@example.org")]);
}

#[test]
fn a_catch_all_takes_unknown_users_of_its_own_domain_only() {
    let table = table(TABLE);
    assert_eq!(found(&table, "nobody@example.net"), [mailbox("bob@example.org")]);
    assert_eq!(found(&table, "NOBODY@EXAMPLE.NET"), [mailbox("bob@example.org")]);
    assert_eq!(table.lookup("nobody@example.org"), Lookup::Unknown);
}

#[test]
fn a_bare_postmaster_is_the_first_domains_postmaster() {
    let table = table(TABLE);
    assert_eq!(found(&table, "postmaster"), [mailbox("alice@example.org")]);
    assert_eq!(found(&table, "PostMaster"), [mailbox("alice@example.org")]);
    assert_eq!(table.lookup("abuse"), Lookup::NotLocal, "only postmaster may come without a domain");
    let unlisted = self::table("alice@example.org alice@example.org\n");
    assert_eq!(unlisted.lookup("postmaster"), Lookup::Unknown);
    let none = RecipientTable::parse("", "rcpt", &Domains::default(), "+").unwrap();
    assert!(none.is_empty());
    assert_eq!(none.lookup("postmaster"), Lookup::NotLocal);
}

#[test]
fn forward_paths_are_ours_only_exactly_as_written() {
    let table = table(TABLE);
    for not_local in [
        "alice@example.org.",
        "alice@[192.0.2.1]",
        "alice@elsewhere.example",
        "alice@sub.example.org",
        "alice@example.org@elsewhere.example",
    ] {
        assert_eq!(table.lookup(not_local), Lookup::NotLocal, "{not_local}");
    }
    // Open-relay probes at our domain stay local (and unknown here): the
    // part before the last `@` is only ever a local part.
    for unknown in [
        "alice%elsewhere.example@example.org",
        "elsewhere.example!alice@example.org",
        "\"alice@elsewhere.example\"@example.org",
        "\"alice\"@example.org",
        "\"a b\"@example.org",
    ] {
        assert_eq!(table.lookup(unknown), Lookup::Unknown, "{unknown}");
    }
}

/// The error for `text`, which must start with `rcpt:LINE: ` and hold each
/// of `words`.
fn refused(text: &str, line: usize, words: &[&str]) {
    let err = match RecipientTable::parse(text, "rcpt", &domains(), "+") {
        Ok(_) => panic!("{text:?} parsed"),
        Err(err) => err.to_string(),
    };
    assert!(err.starts_with(&format!("rcpt:{line}: ")), "{text:?}: {err}");
    for word in words {
        assert!(err.contains(word), "{text:?}: {err} lacks {word}");
    }
}

#[test]
fn each_bad_line_is_named_with_its_file_and_line() {
    let ok = "alice@example.org alice@example.org\n";
    refused(&format!("\n  bob@example.org\n{ok}"), 2, &["indented"]);
    refused(&format!("{ok}alice bob@example.org\n"), 2, &["\"alice\"", "user@domain"]);
    refused(&format!("{ok}bob@elsewhere.example bob@example.org\n"), 2, &["\"elsewhere.example\"", "domains"]);
    refused(&format!("{ok}@example.org. bob@example.org\n"), 2, &["\"@example.org.\"", "trailing dot"]);
    refused(&format!("{ok}bob@[192.0.2.1] bob@example.org\n"), 2, &["address literal"]);
    refused(&format!("# a\n{ok}ALICE@example.org bob@example.org\n"), 3, &["\"alice@example.org\"", "line 2"]);
    refused(&format!("{ok}bob@example.org # no target\n"), 2, &["\"bob@example.org\"", "no target"]);
    refused(&format!("{ok}bob@example.org\n  bob\n"), 3, &["\"bob\"", "user@domain"]);
    refused(&format!("{ok}bob@example.org ../x@example.org\n"), 2, &["\"../x@example.org\"", "user name"]);
    refused(&format!("{ok}bob@example.org \"bob\"@example.org\n"), 2, &["user name"]);
    refused(&format!("{ok}bob@example.org bob@exa_mple.com\n"), 2, &["not a host name"]);
    refused(&format!("{ok}bob@example.org @elsewhere.example\n"), 2, &["1 to 64 octets"]);
}

#[test]
fn an_error_never_echoes_more_than_the_word_cut_short() {
    let long = format!("{}@example.org", "x".repeat(500));
    let err = RecipientTable::parse(&format!("bob@example.org {long} secret-looking-rest\n"), "rcpt", &domains(), "+")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("rcpt:1: target \"xxx") && err.contains("\"..."), "{err}");
    assert!(err.len() < 300 && !err.contains("secret"), "{err}");
}

#[test]
fn a_bad_delimiter_is_named() {
    for bad in ["@", "+ ", "\"", "é"] {
        let err = RecipientTable::parse("", "rcpt", &domains(), bad).unwrap_err().to_string();
        assert!(err.starts_with(&format!("recipient delimiter {bad:?}")), "{err}");
    }
}

#[test]
fn load_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recipients");
    let err = RecipientTable::load(&path, &domains(), "+").unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}: cannot read", path.display())), "{err}");
    std::fs::write(&path, b"alice@example.org alice@example.org\nb\xffb@example.org bob@example.org\n").unwrap();
    let err = RecipientTable::load(&path, &domains(), "+").unwrap_err().to_string();
    assert_eq!(err, format!("{}:2: not valid UTF-8", path.display()));
    std::fs::write(&path, "alice@example.org alice@example.org\n\nbob@example.org\n").unwrap();
    let err = RecipientTable::load(&path, &domains(), "+").unwrap_err().to_string();
    assert!(err.starts_with(&format!("{}:3: key \"bob@example.org\" has no target", path.display())), "{err}");
}

#[test]
fn ten_thousand_entries_load_and_look_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("recipients");
    let text: String =
        (0..10_000).map(|i| format!("user{i}@example.org user{i}@example.org, shared@example.org\n")).collect();
    std::fs::write(&path, text).unwrap();
    let table = RecipientTable::load(&path, &domains(), "+").unwrap();
    assert_eq!(table.len(), 10_000);
    assert_eq!(
        found(&table, "USER9999+x@example.org"),
        [mailbox("user9999@example.org"), mailbox("shared@example.org")]
    );
    assert_eq!(table.lookup("user10000@example.org"), Lookup::Unknown);
}
