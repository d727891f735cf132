//! Maildir delivery (the format of qmail, Dovecot and Courier): a message is
//! written under tmp/, made durable, renamed into new/, and new/ is made
//! durable. A reader never sees a partial file, and a crash after the 250
//! cannot lose the message: both the file's bytes and the directory entry
//! that names it are on disk before the client hears 250.
//!
//! The header block comes first in the file but is complete only at commit,
//! so content is held in memory and spilled to tmp/ past a bound (see
//! [`super::content`]); the block is written at commit.
//!
//! The flushes are group-committed on one thread (see [`super::commit`]):
//! messages that finish together share one filesystem sync before their
//! renames and one fsync of new/ after them.
//!
//! [`Maildir`] is the spool of one Maildir, every recipient in the one copy:
//! the [`Router`] with neither users' Maildirs nor an outgoing one.

use std::io;
use std::path::{Path, PathBuf};

use super::router::{Router, Routes};
use super::{MessageMeta, Spool, Transaction};

/// A Maildir rooted at a directory (created, with tmp/ new/ cur/, if missing).
pub struct Maildir {
    router: Router,
}

impl Maildir {
    /// Opens (creating if missing) the Maildir at `root` for a server named
    /// `hostname`, and removes the partial messages a crashed or killed
    /// server left in its `tmp/` (see [`super::recovery`]; once per
    /// process: opening it again sweeps nothing).
    ///
    /// Errors: creating or reading the directories, starting the commit thread.
    pub fn open(root: impl Into<PathBuf>, hostname: &str) -> io::Result<Maildir> {
        Ok(Maildir { router: Router::open(root, Routes::default(), hostname)? })
    }

    pub fn root(&self) -> &Path {
        self.router.inbox()
    }
}

