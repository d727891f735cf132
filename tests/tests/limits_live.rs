//! Rate limits and greylisting in a live server configured from a file,
//! over real sockets, with the server's fake clock: refused at the
//! limit, back after the window; greylisted, passed after the delay, and
//! still passed after a reload that changes the delay.

use std::time::Duration;

use smtpcell_tests::client::RawClient;
use smtpcell_tests::configured::ConfiguredServer;

const MINUTE: Duration = Duration::from_secs(60);

fn config(tables: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nhostname = \"mx.example.org\"\nmaildir = \"{{dir}}/inbox\"\n\
         domains = [\"example.org\"]\n{tables}"
    )
}

/// Connects and reads the greeting's code.
fn greeting(server: &ConfiguredServer) -> (RawClient, u16) {
    let mut client = RawClient::connect(server.addr).unwrap();
    let code = client.code().unwrap();
    (client, code)
}

/// EHLO, MAIL, then one RCPT: its reply.
fn rcpt(client: &mut RawClient, forward_path: &str) -> String {
    assert!(client.command("EHLO client.example").unwrap().starts_with("250"));
    assert!(client.command("MAIL FROM:<a@sender.example>").unwrap().starts_with("250"));
    client.command(&format!("RCPT TO:<{forward_path}>")).unwrap()
}

#[test]
fn connections_and_recipients_past_their_rate_are_refused_until_the_window_passes() {
    let server = ConfiguredServer::start(
        &config("[rate_limits]\nclient_connections_per_minute = 2\nclient_recipients_per_minute = 2\n"),
        &[],
    )
    .unwrap();
    let (mut first, code) = greeting(&server);
    assert_eq!(code, 220);
    let (_second, code) = greeting(&server);
    assert_eq!(code, 220);
    let (mut third, code) = greeting(&server);
    assert_eq!(code, 421, "the third connection in a minute");
    third.read_to_close().unwrap();

    assert!(rcpt(&mut first, "alice@example.org").starts_with("250"));
    assert!(first.command("RCPT TO:<bob@example.org>").unwrap().starts_with("250"));
    let refused = first.command("RCPT TO:<carol@example.org>").unwrap();
    assert!(refused.starts_with("451 4.7.1"), "{refused}");

    server.clock.advance(MINUTE);
    assert!(first.command("RCPT TO:<carol@example.org>").unwrap().starts_with("250"));
    let (_fourth, code) = greeting(&server);
    assert_eq!(code, 220, "a minute later");
}

#[test]
fn the_first_attempt_is_greylisted_and_a_retry_after_the_delay_passes() {
    let greylisting = "[greylisting]\nenabled = true\ndatabase = \"{dir}/greylist.redb\"\n";
    let server = ConfiguredServer::start(&config(greylisting), &[]).unwrap();
    let (mut client, _) = greeting(&server);
    let deferred = rcpt(&mut client, "alice@example.org");
    assert!(deferred.starts_with("451 4.7.1"), "{deferred}");
    server.clock.advance(4 * MINUTE);
    let early = client.command("RCPT TO:<alice@example.org>").unwrap();
    assert!(early.starts_with("451 4.7.1"), "{early}");
    server.clock.advance(MINUTE);
    assert!(client.command("RCPT TO:<alice@example.org>").unwrap().starts_with("250"));
    // Another recipient is another triplet.
    assert!(client.command("RCPT TO:<bob@example.org>").unwrap().starts_with("451 4.7.1"));

    // A reload with a longer delay keeps the open database (and its
    // state): alice passes, bob waits the new delay from his first try.
    server.write("smtpcell.toml", &config(&format!("{greylisting}min_delay_secs = 900\n")));
    let report = server.reload();
    assert!(report.ok, "{:?}", report.lines);
    let (mut client, _) = greeting(&server);
    assert!(rcpt(&mut client, "alice@example.org").starts_with("250"));
    server.clock.advance(5 * MINUTE);
    assert!(client.command("RCPT TO:<bob@example.org>").unwrap().starts_with("451 4.7.1"));
    server.clock.advance(10 * MINUTE);
    assert!(client.command("RCPT TO:<bob@example.org>").unwrap().starts_with("250"));
}
