//! The Router on a real filesystem: which copies a message becomes, what
//! each one's header block names, and that a message is stored whole in
//! every place or in none.

use super::*;
use crate::spool::{HELD_CONTENT_MAX, Maildir};
use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, UNIX_EPOCH};

/// A spool with every route under one temporary directory: `inbox/`,
/// `outgoing/` and the users' Maildirs under `mail/`.
struct Site {
    dir: tempfile::TempDir,
    router: Router,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let routes =
            Routes { mailboxes: Some(dir.path().join("mail")), outgoing: Some(dir.path().join("outgoing")) };
        let router = Router::open(dir.path().join("inbox"), routes, "mx.test").unwrap();
        Site { dir, router }
    }

    /// The Maildir of a place: `inbox`, `outgoing`, or `user@domain`.
    fn maildir(&self, place: &str) -> PathBuf {
        match place.split_once('@') {
            Some((user, domain)) => self.dir.path().join("mail").join(domain).join(user),
            None => self.dir.path().join(place),
        }
    }

    /// Stores `content` (in 64 KiB pieces, as the server hands it over)
    /// for `meta`, committing with `end`: the queue id, or the error.
    async fn store(&self, meta: &MessageMeta, content: &[u8], end: &[u8]) -> io::Result<String> {
        let mut txn = self.router.begin(meta)?;
        for piece in content.chunks(64 << 10) {
            txn.write(piece)?;
        }
        let id = txn.queue_id().to_string();
        txn.commit(end.to_vec(), Arc::new(AtomicBool::new(false))).await.map(|()| id)
    }

    /// The files in a place's new/, by name.
    fn delivered(&self, place: &str) -> Vec<(String, Vec<u8>)> {
        let new = self.maildir(place).join("new");
        names(&new)
            .into_iter()
            .map(|name| {
                let bytes = fs::read(new.join(&name)).unwrap();
                (name, bytes)
            })
            .collect()
    }

    /// Every file (not directory) under the site, sorted.
    fn every_file(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, found);
                } else {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(self.dir.path(), &mut found);
        found.sort();
        found
    }

    /// Every file in a tmp/ directory.
    fn in_tmp(&self) -> Vec<PathBuf> {
        self.every_file().into_iter().filter(|p| p.parent().unwrap().ends_with("tmp")).collect()
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

fn mailbox(address: &str) -> Destination {
    let (user, domain) = address.split_once('@').unwrap();
    Destination::Mailbox(Mailbox::new(user, domain).unwrap())
}

fn rcpt(address: &str, destinations: Vec<Destination>) -> StoredRecipient {
    StoredRecipient { address: address.into(), notify: None, orcpt: None, destinations }
}

fn meta(recipients: Vec<StoredRecipient>) -> MessageMeta {
    MessageMeta {
        server_hostname: "mx.test".into(),
        client_ip: Ipv4Addr::LOCALHOST.into(),
        helo: "client.test".into(),
        reverse_path: "sender@remote.test".into(),
        recipients,
        protocol: "ESMTP".into(),
        body: "7BIT",
        smtputf8: false,
        dsn_return: None,
        dsn_envid: None,
        received_at: UNIX_EPOCH + Duration::from_secs(1_795_875_172),
        handled_by: "test@0".into(),
        tls: None,
        authenticated: None,
    }
}

/// `len` octets of message content in numbered CRLF lines, so that any
/// lost, doubled or misplaced piece shows; it names no address.
fn content(len: usize) -> Vec<u8> {
    let mut c = b"Subject: test\r\n\r\n".to_vec();
    let mut n = 0;
    while c.len() < len {
        c.extend_from_slice(format!("line {n:08} of the message, to fill it up to its size\r\n").as_bytes());
        n += 1;
    }
    c.truncate(len);
    c
}

const END: &str = "Authentication-Results: mx.test; spf=pass smtp.mailfrom=remote.test\r\n";

/// The header block a copy must get: `Delivered-To` when given, the
/// envelope naming `envelope` only (`for` when it is one), `end`.
fn block(delivered_to: Option<&str>, envelope: &[&str], id: &str, end: &str) -> String {
    let mut b = String::new();
    if let Some(address) = delivered_to {
        b += &format!("Delivered-To: {address}\r\n");
    }
    b += "Return-Path: <sender@remote.test>\r\n";
    for address in envelope {
        b += &format!("X-Envelope-To: <{address}>\r\n");
    }
    b += &format!("X-Envelope-Body: 7BIT\r\n{end}Received: from client.test ([127.0.0.1])\r\n");
    b += &format!("\tby mx.test (smtpcell, test@0) with ESMTP id {id}");
    if let [only] = envelope {
        b += &format!("\r\n\tfor <{only}>");
    }
    b + ";\r\n\tSat, 28 Nov 2026 14:12:52 +0000\r\n"
}

/// Inbox, two users (one reached only as a Bcc recipient), an alias to a
/// user and a remote address, a relayed recipient.
fn mixed() -> MessageMeta {
    meta(vec![
        rcpt("postmaster@local.test", vec![Destination::Inbox]),
        rcpt("alice@local.test", vec![mailbox("alice@local.test")]),
        rcpt("team@local.test", vec![mailbox("alice@local.test"), Destination::Outgoing("dave@remote.test".into())]),
        rcpt("hidden+tag@local.test", vec![mailbox("bob@local.test")]),
        rcpt("eve@remote.test", vec![Destination::Outgoing("eve@remote.test".into())]),
    ])
}

/// Where [`mixed`] goes, and what each copy's header block names.
const MIXED: [(&str, Option<&str>, &[&str]); 4] = [
    ("inbox", None, &["postmaster@local.test"]),
    ("alice@local.test", Some("alice@local.test"), &["alice@local.test", "team@local.test"]),
    ("bob@local.test", Some("bob@local.test"), &["hidden+tag@local.test"]),
    ("outgoing", None, &["dave@remote.test", "eve@remote.test"]),
];

#[tokio::test]
async fn each_destination_gets_one_copy_with_its_own_header_block_and_the_whole_content() {
    let every_address = ["postmaster@", "alice@", "team@", "hidden+tag@", "bob@", "dave@", "eve@"];
    // Held in memory, at the bound, and spilled to tmp/; with end headers
    // and without (a spilled message then stays in the file it spilled to).
    for (len, end) in
        [(1000, END), (HELD_CONTENT_MAX, END), (5 << 20, END), (1000, ""), (HELD_CONTENT_MAX + 1, ""), (5 << 20, "")]
    {
        let site = Site::new();
        let content = content(len);
        let id = site.store(&mixed(), &content, end.as_bytes()).await.unwrap();
        for (place, delivered_to, envelope) in MIXED {
            let [(name, bytes)] = site.delivered(place).try_into().unwrap();
            assert_eq!(name, format!("{id}.mx.test"), "every copy is named after the queue id");
            let expected = block(delivered_to, envelope, &id, end);
            let (head, body) = bytes.split_at(expected.len().min(bytes.len()));
            let head = String::from_utf8_lossy(head);
            assert_eq!(head, expected, "{place}, {len} octets");
            assert!(body == content, "{place}: the content, byte for byte ({len} octets)");
            for address in every_address {
                let named = envelope.iter().chain(&delivered_to).any(|a| a.starts_with(address));
                assert_eq!(head.contains(address), named, "{place} and {address}");
            }
        }
        assert!(site.in_tmp().is_empty(), "{:?}", site.in_tmp());
        assert_eq!(site.every_file().len(), 4, "nothing else was stored");
    }
}

#[tokio::test]
async fn a_users_copy_names_their_mailbox_first_and_only_their_recipients() {
    let site = Site::new();
    let id = site.store(&mixed(), &content(100), END.as_bytes()).await.unwrap();
    let [(_, bytes)] = site.delivered("bob@local.test").try_into().unwrap();
    let expected = format!(
        "Delivered-To: bob@local.test\r\n\
         Return-Path: <sender@remote.test>\r\n\
         X-Envelope-To: <hidden+tag@local.test>\r\n\
         X-Envelope-Body: 7BIT\r\n\
         Authentication-Results: mx.test; spf=pass smtp.mailfrom=remote.test\r\n\
         Received: from client.test ([127.0.0.1])\r\n\
         \tby mx.test (smtpcell, test@0) with ESMTP id {id}\r\n\
         \tfor <hidden+tag@local.test>;\r\n\
         \tSat, 28 Nov 2026 14:12:52 +0000\r\n\
         Subject: test\r\n"
    );
    assert!(bytes.starts_with(expected.as_bytes()), "{}", String::from_utf8_lossy(&bytes));
}

#[tokio::test]
async fn an_alias_to_two_mailboxes_and_an_address_named_twice() {
    let site = Site::new();
    let mut list = rcpt("list@local.test", vec![mailbox("alice@local.test"), mailbox("bob@local.test")]);
    list.notify = Some("FAILURE".into());
    list.orcpt = Some("rfc822;list@local.test".into());
    let meta = meta(vec![
        list,
        // Directly, and through an alias naming her mailbox twice: one copy.
        rcpt("alice@local.test", vec![mailbox("alice@local.test")]),
        rcpt("al@local.test", vec![mailbox("alice@local.test"), mailbox("Alice@Local.test")]),
        // Two recipients to one remote address: named once.
        rcpt("fwd1@local.test", vec![Destination::Outgoing("x@remote.test".into())]),
        rcpt("fwd2@local.test", vec![Destination::Outgoing("x@remote.test".into())]),
    ]);
    let id = site.store(&meta, &content(100), b"").await.unwrap();
    let text = |place: &str| {
        let [(_, bytes)] = site.delivered(place).try_into().unwrap();
        String::from_utf8(bytes).unwrap()
    };
    let alice = text("alice@local.test");
    assert!(
        alice.starts_with(
            "Delivered-To: alice@local.test\r\n\
             Return-Path: <sender@remote.test>\r\n\
             X-Envelope-To: <list@local.test> NOTIFY=FAILURE ORCPT=rfc822;list@local.test\r\n\
             X-Envelope-To: <alice@local.test>\r\n\
             X-Envelope-To: <al@local.test>\r\n\
             X-Envelope-Body: 7BIT\r\n"
        ),
        "{alice}"
    );
    let bob = text("bob@local.test");
    assert!(bob.starts_with("Delivered-To: bob@local.test\r\n"), "{bob}");
    assert!(bob.contains(&format!("id {id}\r\n\tfor <list@local.test>;")), "{bob}");
    assert!(!bob.contains("alice") && !bob.contains("al@"), "{bob}");
    let outgoing = text("outgoing");
    assert_eq!(outgoing.matches("X-Envelope-To: ").count(), 1, "{outgoing}");
    assert!(outgoing.contains("X-Envelope-To: <x@remote.test>\r\n"), "{outgoing}");
    assert!(site.delivered("inbox").is_empty());
}

#[tokio::test]
async fn a_copy_that_fails_leaves_no_copy_anywhere_and_keeps_its_error_kind() {
    for len in [1000, 5 << 20] {
        let site = Site::new();
        site.store(&mixed(), &content(10), b"").await.unwrap();
        // Bob's new/ becomes a file: his copy's rename fails (ENOTDIR) after
        // the inbox's and Alice's were renamed. A directory made read-only
        // would not do: the tests run as root.
        let new = site.maildir("bob@local.test").join("new");
        fs::remove_dir_all(&new).unwrap();
        fs::write(&new, b"").unwrap();
        let before = site.every_file();
        let err = site.store(&mixed(), &content(len), END.as_bytes()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");
        assert_eq!(site.every_file(), before, "no copy of the failed message stays, in new/ or tmp/");
    }
}

#[tokio::test]
async fn a_mailbox_that_cannot_take_mail_fails_the_message_not_the_spool() {
    let site = Site::new();
    // Bob's Maildir has a file where its tmp/ belongs.
    let bob = site.maildir("bob@local.test");
    fs::create_dir_all(&bob).unwrap();
    fs::write(bob.join("tmp"), b"").unwrap();
    let err = site.store(&mixed(), &content(10), b"").await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotADirectory, "{err}");
    assert!(err.to_string().contains("the mailbox bob@local.test cannot take mail"), "{err}");
    assert_eq!(site.every_file(), [bob.join("tmp")], "nothing stored");
    // Other mail still flows, and once the operator fixes it, so does Bob's.
    let others = meta(vec![rcpt("alice@local.test", vec![mailbox("alice@local.test")])]);
    site.store(&others, &content(10), b"").await.unwrap();
    fs::remove_file(bob.join("tmp")).unwrap();
    site.store(&mixed(), &content(10), b"").await.unwrap();
    assert_eq!(site.delivered("bob@local.test").len(), 1);
}

#[tokio::test]
async fn a_cancelled_or_dropped_message_stores_nothing() {
    for len in [1000, 5 << 20] {
        let site = Site::new();
        let mut txn = site.router.begin(&mixed()).unwrap();
        txn.write(&content(len)).unwrap();
        let err = txn.commit(END.as_bytes().to_vec(), Arc::new(AtomicBool::new(true))).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(site.every_file().is_empty(), "{:?}", site.every_file());
        let mut txn = site.router.begin(&mixed()).unwrap();
        txn.write(&content(len)).unwrap();
        drop(txn);
        assert!(site.every_file().is_empty(), "{:?}", site.every_file());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_messages_to_shared_mailboxes_are_all_stored_whole_and_distinct() {
    let site = Arc::new(Site::new());
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..100 {
        let site = site.clone();
        tasks.spawn(async move {
            let mut meta = mixed();
            // And one of five more users, each first reached concurrently.
            let user = format!("u{}@local.test", n % 5);
            meta.recipients.push(rcpt(&user, vec![mailbox(&user)]));
            // One in ten is large enough to spill.
            let filler = if n % 10 == 0 { "X-Filler: 0123456789abcdef\r\n".repeat(4000) } else { String::new() };
            let body = format!("Subject: {n}\r\n{filler}\r\nbody {n}\r\n");
            let id = site.store(&meta, body.as_bytes(), END.as_bytes()).await.unwrap();
            (id, n)
        });
    }
    let mut ids = Vec::new();
    while let Some(outcome) = tasks.join_next().await {
        ids.push(outcome.unwrap());
    }
    let mut expected: Vec<String> = ids.iter().map(|(id, _)| format!("{id}.mx.test")).collect();
    expected.sort();
    for (place, _, _) in MIXED {
        let stored = site.delivered(place);
        assert_eq!(stored.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(), expected, "{place}");
        for (id, n) in &ids {
            let (_, bytes) = stored.iter().find(|(name, _)| name == &format!("{id}.mx.test")).unwrap();
            assert!(String::from_utf8_lossy(bytes).ends_with(&format!("\r\n\r\nbody {n}\r\n")), "{place} {id}");
        }
    }
    for u in 0..5 {
        assert_eq!(site.delivered(&format!("u{u}@local.test")).len(), 20);
    }
    assert!(site.in_tmp().is_empty(), "{:?}", site.in_tmp());
}

#[tokio::test]
async fn a_crashed_predecessors_partial_files_in_a_mailbox_are_swept_on_first_delivery() {
    let site = Site::new();
    let tmp = site.maildir("alice@local.test").join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    // Found without starting a process (see maildir.rs's spill-file test).
    let pid_max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
    let dead = (2..pid_max).rev().find(|pid| !Path::new(&format!("/proc/{pid}")).exists()).unwrap();
    fs::write(tmp.join(format!("1700000000.M1P{dead}Q3.mx.test")), vec![b'x'; 1000]).unwrap();
    fs::write(tmp.join("1700000000.M1P1Q3.other.test"), b"another server's").unwrap();
    site.store(&mixed(), &content(10), b"").await.unwrap();
    assert_eq!(names(&tmp), ["1700000000.M1P1Q3.other.test"]);
    // Never again in this process, even by a spool opened again on the
    // same directories (a reload): from now on, files here and in the
    // inbox named with our pid are messages in flight.
    let own = format!("1700000000.M1P{}Q3.mx.test", std::process::id());
    fs::write(tmp.join(&own), b"in flight").unwrap();
    fs::write(site.maildir("inbox").join("tmp").join(&own), b"in flight").unwrap();
    site.store(&mixed(), &content(10), b"").await.unwrap();
    let routes = Routes { mailboxes: Some(site.dir.path().join("mail")), outgoing: None };
    let reloaded = Router::open(site.maildir("inbox"), routes, "mx.test").unwrap();
    let to_alice = meta(vec![rcpt("alice@local.test", vec![mailbox("alice@local.test")])]);
    let mut txn = reloaded.begin(&to_alice).unwrap();
    txn.write(&content(10)).unwrap();
    txn.commit(Vec::new(), Arc::new(AtomicBool::new(false))).await.unwrap();
    assert_eq!(names(&tmp), ["1700000000.M1P1Q3.other.test".to_string(), own.clone()]);
    assert_eq!(names(&site.maildir("inbox").join("tmp")), [own]);
}

#[tokio::test]
async fn a_users_maildir_is_created_private_on_first_delivery() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    assert!(!site.dir.path().join("mail").exists(), "created with the first mailbox");
    let alice = Mailbox::new("alice", "local.test").unwrap();
    let mut txn = site.router.begin(&mixed()).unwrap();
    let dirs = site.router.mailboxes.as_ref().unwrap().dirs(&alice).unwrap();
    let created = ["", "mail", "mail/local.test", "mail/local.test/alice"];
    let created: Vec<PathBuf> = created.iter().map(|d| site.dir.path().join(d).components().collect()).collect();
    assert_eq!(dirs.unsynced(), created, "the directories that gained an entry");
    txn.write(&content(10)).unwrap();
    txn.commit(Vec::new(), Arc::new(AtomicBool::new(false))).await.unwrap();
    assert!(dirs.unsynced().is_empty(), "flushed before the message was acknowledged");
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for dir in ["mail", "mail/local.test", "mail/local.test/alice", "mail/local.test/alice/new"] {
        assert_eq!(mode(&site.dir.path().join(dir)), 0o700, "{dir}");
    }
    let [(name, _)] = site.delivered("alice@local.test").try_into().unwrap();
    assert_eq!(mode(&site.maildir("alice@local.test").join("new").join(name)), 0o600);
}

#[tokio::test]
async fn a_destination_the_spool_was_not_opened_for_fails_begin() {
    let dir = tempfile::tempdir().unwrap();
    let inbox_only = Router::open(dir.path().join("inbox"), Routes::default(), "mx.test").unwrap();
    let maildir = Maildir::open(dir.path().join("maildir"), "mx.test").unwrap();
    for spool in [&inbox_only as &dyn Spool, &maildir] {
        let to_user = meta(vec![rcpt("a@local.test", vec![Destination::Inbox, mailbox("a@local.test")])]);
        let err = spool.begin(&to_user).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("<a@local.test> is routed to the mailbox a@local.test"), "{err}");
        assert!(err.to_string().contains("`mailboxes`"), "{err}");
        let relayed = meta(vec![rcpt("b@remote.test", vec![Destination::Outgoing("b@remote.test".into())])]);
        let err = spool.begin(&relayed).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("`outgoing`"), "{err}");
        let nowhere = meta(vec![rcpt("c@local.test", vec![])]);
        assert_eq!(spool.begin(&nowhere).err().unwrap().kind(), io::ErrorKind::InvalidInput);
    }
    assert!(names(&dir.path().join("inbox/tmp")).is_empty() && names(&dir.path().join("maildir/tmp")).is_empty());
}

#[test]
fn the_outgoing_maildir_cannot_be_the_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let routes = Routes { mailboxes: None, outgoing: Some(dir.path().join("inbox/../inbox")) };
    let err = Router::open(dir.path().join("inbox"), routes, "mx.test").err().unwrap();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn copies_come_inbox_first_then_mailboxes_as_first_named_then_outgoing() {
    let site = Site::new();
    let routes = site.router.route(&mixed()).unwrap();
    let roots: Vec<PathBuf> = routes.iter().map(|r| r.dirs.root.clone()).collect();
    let expected: Vec<PathBuf> = MIXED.iter().map(|(place, _, _)| site.maildir(place)).collect();
    assert_eq!(roots, expected);
}
