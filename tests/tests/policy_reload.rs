//! The policy reloads atomically under load (issue 14, "One configuration
//! file"), in the style of live_swap.rs: twenty clients send mail without
//! pause to known users while the test rewrites the configuration and the
//! recipients table and reloads, alternating two valid policies (both keep
//! the users the clients send to), and once a valid configuration with an
//! invalid table, which is refused whole. No transaction fails, every
//! acknowledged message is stored once in its user's Maildir, each new
//! connection sees the policy last applied, and the refused reload changes
//! nothing.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smtpcell_tests::configured::ConfiguredServer;
use smtpcell_tests::session::{greeted, loopback, status, transaction};
use smtpcell_tests::stored::copies;

const CLIENTS: usize = 20;
const RELOADS: usize = 8;

/// Policy A receives for example.org; policy B also for example.net.
const CONFIG_A: &str = r#"
listen = "127.0.0.1:0"
maildir = "{dir}/inbox"
mailboxes = "{dir}/vmail"
outgoing = "{dir}/outgoing"
domains = ["example.org"]
recipients = "{dir}/recipients"
"#;
const CONFIG_B: &str = r#"
listen = "127.0.0.1:0"
maildir = "{dir}/inbox"
mailboxes = "{dir}/vmail"
outgoing = "{dir}/outgoing"
domains = ["example.org", "example.net"]
recipients = "{dir}/recipients"
"#;

/// A has carol; B has dave instead, and a catch-all for example.net.
const TABLE_A: &str = "\
alice@example.org  alice@example.org
bob@example.org    bob@example.org
carol@example.org  carol@example.org
";
const TABLE_B: &str = "\
alice@example.org  alice@example.org
bob@example.org    bob@example.org
dave@example.org   dave@example.org
@example.net       dave@example.org
";
/// Valid with CONFIG_B but for its line 3, whose key is at a domain the
/// configuration does not name.
const TABLE_BAD: &str = "\
alice@example.org  alice@example.org
bob@example.org    bob@example.org
eve@example.com    dave@example.org
";

/// The users the clients send to: in both policies.
const USERS: [&str; 2] = ["alice", "bob"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    A,
    B,
}

impl Policy {
    fn files(self) -> (&'static str, &'static str) {
        match self {
            Policy::A => (CONFIG_A, TABLE_A),
            Policy::B => (CONFIG_B, TABLE_B),
        }
    }
}

/// What a new connection is answered for the recipients that tell A from
/// B: carol@example.org (A only), dave@example.org and anyone@example.net
/// (B only).
fn policy_in_force(server: &ConfiguredServer) -> Policy {
    let mut c = greeted(server.addr, loopback(1)).unwrap();
    assert!(c.command("MAIL FROM:<probe@client.test>").unwrap().starts_with("250"));
    let got: Vec<String> = ["carol@example.org", "dave@example.org", "anyone@example.net"]
        .iter()
        .map(|forward_path| status(&c.command(&format!("RCPT TO:<{forward_path}>")).unwrap()).to_string())
        .collect();
    assert!(c.command("QUIT").unwrap().starts_with("221"));
    match got.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["250 2.1.5", "550 5.1.1", "550 5.7.1"] => Policy::A,
        ["550 5.1.1", "250 2.1.5", "250 2.1.5"] => Policy::B,
        _ => panic!("neither policy: {got:?}"),
    }
}

/// One acknowledged message: its subject and the user it was for.
struct Acked {
    subject: String,
    user: &'static str,
}

