//! The host's policy in the live server (contract 2.0): decisions at
//! connect, MAIL, RCPT and the end of data reach real clients as the
//! guest renders them, over real sockets into a real Maildir.

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use smtp_core::{Answer, Envelope, MailRequest, Questions, RcptRequest, Reason, Refusal};
use smtpcell::policy::{Client, Decision, EndOfData, EndOfDataDecision, Policy};
use smtpcell_tests::client::RawClient;
use smtpcell_tests::server::{TestServer, stored_message};

/// Refuses `nobody@…` at RCPT (550 5.1.1) and senders at `spf-fail.test`
/// (550 5.7.23 with a URL), records every RCPT question it saw, and
/// refuses at the end of data any message whose content is over 100 octets.
#[derive(Default)]
struct Scripted {
    asked: Mutex<Vec<(String, String)>>,
}

impl Policy for Scripted {
    fn questions(&self) -> Questions {
        Questions { mail: true, rcpt: true, ..Questions::default() }
    }

    fn mail<'a>(&'a self, _client: &'a Client, mail: &'a MailRequest) -> Decision<'a> {
        Box::pin(async move {
            if mail.reverse_path.ends_with("@spf-fail.test") {
                Answer::Refuse(Refusal {
                    reason: Reason::SenderRefused,
                    permanent: true,
                    text: Some("see https://smtpcell.test/spf".into()),
                    disconnect: false,
                })
            } else {
                Answer::ACCEPT
            }
        })
    }

    fn rcpt<'a>(&'a self, client: &'a Client, rcpt: &'a RcptRequest) -> Decision<'a> {
        Box::pin(async move {
            self.asked.lock().unwrap().push((client.ip.to_string(), rcpt.recipient.address.clone()));
            if rcpt.recipient.address.starts_with("nobody@") {
                Answer::refuse(Reason::NoSuchUser, true)
            } else {
                Answer::ACCEPT
            }
        })
    }

    fn end_of_data<'a>(&'a self, _client: &'a Client, _envelope: &'a Envelope, size: u64) -> EndOfDataDecision<'a> {
        Box::pin(async move {
            if size > 100 {
                EndOfData::Refuse(Refusal { reason: Reason::Policy, permanent: true, text: None, disconnect: false })
            } else {
                EndOfData::Accept { headers: Vec::new() }
            }
        })
    }
}

#[test]
fn one_recipient_of_three_is_refused_and_the_message_stored_for_the_other_two() {
    let server = TestServer::builder().policy(Scripted::default()).start();
    let mut c = RawClient::connect(server.addr).unwrap();
    assert!(c.reply().unwrap().starts_with("220 "));
    // A pipelining client: the whole transaction in one write.
    c.send(
        b"EHLO client.example\r\nMAIL FROM:<alice@client.example>\r\nRCPT TO:<bob@smtpcell.test>\r\n\
          RCPT TO:<nobody@smtpcell.test>\r\nRCPT TO:<carol@smtpcell.test>\r\nDATA\r\n",
    )
    .unwrap();
    assert!(c.reply().unwrap().starts_with("250-smtpcell.test"));
    for expected in ["250 2.1.0 Ok", "250 2.1.5 Ok", "550 5.1.1 No such user here", "250 2.1.5 Ok", "354 "] {
        let reply = c.reply().unwrap();
        assert!(reply.starts_with(expected), "{reply:?} instead of {expected:?}");
    }
    let queued = c.command("Subject: two of three\r\n\r\nhello\r\n.").unwrap();
    assert!(queued.starts_with("250 2.0.0 Ok: queued as "), "{queued}");
    assert_eq!(c.command("QUIT").unwrap(), "221 2.0.0 Bye\r\n");
    let delivered = server.delivered();
    assert_eq!(delivered.len(), 1);
    let stored = stored_message(&delivered[0]).unwrap();
    let trace = stored.trace_text();
    assert!(
        trace.contains("X-Envelope-To: <bob@smtpcell.test>\r\nX-Envelope-To: <carol@smtpcell.test>\r\n"),
        "{trace}"
    );
    assert!(!trace.contains("nobody"), "{trace}");
    assert_eq!(stored.content, b"Subject: two of three\r\n\r\nhello\r\n");
}

