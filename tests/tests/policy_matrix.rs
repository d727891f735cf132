//! Who may send what to whom (issue 14), over real sockets into a server
//! configured from a file: every kind of client (an outsider, an
//! authenticated client, a relay network) against every kind of
//! forward-path (at a local domain: a known user, an unknown one, an alias
//! of two users, a subaddress, a catch-all domain, a forwarding alias; at
//! another domain), with the exact reply to RCPT and, for each accepted
//! one, exactly where its copies are stored and what their header blocks
//! say. A copy names only its own recipients (Bcc privacy). Python's
//! smtplib, a real client, sees the same answers.

use std::collections::BTreeMap;
use std::process::Command;

use smtpcell_tests::configured::ConfiguredServer;
use smtpcell_tests::session::{authenticated, greeted, loopback, status, transaction, users_file};
use smtpcell_tests::stored::{Copy, copies, where_stored};

const CONFIG: &str = r#"
listen = "127.0.0.1:0"
hostname = "mx.example.org"
maildir = "{dir}/inbox"
mailboxes = "{dir}/vmail"
outgoing = "{dir}/outgoing"
domains = ["example.org", "catchall.example"]
recipients = "{dir}/recipients"
relay_networks = ["127.0.0.2/32"]
users = "{dir}/users"
allow_plaintext_auth = true
received_auth = true
"#;

const RECIPIENTS: &str = "\
# key                 targets
alice@example.org     alice@example.org
bob@example.org       bob@example.org
carol@example.org     carol@example.org
team@example.org      alice@example.org, bob@example.org
fwd@example.org       friend@elsewhere.example
@catchall.example     carol@example.org
";

/// The relay network's one address, and an outsider's.
const RELAY_CLIENT: u8 = 2;
const OUTSIDER: u8 = 3;

fn start() -> ConfiguredServer {
    let users = users_file(&[("submitter", "pw")]).unwrap();
    ConfiguredServer::start(CONFIG, &[("recipients", RECIPIENTS), ("users", &users)]).unwrap()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Outsider,
    Authenticated,
    RelayNetwork,
}

impl Who {
    const ALL: [Who; 3] = [Who::Outsider, Who::Authenticated, Who::RelayNetwork];

    fn connect(self, server: &ConfiguredServer) -> smtpcell_tests::client::RawClient {
        match self {
            Who::Outsider => greeted(server.addr, loopback(OUTSIDER)),
            Who::Authenticated => authenticated(server.addr, loopback(OUTSIDER), "submitter", "pw"),
            Who::RelayNetwork => greeted(server.addr, loopback(RELAY_CLIENT)),
        }
        .unwrap()
    }
}