/// Sends messages to alice and bob (by subaddress half the time) until
/// stopped, two per connection; returns the transactions that failed.
fn client(server: Arc<ConfiguredServer>, id: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<Acked>>>) -> usize {
    let mut failures = 0;
    let mut connection = 0;
    while !stop.load(Ordering::Relaxed) {
        connection += 1;
        let mut c = greeted(server.addr, loopback(1)).unwrap();
        for message in 0..2 {
            let user = USERS[(id + message) % 2];
            let forward_path =
                if connection % 2 == 0 { format!("{user}@example.org") } else { format!("{user}+c{id}@example.org") };
            let subject = format!("client {id} connection {connection} message {message}");
            let content = format!("Subject: {subject}\r\n\r\n{}", "z".repeat(300));
            let t = transaction(&mut c, "load@client.test", &[&forward_path], &content).unwrap();
            if t.queued() {
                acked.lock().unwrap().push(Acked { subject, user });
            } else {
                failures += 1;
                eprintln!("client {id}: transaction failed: {t:?}");
            }
        }
        assert!(c.command("QUIT").unwrap().starts_with("221"));
    }
    failures
}

#[test]
fn reloading_the_policy_under_load_fails_no_transaction_and_a_bad_table_changes_nothing() {
    let server = Arc::new(ConfiguredServer::start(CONFIG_A, &[("recipients", TABLE_A)]).unwrap());
    assert_eq!(policy_in_force(&server), Policy::A);

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (server, stop, acked) = (server.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || client(server, id, stop, acked))
        })
        .collect();

    let mut current = Policy::A;
    for reload in 0..RELOADS {
        // Let traffic run between reloads (load, not a wait for a window).
        std::thread::sleep(Duration::from_millis(200));
        let next = if current == Policy::A { Policy::B } else { Policy::A };
        let (config, table) = next.files();
        // The table first: a reload can only see both files or the old
        // policy, and the old configuration with the new table is also valid.
        server.write("recipients", table);
        server.write("smtpcell.toml", config);
        let report = server.reload();
        assert!(report.ok, "reload {reload} to {next:?} refused: {:#?}", report.lines);
        assert!(
            report.lines.iter().any(|l| l.contains("3 recipients from") || l.contains("4 recipients from")),
            "{report:#?}"
        );
        current = next;
        assert_eq!(policy_in_force(&server), current, "after reload {reload}");

        if reload == RELOADS / 2 {
            // A valid configuration with a bad table: refused whole, the
            // reason naming the table's file and line; neither file applies.
            let (config, _) = if current == Policy::A { Policy::B.files() } else { Policy::A.files() };
            server.write("smtpcell.toml", config);
            server.write("recipients", TABLE_BAD);
            let report = server.reload();
            assert!(!report.ok, "a bad table was applied: {:#?}", report.lines);
            let reason = report.lines.join("\n");
            assert!(reason.contains("recipients:3:") && reason.contains("eve@example.com"), "{reason}");
            assert_eq!(policy_in_force(&server), current, "a refused reload changed the policy");
            // Put back the files of the policy in force, as an operator would.
            let (config, table) = current.files();
            server.write("recipients", table);
            server.write("smtpcell.toml", config);
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let failures: usize = clients.into_iter().map(|c| c.join().expect("client thread")).sum();
    assert_eq!(failures, 0, "failed transactions during reloads");

    let acked = acked.lock().unwrap();
    println!("{} messages acknowledged over {RELOADS} reloads", acked.len());
    assert!(acked.len() > CLIENTS * RELOADS, "too little traffic: {}", acked.len());
    let stored = copies(server.dir()).unwrap();
    let want: BTreeMap<&str, &str> = acked.iter().map(|a| (a.subject.as_str(), a.user)).collect();
    let mut seen = HashSet::new();
    for copy in &stored {
        let subject = copy.subject().unwrap_or_else(|| panic!("no subject: {copy:?}"));
        let user = want.get(subject).unwrap_or_else(|| panic!("stored but not acknowledged: {subject}"));
        assert_eq!(copy.maildir, format!("vmail/example.org/{user}"), "{subject}");
        assert_eq!(copy.fields("Delivered-To"), [format!("{user}@example.org")], "{subject}");
        assert_eq!(copy.content, format!("Subject: {subject}\r\n\r\n{}\r\n", "z".repeat(300)), "incomplete: {subject}");
        assert!(seen.insert(subject), "stored twice: {subject}");
    }
    assert_eq!(stored.len(), acked.len(), "stored messages differ from acknowledged ones");
}