#[test]
fn refusals_at_mail_and_end_of_data_reach_the_client_and_store_nothing() {
    let policy = Scripted::default();
    let server = TestServer::builder().policy(policy).start();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    c.command("HELO client.example").unwrap();
    assert_eq!(
        c.command("MAIL FROM:<eve@spf-fail.test>").unwrap(),
        "550 5.7.23 Sender not authorized: see https://smtpcell.test/spf\r\n"
    );
    assert!(c.command("MAIL FROM:<alice@client.example>").unwrap().starts_with("250"));
    assert!(c.command("RCPT TO:<bob@smtpcell.test>").unwrap().starts_with("250"));
    assert!(c.command("DATA").unwrap().starts_with("354"));
    let big = "x".repeat(200);
    assert_eq!(c.command(&format!("{big}\r\n.")).unwrap(), "550 5.7.1 Refused by local policy\r\n");
    assert!(server.delivered().is_empty());
    assert!(server.leftovers().is_empty(), "a refused message left files in tmp/");
}

#[test]
fn python_smtplib_sees_the_refused_recipient() {
    let server = TestServer::builder().policy(Scripted::default()).start();
    let script = r#"
import smtplib, sys
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    refused = s.sendmail("alice@client.example",
        ["bob@smtpcell.test", "nobody@smtpcell.test", "carol@smtpcell.test"], "Subject: hi\r\n\r\nhi\r\n")
    print(sorted((k, v[0]) for k, v in refused.items()))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &server.addr.ip().to_string(), &server.addr.port().to_string()])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[('nobody@smtpcell.test', 550)]");
    assert_eq!(server.delivered().len(), 1);
}

/// Refuses every connection for good, or for now.
struct Closed {
    permanent: bool,
}

impl Policy for Closed {
    fn questions(&self) -> Questions {
        Questions { connect: true, ..Questions::default() }
    }

    fn connect<'a>(&'a self, _client: &'a Client) -> Decision<'a> {
        Box::pin(std::future::ready(Answer::refuse(Reason::RateLimited, self.permanent)))
    }
}

#[test]
fn a_refused_connection_gets_554_then_only_quit_or_421_and_close() {
    let server = TestServer::builder().policy(Closed { permanent: true }).start();
    let mut c = RawClient::connect(server.addr).unwrap();
    assert_eq!(c.reply().unwrap(), "554 5.7.1 smtpcell.test Rate limit exceeded\r\n");
    assert_eq!(c.command("EHLO client.example").unwrap(), "503 5.5.1 Error: no service here, send QUIT\r\n");
    assert_eq!(c.command("QUIT").unwrap(), "221 2.0.0 Bye\r\n");
    let server = TestServer::builder().policy(Closed { permanent: false }).start();
    let mut c = RawClient::connect(server.addr).unwrap();
    assert_eq!(c.read_to_close().unwrap(), "421 4.7.0 smtpcell.test Rate limit exceeded, try again later\r\n");
}

/// Never decides.
struct Stuck;

impl Policy for Stuck {
    fn questions(&self) -> Questions {
        Questions { helo: true, ..Questions::default() }
    }

    fn helo<'a>(&'a self, _client: &'a Client, _hello: &'a smtp_core::Hello) -> Decision<'a> {
        Box::pin(std::future::pending())
    }
}

#[test]
fn a_policy_that_does_not_decide_in_time_is_a_temporary_local_error() {
    let server = TestServer::builder()
        .policy(Stuck)
        .config(|c| c.command_timeout = Duration::from_millis(300))
        .capture_log()
        .start();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    assert_eq!(c.command("HELO client.example").unwrap(), "451 4.3.0 Temporary failure, please try again later\r\n");
    assert!(server.log().contains("the policy did not decide in time"), "{}", server.log());
}