/// A copy an accepted recipient leaves: its Maildir, its `Delivered-To`
/// (a user's copy) and its `X-Envelope-To`.
type Expected = (&'static str, Option<&'static str>, &'static str);

/// One forward-path of the matrix, and the copies it leaves once accepted.
struct Column {
    name: &'static str,
    forward_path: &'static str,
    local: bool,
    copies: &'static [Expected],
}

const ALICE: &str = "vmail/example.org/alice";
const BOB: &str = "vmail/example.org/bob";
const CAROL: &str = "vmail/example.org/carol";

const COLUMNS: &[Column] = &[
    Column {
        name: "local known",
        forward_path: "alice@example.org",
        local: true,
        copies: &[(ALICE, Some("alice@example.org"), "<alice@example.org>")],
    },
    // Domains compare case-insensitively; the copy names the address as sent.
    Column {
        name: "local known, upper case",
        forward_path: "Alice@EXAMPLE.ORG",
        local: true,
        copies: &[(ALICE, Some("alice@example.org"), "<Alice@EXAMPLE.ORG>")],
    },
    Column { name: "local unknown", forward_path: "nobody@example.org", local: true, copies: &[] },
    Column {
        name: "local alias of two users",
        forward_path: "team@example.org",
        local: true,
        copies: &[
            (ALICE, Some("alice@example.org"), "<team@example.org>"),
            (BOB, Some("bob@example.org"), "<team@example.org>"),
        ],
    },
    Column {
        name: "local subaddress",
        forward_path: "alice+tag@example.org",
        local: true,
        copies: &[(ALICE, Some("alice@example.org"), "<alice+tag@example.org>")],
    },
    Column {
        name: "local catch-all",
        forward_path: "anyone@catchall.example",
        local: true,
        copies: &[(CAROL, Some("carol@example.org"), "<anyone@catchall.example>")],
    },
    // An alias whose target is at another domain: the hand-off names the
    // target, for anyone (the alias is ours; the operator chose to forward).
    Column {
        name: "local forwarding alias",
        forward_path: "fwd@example.org",
        local: true,
        copies: &[("outgoing", None, "<friend@elsewhere.example>")],
    },
    Column {
        name: "other known",
        forward_path: "alice@other.example",
        local: false,
        copies: &[("outgoing", None, "<alice@other.example>")],
    },
    Column {
        name: "other unknown",
        forward_path: "nobody@other.example",
        local: false,
        copies: &[("outgoing", None, "<nobody@other.example>")],
    },
    Column {
        name: "other alias",
        forward_path: "team@other.example",
        local: false,
        copies: &[("outgoing", None, "<team@other.example>")],
    },
    Column {
        name: "other subaddress",
        forward_path: "alice+tag@other.example",
        local: false,
        copies: &[("outgoing", None, "<alice+tag@other.example>")],
    },
    // A subdomain of a catch-all domain is not that domain.
    Column {
        name: "other catch-all subdomain",
        forward_path: "anyone@sub.catchall.example",
        local: false,
        copies: &[("outgoing", None, "<anyone@sub.catchall.example>")],
    },
];

/// The status RCPT gets (`"250 2.1.5"`) and the copies an accepted one leaves.
fn expected(who: Who, column: &Column) -> (&'static str, &'static [Expected]) {
    match (column.local, column.copies.is_empty(), who) {
        (true, true, _) => ("550 5.1.1", &[]),
        (true, false, _) | (false, _, Who::Authenticated | Who::RelayNetwork) => ("250 2.1.5", column.copies),
        (false, _, Who::Outsider) => ("550 5.7.1", &[]),
    }
}

fn subject(who: Who, column: &Column) -> String {
    format!("{who:?} to {}", column.name)
}

#[test]
fn every_client_to_every_kind_of_recipient_gets_its_reply_and_its_copies_where_they_belong() {
    let server = start();
    let mut failures = Vec::new();
    for who in Who::ALL {
        // One connection per kind of client; the outsider's refusals stay
        // under the harvest limit (10).
        let mut c = who.connect(&server);
        for column in COLUMNS {
            let subject = subject(who, column);
            let content = format!("Subject: {subject}\r\n\r\nmatrix");
            let t = transaction(&mut c, "sender@client.test", &[column.forward_path], &content).unwrap();
            assert!(t.mail.starts_with("250 2.1.0"), "{subject}: MAIL {:?}", t.mail);
            let (want, copies) = expected(who, column);
            if status(&t.rcpt[0]) != want {
                failures.push(format!("{subject}: RCPT got {:?}, expected {want}", t.rcpt[0]));
            }
            if !copies.is_empty() && !t.queued() {
                failures.push(format!("{subject}: not queued: {:?}", t.data));
            }
        }
        assert!(c.command("QUIT").unwrap().starts_with("221"));
    }
    assert!(failures.is_empty(), "{failures:#?}");

    let stored = copies(server.dir()).unwrap();
    let mut expected_where: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for who in Who::ALL {
        for column in COLUMNS {
            let (_, want) = expected(who, column);
            if !want.is_empty() {
                let mut maildirs: Vec<String> = want.iter().map(|(m, _, _)| m.to_string()).collect();
                maildirs.sort();
                expected_where.insert(subject(who, column), maildirs);
            }
        }
    }
    // Exactly these copies, and nothing anywhere else (the inbox included).
    assert_eq!(where_stored(&stored), expected_where);

    for who in Who::ALL {
        for column in COLUMNS {
            let subject = subject(who, column);
            for (maildir, delivered_to, envelope_to) in expected(who, column).1 {
                let copy = stored
                    .iter()
                    .find(|c| c.subject() == Some(subject.as_str()) && c.maildir == *maildir)
                    .unwrap_or_else(|| panic!("{subject}: no copy in {maildir}"));
                check_header_block(copy, who, *delivered_to, envelope_to);
            }
        }
    }
}

/// A copy's header block: its own `Delivered-To` (a user's copy, first),
/// the reverse-path, its one recipient, and the trace of its client.
fn check_header_block(copy: &Copy, who: Who, delivered_to: Option<&str>, envelope_to: &str) {
    let at = format!("{} in {}", copy.subject().unwrap(), copy.maildir);
    assert_eq!(copy.fields("Delivered-To"), delivered_to.into_iter().collect::<Vec<_>>(), "{at}");
    if let Some(address) = delivered_to {
        assert!(copy.header_block.starts_with(&format!("Delivered-To: {address}\r\n")), "{at}");
    }
    assert_eq!(copy.fields("Return-Path"), ["<sender@client.test>"], "{at}");
    assert_eq!(copy.fields("X-Envelope-To"), [envelope_to], "{at}");
    let client = if who == Who::RelayNetwork { RELAY_CLIENT } else { OUTSIDER };
    assert!(copy.header_block.contains(&format!("Received: from client.test ([127.0.0.{client}])")), "{at}");
    assert_eq!(copy.header_block.contains("(authenticated as submitter)"), who == Who::Authenticated, "{at}");
    assert!(copy.content.ends_with("\r\n\r\nmatrix\r\n"), "{at}: {:?}", copy.content);
}

/// No copy names a recipient routed elsewhere: one message to alice, bob,
/// an alias of both, a forwarding alias and a relayed address, from an
/// authenticated client, leaves one copy per mailbox and one outgoing copy,
/// and none of them names anyone it is not for.
#[test]
fn a_copy_names_only_its_own_recipients() {
    let server = start();
    let mut c = Who::Authenticated.connect(&server);
    let recipients =
        ["alice@example.org", "bob@example.org", "team@example.org", "fwd@example.org", "zed@other.example"];
    let t = transaction(&mut c, "sender@client.test", &recipients, "Subject: bcc\r\n\r\nfor several").unwrap();
    assert!(t.rcpt.iter().all(|r| r.starts_with("250 2.1.5")), "{t:?}");
    assert!(t.queued(), "{t:?}");
    let stored = copies(server.dir()).unwrap();
    let by_maildir: BTreeMap<&str, &Copy> = stored.iter().map(|c| (c.maildir.as_str(), c)).collect();
    assert_eq!(by_maildir.keys().copied().collect::<Vec<_>>(), ["outgoing", ALICE, BOB], "{stored:#?}");
    assert_eq!(stored.len(), 3, "one copy per place");

    // team@ reaches alice and bob; each copy names team@ and its own address.
    let alice = by_maildir[ALICE];
    assert_eq!(alice.fields("Delivered-To"), ["alice@example.org"]);
    assert_eq!(alice.fields("X-Envelope-To"), ["<alice@example.org>", "<team@example.org>"]);
    let bob = by_maildir[BOB];
    assert_eq!(bob.fields("Delivered-To"), ["bob@example.org"]);
    assert_eq!(bob.fields("X-Envelope-To"), ["<bob@example.org>", "<team@example.org>"]);
    let outgoing = by_maildir["outgoing"];
    assert_eq!(outgoing.fields("Delivered-To"), Vec::<&str>::new());
    assert_eq!(outgoing.fields("X-Envelope-To"), ["<friend@elsewhere.example>", "<zed@other.example>"]);

    for (copy, not_named) in [
        (alice, &["bob", "fwd", "friend", "zed"][..]),
        (bob, &["alice", "fwd", "friend", "zed"][..]),
        (outgoing, &["alice", "bob", "team", "fwd@"][..]),
    ] {
        let block = copy.header_block.to_ascii_lowercase();
        for name in not_named {
            assert!(!block.contains(name), "{} names {name}:\n{}", copy.maildir, copy.header_block);
        }
        assert_eq!(copy.content, "Subject: bcc\r\n\r\nfor several\r\n");
    }
    // The same queue id finds every copy.
    let id = t.data.as_deref().unwrap().split_whitespace().last().unwrap().to_string();
    assert!(stored.iter().all(|c| c.header_block.contains(&format!(" id {id}"))), "{id}: {stored:#?}");
}

/// An outsider's message to a known user, an unknown one and another
/// domain: only the known user's copy is stored, naming only them, and
/// nothing reaches the outgoing Maildir.
#[test]
fn refused_recipients_of_a_message_are_stored_nowhere() {
    let server = start();
    let mut c = Who::Outsider.connect(&server);
    let t = transaction(
        &mut c,
        "sender@client.test",
        &["nobody@example.org", "alice@example.org", "zed@other.example", "team@other.example"],
        "Subject: some refused\r\n\r\nhello",
    )
    .unwrap();
    let got: Vec<&str> = t.rcpt.iter().map(|r| status(r)).collect();
    assert_eq!(got, ["550 5.1.1", "250 2.1.5", "550 5.7.1", "550 5.7.1"]);
    assert!(t.rcpt[2].starts_with("550 5.7.1 Relay access denied"), "{:?}", t.rcpt[2]);
    assert!(t.queued(), "{t:?}");
    let stored = copies(server.dir()).unwrap();
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0].maildir, ALICE);
    assert_eq!(stored[0].fields("X-Envelope-To"), ["<alice@example.org>"]);
    for name in ["nobody", "zed", "team", "other.example"] {
        assert!(!stored[0].header_block.contains(name), "{name}: {}", stored[0].header_block);
    }
}

