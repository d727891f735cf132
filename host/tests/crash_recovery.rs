//! A crash leaves nothing behind for long: after `kill -9` in the middle of
//! messages, the next start removes their partial files from tmp/ and says
//! how many, while every acknowledged message stays where it was.

mod support;

use std::io::Write;
use std::time::Duration;

use support::*;

#[test]
fn kill_9_mid_message_leaves_tmp_files_that_the_next_start_removes() {
    let dir = TempDir::new("crash");
    let mut first = serve(dir.path(), &[]);
    for n in 0..3 {
        deliver(first.addr, &format!("acknowledged {n}"));
    }
    let acknowledged = first.delivered();
    assert_eq!(acknowledged.len(), 3);

    // Five clients in the middle of DATA, each with part of a message on disk.
    let mut in_flight = Vec::new();
    for n in 0..5 {
        let mut c = Client::greeted(first.addr);
        c.open_message();
        c.send(format!("Subject: in flight {n}\r\n\r\n").as_bytes());
        c.send(&b"0123456789abcdef\r\n".repeat(4096));
        in_flight.push(c);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while first.leftovers().len() < 5 {
        assert!(std::time::Instant::now() < deadline, "tmp/ never held the five partial messages");
        std::thread::sleep(Duration::from_millis(20));
    }
    first.signal("KILL");
    first.wait_exit(EXIT);
    drop(in_flight);
    assert_eq!(first.leftovers().len(), 5, "kill -9 leaves the partial files");
    // A file of another delivery agent sharing the Maildir is not ours to remove.
    let foreign = first.maildir.join("tmp").join("1700000000.12345_1.other-agent");
    std::fs::File::create(&foreign).unwrap().write_all(b"not smtpcell's").unwrap();

    let second = serve(dir.path(), &[]);
    let line = second.log.wait_for(0, &["removed partial messages"], START);
    assert_eq!(field(&line, "files"), "5", "{line}");
    // Each file holds at least its trace headers.
    assert!(field(&line, "bytes").parse::<u64>().unwrap() >= 5 * 100, "{line}");
    assert_eq!(second.leftovers(), [foreign], "only smtpcell's leftovers are removed");
    assert_eq!(second.delivered().len(), 3, "acknowledged messages are untouched");
    for path in &acknowledged {
        assert!(path.exists(), "{} vanished", path.display());
    }
    // And the restarted server delivers as usual.
    deliver(second.addr, "after the crash");
    assert_eq!(second.delivered().len(), 4);
}
