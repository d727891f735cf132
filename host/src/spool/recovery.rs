//! Start-up recovery of a Maildir's `tmp/`.
//!
//! A message is written under `tmp/` while it arrives and renamed into
//! `new/` only once it is durable, so a crash or `kill -9` leaves the
//! messages that were in flight as partial files in `tmp/`: each message's
//! own file (empty while its content is still held in memory, see
//! `spool::content`), and for a large message caught at commit, the file
//! its header block and content were being copied into. None of them was
//! acknowledged (the 250 comes after the rename), so nothing is lost by
//! removing them, and nothing else ever would: without this sweep they stay
//! forever.
//!
//! Only files this server writes are touched, recognised by their name
//! (`{seconds}.M{microseconds}P{pid}Q{counter}.{host}`, see
//! `Names::create_tmp` in names.rs, which names them all) with our own host
//! part; files of other delivery agents sharing the Maildir are left alone.
//! A file is removed when the process that wrote it no longer runs: its pid
//! is gone, is our own (a restarted server can get the crashed one's pid, as
//! PID 1 in a container always does), or now belongs to a different
//! program. A file whose writer is another live smtpcell process (two
//! servers sharing one Maildir) is kept.
//!
//! Each Maildir is swept once per process ([`sweep_tmp_once`]): the inbox
//! and the outgoing Maildir when the spool opens, a user's Maildir on the
//! first delivery to it. Never again, since from then on the files there
//! named with our pid are our own messages in flight, even those of a
//! spool opened again (a reload) for the same directories.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use tracing::{info, warn};

/// The `tmp/` directories this process has swept, by canonical path. At
/// most one entry per Maildir the operator's configuration has named
/// (users' Maildirs come from the recipients table, never from a client).
static SWEPT: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Default::default);

/// [`sweep_tmp`] of `tmp` (with this process's pid) the first time this
/// process asks for that directory, logging what was removed and kept;
/// nothing on later calls.
///
/// Errors: resolving or reading the directory; it then counts as not swept.
pub(super) fn sweep_tmp_once(tmp: &Path, host_part: &str) -> io::Result<()> {
    let canonical = tmp.canonicalize()?;
    // Held while sweeping: two first deliveries to one Maildir must not
    // both sweep, the second taking the first's file for a leftover.
    let mut swept_dirs = SWEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if swept_dirs.contains(&canonical) {
        return Ok(());
    }
    let swept = sweep_tmp(&canonical, host_part, std::process::id())?;
    swept_dirs.insert(canonical);
    drop(swept_dirs);
    if swept.removed > 0 {
        warn!(
            files = swept.removed,
            bytes = swept.bytes,
            tmp = %tmp.display(),
            "removed partial messages left in tmp/ by a server that stopped without finishing them \
             (crash or kill); none had been acknowledged"
        );
    }
    if swept.live > 0 {
        info!(files = swept.live, tmp = %tmp.display(), "tmp/ holds messages in flight in another running smtpcell; kept");
    }
    Ok(())
}

/// What [`sweep_tmp`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Partial messages removed.
    pub removed: usize,
    /// Their total size, in octets.
    pub bytes: u64,
    /// Our files kept because the process that writes them still runs.
    pub live: usize,
}

/// Removes from `tmp` the partial messages left by smtpcell processes with
/// host part `host_part` that no longer run. `own_pid` is this process's id.
///
/// Errors: reading the directory; a file that vanishes meanwhile is skipped.
pub fn sweep_tmp(tmp: &Path, host_part: &str, own_pid: u32) -> io::Result<Swept> {
    let own_program = program(own_pid);
    let mut swept = Swept::default();
    for entry in fs::read_dir(tmp)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| writer_pid(name, host_part)) else {
            continue;
        };
        let writer_runs = pid != own_pid && own_program.is_some() && program(pid) == own_program;
        if writer_runs {
            swept.live += 1;
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() && fs::remove_file(entry.path()).is_ok() {
            swept.removed += 1;
            swept.bytes += meta.len();
        }
    }
    Ok(swept)
}