impl Spool for Maildir {
    /// Creates the message's tmp/ file, which names it (`new/` gets the same
    /// name) and holds whatever content outgrows memory. Recipients routed
    /// anywhere but [`super::Destination::Inbox`] fail it
    /// ([`io::ErrorKind::Unsupported`]).
    fn begin(&self, meta: &MessageMeta) -> io::Result<Box<dyn Transaction>> {
        self.router.begin(meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::recovery::sweep_tmp;
    use crate::spool::{HELD_CONTENT_MAX, trace_headers};
    use std::fs;
    use std::net::Ipv4Addr;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn meta() -> MessageMeta {
        MessageMeta {
            server_hostname: "mx.test".into(),
            client_ip: Ipv4Addr::LOCALHOST.into(),
            helo: "client.test".into(),
            reverse_path: "a@b.test".into(),
            recipients: vec![super::super::StoredRecipient {
                address: "c@d.test".into(),
                notify: None,
                orcpt: None,
                destinations: vec![super::super::Destination::Inbox],
            }],
            protocol: "ESMTP".into(),
            body: "7BIT",
            smtputf8: false,
            dsn_return: None,
            dsn_envid: None,
            received_at: SystemTime::now(),
            handled_by: "test@0".into(),
            tls: None,
            authenticated: None,
        }
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect()
    }

    /// The one message in new/: its queue id (the file name's unique part)
    /// and its bytes.
    fn stored(dir: &Path) -> (String, Vec<u8>) {
        let stored = files(&dir.join("new"));
        assert_eq!(stored.len(), 1, "{stored:?}");
        let name = stored[0].file_name().unwrap().to_str().unwrap();
        (name.strip_suffix(".mx.test").unwrap().to_string(), fs::read(&stored[0]).unwrap())
    }

    fn no_commit() -> Arc<AtomicBool> {
        Arc::new(AtomicBool::new(false))
    }

    /// `len` octets of message content in CRLF lines, numbered so that any
    /// lost, doubled or misplaced piece shows.
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

    const END: &[u8] = b"Authentication-Results: mx.test; spf=pass smtp.mailfrom=b.test\r\n\
                         Received-SPF: pass (mx.test: domain of a@b.test designates 127.0.0.1) client-ip=127.0.0.1\r\n";

    /// Stores `content` written in pieces of `piece` octets with `end` as
    /// end headers, and checks the stored file: the header block with the
    /// end headers between the envelope and Received, then the content
    /// byte for byte; nothing left in tmp/.
    async fn store_and_check(content: &[u8], piece: usize, end: &[u8]) {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(dir.path(), "mx.test").unwrap();
        let meta = meta();
        let mut txn = maildir.begin(&meta).unwrap();
        for chunk in content.chunks(piece) {
            txn.write(chunk).unwrap();
        }
        let queue_id = txn.queue_id().to_string();
        txn.commit(end.to_vec(), no_commit()).await.unwrap();
        let (name, bytes) = stored(dir.path());
        assert_eq!(name, queue_id, "new/ names the message by its queue id");
        let headers = trace_headers(&meta, &queue_id, end);
        assert_eq!(bytes.len(), headers.len() + content.len());
        assert!(bytes[..headers.len()] == headers[..], "the header block");
        assert!(bytes[headers.len()..] == *content, "the content, byte for byte");
        let text = String::from_utf8_lossy(&headers);
        let at = text.find("X-Envelope-Body: 7BIT\r\n").unwrap() + "X-Envelope-Body: 7BIT\r\n".len();
        assert_eq!(&headers[at..at + end.len()], end, "{text}");
        assert!(text[at + end.len()..].starts_with("Received: from client.test"), "{text}");
        assert!(files(&dir.path().join("tmp")).is_empty());
    }

    #[tokio::test]
    async fn a_small_message_is_stored_with_its_end_headers_above_received() {
        store_and_check(&content(1000), 300, END).await;
        store_and_check(&content(HELD_CONTENT_MAX), 64 << 10, END).await;
    }

    #[tokio::test]
    async fn a_large_message_is_stored_with_its_end_headers_above_received() {
        // 64 KiB pieces, as the server hands over one read at a time; and
        // pieces that straddle the held bound in every way.
        store_and_check(&content(5 << 20), 64 << 10, END).await;
        store_and_check(&content(HELD_CONTENT_MAX + 1), 1000, END).await;
        store_and_check(&content((5 << 20) + 17), 200_001, END).await;
    }

    #[tokio::test]
    async fn without_end_headers_a_large_message_is_stored_where_it_spilled() {
        store_and_check(&content(5 << 20), 64 << 10, b"").await;
        store_and_check(&content(HELD_CONTENT_MAX + 1), 1000, b"").await;
    }

    #[tokio::test]
    async fn without_end_headers_a_small_message_is_laid_out_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(dir.path(), "mx.test").unwrap();
        let mut meta = meta();
        meta.received_at = UNIX_EPOCH + std::time::Duration::from_secs(1_795_875_172);
        let mut txn = maildir.begin(&meta).unwrap();
        txn.write(b"Subject: hi\r\n\r\nbody\r\n").unwrap();
        txn.commit(Vec::new(), no_commit()).await.unwrap();
        let (id, bytes) = stored(dir.path());
        // The bytes a message got when the trace headers were written at begin.
        let expected = format!(
            "Return-Path: <a@b.test>\r\n\
             X-Envelope-To: <c@d.test>\r\n\
             X-Envelope-Body: 7BIT\r\n\
             Received: from client.test ([127.0.0.1])\r\n\
             \tby mx.test (smtpcell, test@0) with ESMTP id {id}\r\n\
             \tfor <c@d.test>;\r\n\
             \tSat, 28 Nov 2026 14:12:52 +0000\r\n\
             Subject: hi\r\n\r\nbody\r\n"
        );
        assert_eq!(String::from_utf8(bytes).unwrap(), expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commits_are_all_durable_visible_and_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Arc::new(Maildir::open(dir.path(), "mx.test").unwrap());
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..200 {
            let maildir = maildir.clone();
            tasks.spawn(async move {
                let mut txn = maildir.begin(&meta()).unwrap();
                // One in ten is large enough to spill.
                let filler = if n % 10 == 0 { "X-Filler: 0123456789abcdef\r\n".repeat(4000) } else { String::new() };
                txn.write(format!("Subject: {n}\r\n{filler}\r\nbody {n}\r\n").as_bytes()).unwrap();
                txn.commit(Vec::new(), no_commit()).await
            });
        }
        while let Some(outcome) = tasks.join_next().await {
            outcome.unwrap().unwrap();
        }
        let stored = files(&dir.path().join("new"));
        assert_eq!(stored.len(), 200);
        let mut bodies: Vec<String> = stored
            .iter()
            .map(|p| fs::read_to_string(p).unwrap().rsplit("\r\n\r\n").next().unwrap().to_string())
            .collect();
        bodies.sort();
        bodies.dedup();
        assert_eq!(bodies.len(), 200, "every message is stored once, whole");
        assert!(files(&dir.path().join("tmp")).is_empty());
    }

    /// A fresh Maildir and one open transaction with `content` written.
    fn one_written(content: &[u8]) -> (tempfile::TempDir, Maildir, Box<dyn Transaction>) {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::open(dir.path(), "mx.test").unwrap();
        let mut txn = maildir.begin(&meta()).unwrap();
        txn.write(content).unwrap();
        (dir, maildir, txn)
    }

    /// Held in memory, and spilled to tmp/.
    fn small_and_large() -> [Vec<u8>; 2] {
        [content(500), content(5 << 20)]
    }

    #[tokio::test]
    async fn stored_mail_and_the_maildir_are_private() {
        use std::os::unix::fs::PermissionsExt;
        for content in small_and_large() {
            let (dir, _maildir, txn) = one_written(&content);
            txn.commit(Vec::new(), no_commit()).await.unwrap();
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            let stored = files(&dir.path().join("new"));
            assert_eq!(stored.len(), 1);
            assert_eq!(mode(&stored[0]), 0o600, "a stored message is readable by its owner only");
            for sub in ["tmp", "new", "cur"] {
                assert_eq!(mode(&dir.path().join(sub)), 0o700, "{sub}/");
            }
        }
    }

    #[tokio::test]
    async fn a_cancelled_commit_stores_nothing() {
        for content in small_and_large() {
            let (dir, _maildir, txn) = one_written(&content);
            let err = txn.commit(END.to_vec(), Arc::new(AtomicBool::new(true))).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::TimedOut);
            assert!(files(&dir.path().join("new")).is_empty());
            assert!(files(&dir.path().join("tmp")).is_empty());
        }
    }

    #[test]
    fn a_dropped_transaction_leaves_nothing_behind() {
        for content in small_and_large() {
            let (dir, _maildir, txn) = one_written(&content);
            let tmp = files(&dir.path().join("tmp"));
            assert_eq!(tmp.len(), 1);
            let on_disk = fs::metadata(&tmp[0]).unwrap().len();
            assert_eq!(on_disk > 0, content.len() > HELD_CONTENT_MAX, "{on_disk} octets in tmp/");
            drop(txn);
            assert!(files(&dir.path().join("tmp")).is_empty());
            assert!(files(&dir.path().join("new")).is_empty());
        }
    }

    #[test]
    fn a_spill_file_left_by_a_dead_process_is_swept() {
        let (dir, _maildir, txn) = one_written(&content(5 << 20));
        let tmp = dir.path().join("tmp");
        let [spill] = files(&tmp).try_into().unwrap();
        // As if its process had been killed: the same file under the name of
        // a pid that no process has. Found without starting a process: a
        // fork here can make the recovery tests' freshly copied executable
        // fail to start (ETXTBSY, the child holding it open for writing).
        let pid_max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max").unwrap().trim().parse().unwrap();
        let dead = (2..pid_max).rev().find(|pid| !Path::new(&format!("/proc/{pid}")).exists()).unwrap();
        let name = spill.file_name().unwrap().to_str().unwrap();
        let orphan = tmp.join(name.replace(&format!("P{}Q", std::process::id()), &format!("P{dead}Q")));
        assert_ne!(orphan, spill);
        fs::rename(&spill, &orphan).unwrap();
        drop(txn);
        let swept = sweep_tmp(&tmp, "mx.test", std::process::id()).unwrap();
        assert_eq!((swept.removed, swept.live), (1, 0));
        assert!(swept.bytes > 4 << 20, "{swept:?}");
        assert!(files(&tmp).is_empty());
    }
}
