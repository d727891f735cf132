//! A private Dovecot IMAP server (Debian's dovecot-imapd) on loopback,
//! reading the per-user Maildirs smtpcell writes (`ROOT/domain/user/`,
//! `mail_location = maildir:ROOT/%d/%n`), and an IMAP client (python3's
//! imaplib) to fetch what it serves.
//!
//! The instance has its own configuration, runtime directory, state and
//! log in a temporary directory; /etc/dovecot and any system Dovecot are
//! left alone. Its passdb is a passwd-file: smtpcell's users file, which is
//! in that format (`smtpcell passwd` writes `{ARGON2ID}` hashes, which
//! Debian's Dovecot verifies). It runs in the foreground (`dovecot -F`) as
//! the test's child and is stopped when dropped, also when the test fails.
//!
//! Dovecot runs its mail processes as the userdb's uid and refuses uid 0
//! whatever `first_valid_uid` says ("userdb returned 0 as uid"), so the
//! Maildirs must belong to an unprivileged user: in a deployment smtpcell
//! runs as that user (conventionally `vmail`); here the test server runs
//! as root in-process, and [`hand_over`] gives what it wrote to Debian's
//! `mail` user, the uid the Dovecot instance reads as.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// The unprivileged user the Maildirs are handed to and Dovecot reads as.
pub const MAIL_USER: &str = "mail";

/// How long Dovecot may take to listen, and to stop.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running private Dovecot serving IMAP on [`Dovecot::addr`].
pub struct Dovecot {
    /// The IMAP listener (plaintext, 127.0.0.1).
    pub addr: SocketAddr,
    config: PathBuf,
    log: PathBuf,
    child: Child,
    /// Holds the configuration, runtime directory, state and log.
    _dir: tempfile::TempDir,
}

