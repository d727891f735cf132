//! What one session can make its guest hold, whatever the client sends:
//! linear memory of the component instance (the host's accounting, which
//! never shrinks, so it is the peak) after hostile inputs fed the way the
//! server feeds them, in reads of at most 64 KiB.

use smtpcell::policy::Role;
use smtpcell::runtime::{GuestSession, PeerInfo};
use smtpcell::server::ServerConfig;
use smtpcell_tests::driver::embedded_component;

const READ: usize = 64 << 10;
/// The documented bound (README, "Memory per session").
const BOUND: usize = 2 << 20;

fn peak_after(setup: &[u8], hostile: impl Iterator<Item = Vec<u8>>) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let config = smtpcell::runtime::guest_config(
            &ServerConfig { hostname: "smtpcell.test".into(), ..ServerConfig::default() }.session_config(
                Role::Mx,
                Default::default(),
                Default::default(),
            ),
        );
        let peer = PeerInfo { ip: "192.0.2.1".into(), port: 1 };
        let mut guest = GuestSession::start(&embedded_component(), &config, &peer).await.unwrap();
        guest.greeting().await.unwrap();
        guest.feed(setup).await.unwrap();
        for chunk in hostile {
            guest.feed(&chunk).await.expect("the guest survives hostile input");
        }
        guest.memory_bytes()
    })
}

fn repeat(byte: u8, total: usize) -> impl Iterator<Item = Vec<u8>> {
    (0..total / READ).map(move |_| vec![byte; READ])
}

#[test]
fn hostile_input_cannot_grow_a_session_past_the_bound() {
    let idle = peak_after(b"EHLO a.example\r\n", std::iter::empty());
    let endless_command = peak_after(b"EHLO a.example\r\n", repeat(b'A', 10 << 20));
    let endless_data_line = peak_after(
        b"EHLO a.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n",
        repeat(b'x', 10 << 20),
    );
    let recipients =
        (0..10_000).map(|i| format!("RCPT TO:<recipient-number-{i:05}@a-rather-long-domain-name.example>\r\n"));
    let many_recipients = peak_after(
        b"EHLO a.example\r\nMAIL FROM:<a@example.org>\r\n",
        recipients
            .collect::<Vec<_>>()
            .concat()
            .into_bytes()
            .chunks(READ)
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>()
            .into_iter(),
    );
    let big_message = peak_after(
        b"EHLO a.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n",
        (0..(10 << 20) / READ).map(|_| b"a normal line of text in a big message\r\n".repeat(READ / 40)),
    );
    let table = [
        ("idle after EHLO", idle),
        ("10 MB command line, no CRLF", endless_command),
        ("10 MB DATA line, no CRLF", endless_data_line),
        ("10,000 RCPT (limit 100)", many_recipients),
        ("10 MB message", big_message),
    ];
    for (case, bytes) in table {
        println!("{case:32} {:>8} KiB of guest linear memory", bytes >> 10);
        assert!(bytes <= BOUND, "{case}: {bytes} bytes exceeds the {BOUND}-byte bound");
    }
}