/// Python's smtplib, a real client: an outsider's relay recipient is
/// refused while its local one is delivered; the relay network and an
/// authenticated client (AUTH negotiated by smtplib) relay.
#[test]
fn smtplib_sees_the_same_answers() {
    let server = start();
    let script = r#"
import json, smtplib, sys
host, port = sys.argv[1], int(sys.argv[2])
def send(source, rcpts, subject, login=None):
    with smtplib.SMTP(host, port, local_hostname="client.test", source_address=(source, 0), timeout=30) as s:
        if login:
            s.login(*login)
        msg = "Subject: %s\r\n\r\nfrom smtplib\r\n" % subject
        try:
            refused = s.sendmail("sender@client.test", rcpts, msg)
        except smtplib.SMTPRecipientsRefused as e:
            refused = e.recipients
        return {k: [v[0], v[1].decode()] for k, v in refused.items()}
print(json.dumps([
    send("127.0.0.3", ["alice@example.org", "zed@other.example"], "smtplib outsider"),
    send("127.0.0.3", ["zed@other.example"], "smtplib outsider relay only"),
    send("127.0.0.2", ["zed@other.example"], "smtplib relay network"),
    send("127.0.0.3", ["zed@other.example", "bob@example.org"], "smtplib authenticated", ("submitter", "pw")),
]))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &server.addr.ip().to_string(), &server.addr.port().to_string()])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let answers = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        answers.trim(),
        r#"[{"zed@other.example": [550, "5.7.1 Relay access denied"]}, {"zed@other.example": [550, "5.7.1 Relay access denied"]}, {}, {}]"#
    );
    let stored = copies(server.dir()).unwrap();
    let expected: BTreeMap<String, Vec<String>> = [
        ("smtplib outsider", vec![ALICE]),
        ("smtplib relay network", vec!["outgoing"]),
        ("smtplib authenticated", vec!["outgoing", BOB]),
    ]
    .into_iter()
    .map(|(s, m)| (s.to_string(), m.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(where_stored(&stored), expected);
    let relayed: Vec<&Copy> = stored.iter().filter(|c| c.maildir == "outgoing").collect();
    assert!(relayed.iter().all(|c| c.fields("X-Envelope-To") == ["<zed@other.example>"]), "{relayed:#?}");
}
