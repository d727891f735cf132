//! What a client can make the server do with legitimate traffic, and how
//! long the server waits on a client: replies are bounded by the input
//! that asks for them (wit/session.wit), every write to a client has a
//! timeout, and the timeout in force follows the SMTP phase.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use smtpcell_tests::client::RawClient;
use smtpcell_tests::server::TestServer;

fn greeted(server: &TestServer) -> RawClient {
    let mut c = RawClient::connect(server.addr).unwrap();
    assert!(c.reply().unwrap().starts_with("220 smtpcell.test "));
    c
}

/// Writes `input` from another thread (the server answers while the client
/// is still sending), then returns every reply line until the server
/// closes, `until` says the last expected line has come, or `most` lines.
fn exchange(server: &TestServer, input: Vec<u8>, most: usize, until: impl Fn(&str) -> bool) -> Vec<String> {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sending = std::thread::spawn(move || writer.write_all(&input));
    let mut lines = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.expect("the server answers within 60 s");
        let done = until(&line) || lines.len() + 1 == most;
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = sending.join();
    lines
}

#[test]
fn thousands_of_pipelined_ehlo_in_one_write_all_get_their_250() {
    let server = TestServer::builder().capture_log().start();
    let mut input = b"EHLO a\r\n".repeat(6_899);
    input.extend_from_slice(b"QUIT\r\n");
    let lines = exchange(&server, input, usize::MAX, |line| line.starts_with("221 ") || line.starts_with("421 "));
    assert!(lines[0].starts_with("220 "), "{:?}", lines[0]);
    // One reply per command (RFC 2920): the last line of each EHLO reply.
    assert_eq!(lines.iter().filter(|l| l.starts_with("250 ")).count(), 6_899);
    assert!(lines.last().unwrap().starts_with("221 "), "{:?}", lines.last());
    assert!(!server.log().contains("guest fault"), "{}", server.log());
}

#[test]
fn a_write_of_empty_lines_ends_with_a_reply_to_the_client_not_a_guest_fault() {
    let server = TestServer::builder().capture_log().start();
    let input = b"\r\n".repeat(25_576);
    let lines = exchange(&server, input, 1 + 25, |line| line.starts_with("421 "));
    let replies = &lines[1..];
    // The guest counts protocol errors and gives up on the client after 20.
    assert_eq!(replies.len(), 21, "{:?}", &replies[..replies.len().min(25)]);
    assert!(replies[..20].iter().all(|l| l.starts_with("500 ")), "{replies:?}");
    assert!(replies[20].starts_with("421 4.7.0 "), "{:?}", replies[20]);
    assert!(!server.log().contains("guest fault"), "{}", server.log());
}

#[test]
fn a_client_that_never_reads_its_replies_is_cut_off_within_the_write_timeout() {
    let server = TestServer::builder().capture_log().config(|c| c.command_timeout = Duration::from_secs(3)).start();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // Set before connecting, so the window the client advertises stays small.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stalled: TcpStream = socket.into();
    let mut writer = stalled.try_clone().unwrap();
    // Far more replies than the kernel buffers on both sides hold; the
    // sender stops when the server has closed the connection.
    let sending = std::thread::spawn(move || {
        writer.write_all(b"EHLO a\r\n")?;
        let help = b"HELP\r\n".repeat(60_000);
        writer.write_all(&help)?;
        let ehlo = b"EHLO a\r\n".repeat(1000);
        loop {
            writer.write_all(&ehlo)?;
        }
    });
    let start = Instant::now();

    // Meanwhile another client is served normally.
    let mut other = greeted(&server);
    assert!(other.command("EHLO other.example").unwrap().starts_with("250"));
    assert!(other.command("QUIT").unwrap().starts_with("221"));

    // The sender's writes fail once the server has closed the connection.
    while !sending.is_finished() {
        assert!(start.elapsed() < Duration::from_secs(15), "the server still waits on a client that does not read");
        std::thread::sleep(Duration::from_millis(50));
    }
    let ended: std::io::Result<()> = sending.join().unwrap();
    assert!(ended.is_err(), "the sender ends only when the server closes");
    // What the server did send arrives, then the close (or a reset).
    stalled.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut rest = Vec::new();
    if let Err(err) = stalled.read_to_end(&mut rest) {
        assert_ne!(err.kind(), std::io::ErrorKind::WouldBlock, "the connection is still open");
    }
    assert!(server.log().contains("client did not read its replies"), "{}", server.log());
}

/// After the 354 of DATA (data timeout 3 s, command timeout 20 s).
fn silent_mid_message(content: &[u8]) -> (String, Duration) {
    let server = TestServer::builder()
        .config(|c| {
            c.data_timeout = Duration::from_secs(3);
            c.command_timeout = Duration::from_secs(20);
        })
        .start();
    let mut c = greeted(&server);
    assert!(c.command("EHLO client.example").unwrap().starts_with("250"));
    assert!(c.command("MAIL FROM:<a@example.org>").unwrap().starts_with("250"));
    assert!(c.command("RCPT TO:<b@example.org>").unwrap().starts_with("250"));
    assert!(c.command("DATA").unwrap().starts_with("354"));
    let start = Instant::now();
    c.send(content).unwrap();
    let reply = c.reply().unwrap();
    (reply, start.elapsed())
}

#[test]
fn a_client_silent_in_the_middle_of_a_message_gets_the_data_timeout() {
    let (reply, waited) = silent_mid_message(b"Subject: s\r\n\r\nabc\r\n");
    assert!(reply.starts_with("421 4.4.2 "), "{reply:?}");
    assert!(waited < Duration::from_secs(10), "421 after {waited:?}, not within the 3 s data timeout");
}

#[test]
fn a_message_doomed_by_a_bare_lf_still_gets_the_data_timeout() {
    // The bare LF dooms the message (RFC 5321 section 2.3.8), but the
    // client is still sending content: the data timeout applies.
    let (reply, waited) = silent_mid_message(b"Subject: s\r\n\r\nabc\ndef\r\n");
    assert!(reply.starts_with("421 4.4.2 "), "{reply:?}");
    assert!(waited < Duration::from_secs(10), "421 after {waited:?}, not within the 3 s data timeout");
}