impl Dovecot {
    /// Starts Dovecot serving the Maildirs under `mail_root` (read as
    /// [`MAIL_USER`]) to the users of the passwd-file `users` (full
    /// addresses; see [`share_users_file`]), logging in over plaintext
    /// IMAP, and waits until it listens.
    ///
    /// Errors: not root (Dovecot's master binds and changes user), no
    /// `dovecot` program or no IMAP support (both say that .ci/run installs
    /// dovecot-imapd), or Dovecot exiting or not listening in time (with
    /// its log).
    pub fn start(mail_root: &Path, users: &Path) -> Result<Dovecot> {
        ensure!(
            std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m))? == 0,
            "the Dovecot test must run as root: Dovecot's master starts as root and changes to its users"
        );
        let (uid, gid) = user_ids(MAIL_USER)?;
        let dir = tempfile::tempdir()?;
        // Dovecot's processes run as its own users and must reach their
        // runtime directory (tempdir makes 0700 directories).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let config = dir.path().join("dovecot.conf");
        let log = dir.path().join("dovecot.log");
        std::fs::write(&config, configuration(dir.path(), mail_root, users, addr, uid, gid))?;
        let child =
            Command::new("dovecot").arg("-F").arg("-c").arg(&config).stdin(Stdio::null()).spawn().map_err(|err| {
                match err.kind() {
                    std::io::ErrorKind::NotFound => {
                        anyhow::anyhow!("dovecot is not installed (.ci/run installs the Debian package dovecot-imapd)")
                    }
                    _ => anyhow::Error::new(err).context("starting dovecot"),
                }
            })?;
        let mut dovecot = Dovecot { addr, config, log, child, _dir: dir };
        dovecot.wait_listening()?;
        Ok(dovecot)
    }

    /// Dovecot's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_listening(&mut self) -> Result<()> {
        let start = Instant::now();
        while TcpStream::connect(self.addr).is_err() {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "dovecot exited ({status}); is dovecot-imapd installed (.ci/run installs it)? Its log:\n{}",
                    self.log()
                );
            }
            if start.elapsed() > PATIENCE {
                bail!("dovecot is not listening on {} after {PATIENCE:?}; its log:\n{}", self.addr, self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Logs in as `user` over IMAP (python3's imaplib, LOGIN), SELECTs
    /// INBOX and fetches every message with `BODY.PEEK[]`: the messages
    /// exactly as Dovecot serves them, in sequence-number order.
    ///
    /// Errors: the client failing (login refused, no INBOX...), with its
    /// output and Dovecot's log.
    pub fn fetch_inbox(&self, user: &str, password: &str) -> Result<Vec<Vec<u8>>> {
        let out = tempfile::tempdir()?;
        let run = Command::new("python3")
            .args(["-c", IMAP_CLIENT, &self.addr.ip().to_string(), &self.addr.port().to_string(), user, password])
            .arg(out.path())
            .output()
            .context("running python3 (.ci/run installs it)")?;
        ensure!(
            run.status.success(),
            "the IMAP client failed ({}):\n{}{}\nDovecot's log:\n{}",
            run.status,
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
            self.log()
        );
        let count: usize = String::from_utf8_lossy(&run.stdout).trim().parse().context("the client's message count")?;
        (1..=count).map(|seq| Ok(std::fs::read(out.path().join(seq.to_string()))?)).collect()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // doveadm stop sends the master SIGTERM; it stops its children.
        let _ = Command::new("doveadm").arg("-c").arg(&self.config).arg("stop").output();
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Gives the Maildirs under `mail_root` to [`MAIL_USER`]: what they would
/// be had smtpcell run as that user (see the module documentation). The
/// directories above the root become searchable (see [`reachable`]).
pub fn hand_over(mail_root: &Path) -> Result<()> {
    let out = Command::new("chown").arg("-R").arg(format!("{MAIL_USER}:{MAIL_USER}")).arg(mail_root).output()?;
    ensure!(out.status.success(), "chown {}: {}", mail_root.display(), String::from_utf8_lossy(&out.stderr));
    reachable(mail_root)
}

/// Lets Dovecot's auth process, which runs as the `dovecot` user, read
/// the users file at `path` (`smtpcell passwd` creates it 0600, and keeps
/// the owner and mode of an existing one): group `dovecot`, mode 0640, as a
/// deployment sharing the file would set it.
pub fn share_users_file(path: &Path) -> Result<()> {
    let out = Command::new("chgrp").arg("dovecot").arg(path).output()?;
    ensure!(out.status.success(), "chgrp dovecot {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o640))?;
    reachable(path)
}

/// Makes every directory above `path` searchable by others (adds mode
/// 0011 where it is missing; temporary directories are 0700), so that
/// Dovecot's unprivileged processes can reach `path`; nothing becomes
/// listable or readable.
pub(crate) fn reachable(path: &Path) -> Result<()> {
    for dir in path.ancestors().skip(1).filter(|dir| !dir.as_os_str().is_empty()) {
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o011))?;
        }
    }
    Ok(())
}

/// The configuration of the private instance: IMAP only, on `addr`,
/// plaintext with PLAIN login (loopback, test passwords), users from the
/// passwd-file `passwd` (the scheme is each hash's `{SCHEME}` prefix),
/// each one's Maildir `mail_root/domain/user`, read as `uid`:`gid`.
fn configuration(dir: &Path, mail_root: &Path, passwd: &Path, addr: SocketAddr, uid: u32, gid: u32) -> String {
    let (dir, root, passwd) = (dir.display(), mail_root.display(), passwd.display());
    let (ip, port) = (addr.ip(), addr.port());
    format!(
        "base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap
listen = {ip}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{root}/%d/%n
first_valid_uid = {uid}
last_valid_uid = {uid}
passdb {{
  driver = passwd-file
  args = username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = {ip}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"
    )
}

/// The uid and gid of `name`, from /etc/passwd.
fn user_ids(name: &str) -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let fields: Vec<&str> = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name) && fields.len() >= 4)
        .with_context(|| format!("no user {name} in /etc/passwd"))?;
    Ok((fields[2].parse()?, fields[3].parse()?))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// argv: host, port, user, password, output directory. Writes each
/// message of INBOX to `DIR/SEQ` as fetched, prints how many there are.
const IMAP_CLIENT: &str = r#"
import imaplib, os, sys
host, port, user, password, out = sys.argv[1:6]
with imaplib.IMAP4(host, int(port), timeout=30) as imap:
    imap.login(user, password)
    status, data = imap.select("INBOX")
    assert status == "OK", (status, data)
    count = int(data[0])
    for seq in range(1, count + 1):
        status, data = imap.fetch(str(seq), "(BODY.PEEK[])")
        assert status == "OK", (status, data)
        with open(os.path.join(out, str(seq)), "wb") as f:
            f.write(data[0][1])
    imap.logout()
print(count)
"#;
