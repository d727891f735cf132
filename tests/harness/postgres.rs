//! A private PostgreSQL cluster (Debian's packages) for the tests: initdb
//! into a temporary directory, listening on 127.0.0.1 only, on a free
//! port, its unix socket in that directory; with a synchronous standby and
//! promotion for the failover tests.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (as CI
//! does), every server program (initdb, postgres, pg_ctl, pg_basebackup)
//! runs as the `postgres` system user through `runuser`, and the temporary
//! directories belong to it; otherwise they run as the test's own user.
//! The client, psql, runs as the test.
//!
//! Durability is the point of these clusters, so they keep PostgreSQL's
//! defaults that make a COMMIT durable (`fsync`, `synchronous_commit`,
//! `full_page_writes`, all on, written out so that nobody "speeds the
//! tests up" by turning them off). Authentication is `trust` (loopback and
//! the private socket only): the role `smtpcell` owns the database
//! `smtpcell`; the superuser is `postgres`, which [`Postgres::psql`] and
//! replication use.
//!
//! Every method panics with PostgreSQL's own output (and the server log)
//! when something fails: these are test fixtures.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The system user PostgreSQL's programs run as when the test is root.
const SYSTEM_USER: &str = "postgres";

/// The cluster's superuser.
const SUPERUSER: &str = "postgres";

/// How long a start, stop, promotion or a standby becoming synchronous
/// may take (a shared, busy CI machine with fsync on is slow).
const PATIENCE: Duration = Duration::from_secs(60);

/// How many ports to try when another process takes the free one first.
const PORT_ATTEMPTS: usize = 5;

/// A running PostgreSQL cluster, stopped (immediate shutdown) and removed
/// when dropped.
pub struct Postgres {
    port: u16,
    data: PathBuf,
    /// Holds the data directory, the socket and the server log.
    dir: tempfile::TempDir,
    running: AtomicBool,
}