/// The pid in a name of the form `{secs}.M{usec}P{pid}Q{n}.{host_part}`, or
/// `None` for any other name.
fn writer_pid(name: &str, host_part: &str) -> Option<u32> {
    let unique = name.strip_suffix(host_part)?.strip_suffix('.')?;
    let (secs, rest) = unique.split_once(".M")?;
    let (usec, rest) = rest.split_once('P')?;
    let (pid, counter) = rest.split_once('Q')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(secs) && digits(usec) && digits(counter)) {
        return None;
    }
    pid.parse().ok().filter(|_| digits(pid))
}

/// The executable a running process was started from (`/proc/PID/exe`'s
/// file name), or `None` when no such process runs (or it cannot be seen).
/// The file name rather than `comm`, which the kernel cuts at 15 octets.
fn program(pid: u32) -> Option<std::ffi::OsString> {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    exe.file_name().map(|name| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn names_are_recognised_strictly() {
        assert_eq!(writer_pid("1795875172.M123456P4242Q0.mx.test", "mx.test"), Some(4242));
        for other in [
            "1795875172.M123456P4242Q0.other.test",
            "1795875172.M123456P4242Q0.mx.test.tmp",
            "1795875172.M123456Px42Q0.mx.test",
            "1795875172.M12x456P4242Q0.mx.test",
            "1795875172.P4242Q0.mx.test",
            "dovecot-uidlist.lock",
            "",
        ] {
            assert_eq!(writer_pid(other, "mx.test"), None, "{other}");
        }
    }

    /// A pid that ran and has exited (reaped), so nothing runs under it now.
    fn dead_pid() -> u32 {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    /// A running process whose executable has the given file name: a copy
    /// of sleep(1) under that name, in `dir`.
    fn running_as(dir: &Path, name: &std::ffi::OsStr) -> std::process::Child {
        let exe = dir.join(name);
        fs::copy("/bin/sleep", &exe).unwrap();
        Command::new(&exe).arg("30").spawn().unwrap()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }

    #[test]
    fn partial_files_of_gone_processes_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path();
        let own = std::process::id();
        let mut other_program = Command::new("sleep").arg("30").spawn().unwrap();
        let write = |name: &str, len: usize| fs::write(tmp.join(name), vec![b'x'; len]).unwrap();
        write(&format!("1.M1P{}Q0.mx.test", dead_pid()), 100);
        write(&format!("1.M2P{own}Q7.mx.test"), 20);
        write(&format!("1.M3P{}Q1.mx.test", other_program.id()), 3);
        // Not ours: another host's name, another agent's file.
        let other_host = format!("1.M4P{}Q0.other.test", dead_pid());
        write(&other_host, 1);
        write("1700000000.12345_1.mx.test", 1);
        let swept = sweep_tmp(tmp, "mx.test", own).unwrap();
        other_program.kill().unwrap();
        other_program.wait().unwrap();
        assert_eq!(swept, Swept { removed: 3, bytes: 123, live: 0 });
        assert_eq!(names(tmp), [other_host, "1700000000.12345_1.mx.test".to_string()]);
    }

    #[test]
    fn a_file_of_another_live_process_of_this_program_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let own_exe = std::env::current_exe().unwrap();
        let mut twin = running_as(bin.path(), own_exe.file_name().unwrap());
        let name = format!("1.M1P{}Q0.mx.test", twin.id());
        fs::write(tmp.path().join(&name), b"in flight").unwrap();
        let swept = sweep_tmp(tmp.path(), "mx.test", std::process::id()).unwrap();
        assert_eq!(swept, Swept { removed: 0, bytes: 0, live: 1 });
        assert_eq!(names(tmp.path()), [name]);
        // Once the twin is gone, its file is a leftover like any other.
        twin.kill().unwrap();
        twin.wait().unwrap();
        let swept = sweep_tmp(tmp.path(), "mx.test", std::process::id()).unwrap();
        assert_eq!(swept, Swept { removed: 1, bytes: 9, live: 0 });
    }
}