/// Adds header fields at the end of data: well-formed ones, or, for a
/// message whose reverse-path is `<bad@...>`, a bare LF that would let the
/// policy forge header lines.
struct Stamps;

impl Policy for Stamps {
    fn end_of_data<'a>(&'a self, _client: &'a Client, envelope: &'a Envelope, _size: u64) -> EndOfDataDecision<'a> {
        let headers: &[u8] = if envelope.reverse_path.starts_with("bad@") {
            b"Authentication-Results: smtpcell.test; none\nX-Forged: yes\r\n"
        } else {
            b"Authentication-Results: smtpcell.test;\r\n\tspf=pass smtp.mailfrom=client.example\r\n"
        };
        Box::pin(std::future::ready(EndOfData::Accept { headers: headers.to_vec() }))
    }
}

#[test]
fn end_of_data_header_fields_are_stored_above_received_and_malformed_ones_refused() {
    let server = TestServer::builder().policy(Stamps).start();
    for (sender, size) in [("alice", 10), ("alice", 300 << 10), ("bad", 10)] {
        let mut c = RawClient::connect(server.addr).unwrap();
        c.reply().unwrap();
        c.command("HELO client.example").unwrap();
        c.command(&format!("MAIL FROM:<{sender}@client.example>")).unwrap();
        c.command("RCPT TO:<bob@smtpcell.test>").unwrap();
        assert!(c.command("DATA").unwrap().starts_with("354"));
        // Lines of 100 octets (the line limit is 1000).
        let body = format!("{}\r\n", "x".repeat(98)).repeat(size / 100);
        let reply = c.command(&format!("Subject: {size}\r\n\r\n{body}\r\n.")).unwrap();
        if sender == "bad" {
            assert_eq!(reply, "451 4.3.0 Temporary failure, please try again later\r\n");
        } else {
            assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
        }
    }
    let delivered = server.delivered();
    assert_eq!(delivered.len(), 2, "the malformed fields stored nothing");
    for file in delivered {
        let stored = stored_message(&file).unwrap();
        let trace = stored.trace_text();
        assert!(
            trace.contains(
                "X-Envelope-Body: 7BIT\r\nAuthentication-Results: smtpcell.test;\r\n\tspf=pass \
                 smtp.mailfrom=client.example\r\nReceived: from client.example"
            ),
            "{trace}"
        );
        assert!(stored.content.starts_with(b"Subject: "));
    }
    assert!(server.leftovers().is_empty());
}

/// Never decides the end of a message.
struct Undecided;

impl Policy for Undecided {
    fn end_of_data<'a>(&'a self, _client: &'a Client, _envelope: &'a Envelope, _size: u64) -> EndOfDataDecision<'a> {
        Box::pin(std::future::pending())
    }
}

#[test]
fn an_end_of_data_decision_that_does_not_come_in_time_stores_nothing() {
    let server = TestServer::builder()
        .policy(Undecided)
        .config(|c| c.data_end_timeout = Duration::from_millis(300))
        .capture_log()
        .start();
    let mut c = RawClient::connect(server.addr).unwrap();
    c.reply().unwrap();
    c.command("HELO client.example").unwrap();
    c.command("MAIL FROM:<alice@client.example>").unwrap();
    c.command("RCPT TO:<bob@smtpcell.test>").unwrap();
    c.command("DATA").unwrap();
    assert_eq!(c.command("hi\r\n.").unwrap(), "451 4.3.0 Temporary failure, please try again later\r\n");
    assert!(server.delivered().is_empty());
    assert!(server.leftovers().is_empty());
    assert!(server.log().contains("did not decide the end of data in time"), "{}", server.log());
}