impl Postgres {
    /// Creates and starts a new cluster with the database and role
    /// `smtpcell`; returns once it accepts connections.
    pub fn start() -> Postgres {
        let dir = private_dir();
        let data = dir.path().join("data");
        run_server_program(Command::new(bin("initdb")).arg("-D").arg(&data).args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]));
        let mut pg = Postgres { port: 0, data, dir, running: AtomicBool::new(false) };
        pg.start_on_free_port(|pg, port| pg.configure(port));
        for setup in ["CREATE ROLE smtpcell LOGIN", "CREATE DATABASE smtpcell OWNER smtpcell"] {
            let out = pg.try_psql("postgres", setup);
            assert!(out.status.success(), "{setup}: {}", String::from_utf8_lossy(&out.stderr));
        }
        pg
    }

    /// `postgres://smtpcell@127.0.0.1:PORT/smtpcell`.
    pub fn url(&self) -> String {
        format!("postgres://smtpcell@127.0.0.1:{}/smtpcell", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs `sql` (one or more statements) in the database `smtpcell` as
    /// the superuser, over the private socket, and returns psql's unaligned,
    /// tuples-only output (`psql -At -X -q`: one row a line, columns separated
    /// by `|`), trailing newline removed. Panics with psql's stderr when a
    /// statement fails.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.try_psql("smtpcell", sql);
        assert!(
            out.status.success(),
            "psql on port {} failed ({}) running:\n{sql}\n{}",
            self.port,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let mut text = String::from_utf8(out.stdout).expect("psql prints UTF-8");
        if text.ends_with('\n') {
            text.pop();
        }
        text
    }

    /// psql as the superuser in `database`, over the private socket.
    fn try_psql(&self, database: &str, sql: &str) -> Output {
        Command::new(bin("psql"))
            .args(["-At", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", SUPERUSER, "-d", database, "-h"])
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-c", sql])
            .output()
            .expect("running psql")
    }

    /// Fast shutdown (`pg_ctl stop -m fast`): clients are disconnected,
    /// the server checkpoints and exits; returns when it has.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast"]);
        self.running.store(false, Ordering::SeqCst);
    }

    /// Starts the cluster again on the same port and data directory (after
    /// [`Postgres::stop`] or [`Postgres::kill9`], in which case it runs
    /// crash recovery first); returns once it accepts connections.
    pub fn restart(&self) {
        let start = Instant::now();
        loop {
            // After a SIGKILL the old backends may still hold the shared
            // memory for a moment, and the postmaster refuses to start.
            match self.try_pg_ctl(&["start"]) {
                Ok(_) => break,
                Err(err) if start.elapsed() < PATIENCE => {
                    eprintln!("postgres on port {} not restarted yet: {err}", self.port);
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(err) => panic!("restarting postgres on port {}: {err}\n{}", self.port, self.log()),
            }
        }
        self.running.store(true, Ordering::SeqCst);
    }

    /// SIGKILLs the postmaster: what a crash of the machine's PostgreSQL
    /// looks like to clients (its backends notice and exit; nothing is shut
    /// down cleanly).
    pub fn kill9(&self) {
        let pid = self.postmaster_pid();
        let out = Command::new("kill").args(["-KILL", &pid.to_string()]).output().expect("running kill");
        assert!(out.status.success(), "kill -KILL {pid}: {}", String::from_utf8_lossy(&out.stderr));
        self.running.store(false, Ordering::SeqCst);
    }

    /// A new cluster streaming from this one as its synchronous standby:
    /// `pg_basebackup -R` into a new temporary directory, started on a new
    /// port; this cluster's `synchronous_standby_names` then names it (ALTER
    /// SYSTEM, reload), so every COMMIT here waits until the standby has
    /// flushed it. Returns once `pg_stat_replication` reports it `sync`.
    pub fn standby(&self) -> Postgres {
        let dir = private_dir();
        let data = dir.path().join("data");
        run_server_program(
            Command::new(bin("pg_basebackup"))
                .arg("-D")
                .arg(&data)
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER])
                .args(["-R", "-X", "stream", "-c", "fast"]),
        );
        let mut standby = Postgres { port: 0, data, dir, running: AtomicBool::new(false) };
        let primary = self.port;
        standby.start_on_free_port(|standby, port| {
            standby.configure(port);
            // The name the primary's synchronous_standby_names refers to,
            // and no synchronous standby of its own once promoted (the
            // backup may carry the primary's list of an earlier standby).
            append(
                &standby.data.join("postgresql.auto.conf"),
                &format!(
                    "primary_conninfo = 'host=127.0.0.1 port={primary} user={SUPERUSER} application_name={}'\n\
                     synchronous_standby_names = ''\n",
                    application_name(port)
                ),
            );
        });
        let name = application_name(standby.port);
        self.psql(&format!("ALTER SYSTEM SET synchronous_standby_names = '\"{name}\"'"));
        self.psql("SELECT pg_reload_conf()");
        let query = format!("SELECT sync_state FROM pg_stat_replication WHERE application_name = '{name}'");
        let start = Instant::now();
        loop {
            let state = self.psql(&query);
            if state == "sync" {
                return standby;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "the standby on port {} is not synchronous after {PATIENCE:?} (state {state:?}); its log:\n{}",
                standby.port,
                standby.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Promotes this standby (`pg_ctl promote`) and returns once it is out
    /// of recovery and accepts writes.
    pub fn promote(&self) {
        self.pg_ctl(&["promote"]);
        let start = Instant::now();
        while self.psql("SELECT pg_is_in_recovery()") != "f" {
            assert!(start.elapsed() < PATIENCE, "not promoted after {PATIENCE:?}; the log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        self.psql("CREATE TEMP TABLE promoted_accepts_writes (x int); INSERT INTO promoted_accepts_writes VALUES (1)");
    }

    /// Writes the settings of a test cluster for `port` and records it.
    fn configure(&mut self, port: u16) {
        self.port = port;
        append(
            &self.data.join("postgresql.conf"),
            &format!(
                "\n# smtpcell test cluster\n\
                 listen_addresses = '127.0.0.1'\n\
                 port = {port}\n\
                 unix_socket_directories = '{socket}'\n\
                 fsync = on\n\
                 synchronous_commit = on\n\
                 full_page_writes = on\n\
                 wal_level = replica\n\
                 max_wal_senders = 10\n\
                 hot_standby = on\n\
                 max_connections = 200\n\
                 shared_buffers = 32MB\n",
                socket = self.socket_dir().display()
            ),
        );
    }

    /// Picks a free port, lets `configure` write it into the configuration
    /// and starts; another port when someone took this one meanwhile.
    fn start_on_free_port(&mut self, mut configure: impl FnMut(&mut Postgres, u16)) {
        let mut failures = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            configure(self, port);
            match self.try_pg_ctl(&["start"]) {
                Ok(_) => {
                    self.running.store(true, Ordering::SeqCst);
                    return;
                }
                Err(err) => failures.push(format!("port {port}: {err}")),
            }
        }
        panic!("postgres did not start:\n{}\nits log:\n{}", failures.join("\n"), self.log());
    }

    fn pg_ctl(&self, args: &[&str]) {
        if let Err(err) = self.try_pg_ctl(args) {
            panic!("pg_ctl {args:?} on port {}: {err}\nthe server log:\n{}", self.port, self.log());
        }
    }

    /// `pg_ctl ACTION -w` on this cluster (waits for the action to finish).
    fn try_pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut command = Command::new(bin("pg_ctl"));
        command.args(args).arg("-D").arg(&self.data).arg("-l").arg(self.log_path());
        command.args(["-w", "-t", &PATIENCE.as_secs().to_string()]);
        let out = server_program(&command).output().map_err(|err| format!("running pg_ctl: {err}"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!(
                "{}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }

    /// The postmaster's pid: the first line of `postmaster.pid`.
    fn postmaster_pid(&self) -> u32 {
        let text =
            std::fs::read_to_string(self.data.join("postmaster.pid")).expect("postmaster.pid of a running cluster");
        text.lines().next().and_then(|line| line.trim().parse().ok()).expect("a pid in postmaster.pid")
    }

    fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let stopped = !self.running.load(Ordering::SeqCst) || self.try_pg_ctl(&["stop", "-m", "immediate"]).is_ok();
        if !stopped && let Ok(text) = std::fs::read_to_string(self.data.join("postmaster.pid")) {
            let pid = text.lines().next().unwrap_or_default().trim().to_string();
            let _ = Command::new("kill").args(["-KILL", &pid]).output();
        }
    }
}

/// `postgres://smtpcell@127.0.0.1:P1,127.0.0.1:P2/smtpcell?target_session_attrs=read-write`:
/// a client tries the hosts in order and keeps the first that accepts
/// writes, so it follows a promotion.
pub fn multi_host_url(hosts: &[&Postgres]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|pg| format!("127.0.0.1:{}", pg.port)).collect();
    format!("postgres://smtpcell@{}/smtpcell?target_session_attrs=read-write", hosts.join(","))
}

/// The standby's name in `synchronous_standby_names` and
/// `pg_stat_replication`, unique per port.
fn application_name(port: u16) -> String {
    format!("standby_{port}")
}

/// The directory of PostgreSQL's programs: `pg_config --bindir` when
/// initdb is there, else the newest `/usr/lib/postgresql/*/bin` (Debian
/// keeps initdb, pg_ctl and postgres off PATH, and `pg_config` from
/// libpq-dev answers `/usr/bin`).
pub fn bindir() -> PathBuf {
    static BINDIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINDIR
        .get_or_init(|| {
            let from_pg_config = Command::new("pg_config")
                .arg("--bindir")
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
            if let Some(dir) = from_pg_config.filter(|dir| dir.join("initdb").exists()) {
                return dir;
            }
            let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .filter_map(|entry| {
                    let entry = entry.ok()?;
                    let version = entry.file_name().to_str()?.parse().ok()?;
                    let bin = entry.path().join("bin");
                    bin.join("initdb").exists().then_some((version, bin))
                })
                .collect();
            versions.sort();
            versions.pop().map(|(_, bin)| bin).expect(
                "no PostgreSQL server programs (initdb) in `pg_config --bindir` or /usr/lib/postgresql/*/bin; \
                 .ci/run installs the Debian package postgresql",
            )
        })
        .clone()
}

fn bin(program: &str) -> PathBuf {
    bindir().join(program)
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// `command` as the user PostgreSQL's server programs may run as: itself
/// when the test is not root, else through `runuser -u postgres --`.
fn server_program(command: &Command) -> Command {
    let mut actual = match running_as_root() {
        true => {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", SYSTEM_USER, "--"]).arg(command.get_program());
            runuser
        }
        false => Command::new(command.get_program()),
    };
    // The postgres user may not be allowed into the test's directory.
    actual.args(command.get_args()).current_dir("/");
    actual
}

fn run_server_program(command: &Command) {
    let out = server_program(command).output().unwrap_or_else(|err| panic!("running {command:?}: {err}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh temporary directory the server programs may write: owned by
/// the postgres user when the test is root (mode 0700 either way, which
/// initdb requires of the data directory's parent's child anyway).
fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("smtpcell-pg-").tempdir().expect("a temporary directory");
    if running_as_root() {
        let out = Command::new("chown").arg(format!("{SYSTEM_USER}:")).arg(dir.path()).output().expect("running chown");
        assert!(
            out.status.success(),
            "chown {SYSTEM_USER} {}: {} (is the Debian package postgresql installed? .ci/run installs it)",
            dir.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        crate::dovecot::reachable(dir.path()).expect("making the temporary directory reachable");
    }
    dir
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file =
        std::fs::OpenOptions::new().append(true).open(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    file.write_all(text.as_bytes()).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).expect("a free port").port()
}
