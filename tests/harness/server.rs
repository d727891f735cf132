//! A live smtpcell server on 127.0.0.1:0 with a temporary Maildir, running
//! on its own thread and tokio runtime so that tests can drive it with
//! blocking clients (smtplib, curl, swaks, lettre, raw sockets).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use smtpcell::policy::{AcceptAll, PasswordFile, Policy, Role};
use smtpcell::runtime::{LoadedComponent, Registry};
use smtpcell::server::{Server, ServerConfig};
use smtpcell::spool::{Maildir, Spool};
use tokio::sync::oneshot;

use crate::driver::embedded_component;
use crate::log::CapturedLog;
use crate::tls::TestCert;

pub struct TestServer {
    /// The MX listener.
    pub addr: SocketAddr,
    /// The submission (STARTTLS) listener, when the builder asked for one.
    pub submission_addr: Option<SocketAddr>,
    /// The implicit-TLS listener, when the builder asked for one.
    pub tls_addr: Option<SocketAddr>,
    /// The certificate the server uses, when the builder asked for TLS.
    pub cert: Option<TestCert>,
    /// The users file, when the builder asked for users.
    pub users_file: Option<PathBuf>,
    pub maildir: PathBuf,
    pub registry: Arc<Registry>,
    /// The server's log, when the builder asked for it.
    log: Option<CapturedLog>,
    /// Keeps the temporary directory alive as long as the server.
    _dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl TestServer {
    /// The embedded component, default policy, a fresh temporary Maildir.
    pub fn start() -> TestServer {
        Self::builder().start()
    }

    pub fn builder() -> TestServerBuilder {
        TestServerBuilder {
            config: ServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                hostname: "smtpcell.test".into(),
                ..ServerConfig::default()
            },
            maildir: None,
            component: None,
            policy: Arc::new(AcceptAll),
            log: None,
            cert: None,
            users: None,
            spool: None,
        }
    }

    /// Stops accepting, drains, and waits for the server to exit.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().expect("server thread does not panic"),
            None => Ok(()),
        }
    }

    /// Paths of the delivered messages (new/ and cur/), sorted.
    pub fn delivered(&self) -> Vec<PathBuf> {
        delivered(&self.maildir)
    }

    /// What the server logged so far at debug level and above (the builder's
    /// `capture_log` must have been called).
    pub fn log(&self) -> String {
        self.log.as_ref().expect("started with capture_log()").text()
    }

    /// Files left in tmp/.
    pub fn leftovers(&self) -> Vec<PathBuf> {
        list(&self.maildir.join("tmp"))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

pub struct TestServerBuilder {
    pub config: ServerConfig,
    maildir: Option<PathBuf>,
    component: Option<Arc<LoadedComponent>>,
    policy: Arc<dyn Policy>,
    log: Option<CapturedLog>,
    cert: Option<TestCert>,
    users: Option<Vec<(String, String)>>,
    spool: Option<Arc<dyn Spool>>,
}

impl TestServerBuilder {
    /// A fresh self-signed certificate ([`TestCert`]): STARTTLS offered.
    pub fn tls(mut self) -> Self {
        let cert = TestCert::generate().expect("a test certificate");
        self.config.tls = Some(cert.files());
        self.cert = Some(cert);
        self
    }

    /// A submission listener (STARTTLS, AUTH before MAIL) on 127.0.0.1:0;
    /// needs `tls` and `users`.
    pub fn submission(mut self) -> Self {
        self.config.listen_submission = Some("127.0.0.1:0".parse().unwrap());
        self
    }

    /// An implicit-TLS submission listener on 127.0.0.1:0; needs `tls` and
    /// `users`.
    pub fn implicit_tls(mut self) -> Self {
        self.config.listen_tls = Some("127.0.0.1:0".parse().unwrap());
        self
    }

    /// A users file with these `(user, password)` pairs (argon2id, as
    /// `smtpcell passwd` writes them), checked by [`PasswordFile`]; no
    /// delay after a failed AUTH.
    pub fn users(mut self, users: &[(&str, &str)]) -> Self {
        self.users = Some(users.iter().map(|(u, p)| (u.to_string(), p.to_string())).collect());
        self.config.auth_failure_delay = std::time::Duration::ZERO;
        self
    }
    /// Decide the guest's questions with `policy` instead of the default
    /// (accept everything, ask nothing).
    pub fn policy(mut self, policy: impl Policy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Capture the server's log for [`TestServer::log`].
    pub fn capture_log(mut self) -> Self {
        self.log = Some(CapturedLog::default());
        self
    }

    pub fn config(mut self, f: impl FnOnce(&mut ServerConfig)) -> Self {
        f(&mut self.config);
        self
    }

    /// Store into this directory instead of a fresh temporary one.
    pub fn maildir(mut self, dir: &Path) -> Self {
        self.maildir = Some(dir.to_path_buf());
        self
    }

    /// Store into `spool` (the PostgreSQL spool, say) instead of a Maildir;
    /// [`TestServer::delivered`] then lists nothing.
    pub fn spool(mut self, spool: Arc<dyn Spool>) -> Self {
        self.spool = Some(spool);
        self
    }

    pub fn component(mut self, component: Arc<LoadedComponent>) -> Self {
        self.component = Some(component);
        self
    }

    pub fn start(self) -> TestServer {
        self.try_start().expect("the test server starts")
    }

    pub fn try_start(self) -> Result<TestServer> {
        let (dir, maildir) = match self.maildir {
            Some(path) => (None, path),
            None => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("mail");
                (Some(dir), path)
            }
        };
        let spool: Arc<dyn Spool> = match self.spool {
            Some(spool) => spool,
            None => Arc::new(Maildir::open(&maildir, &self.config.hostname)?),
        };
        let mut policy = self.policy;
        let users_file = match (&self.users, &dir) {
            (Some(users), Some(dir)) => {
                let path = dir.path().join("users");
                for (user, password) in users {
                    smtpcell::users::set_password(&path, user, password.as_bytes())?;
                }
                policy = Arc::new(PasswordFile::open(&path)?);
                Some(path)
            }
            (Some(_), None) => anyhow::bail!("users need the builder's own temporary directory"),
            (None, _) => None,
        };
        let registry = Arc::new(Registry::new(self.component.unwrap_or_else(embedded_component)));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let config = self.config;
        let server_registry = registry.clone();
        let dispatch = self.log.as_ref().map(CapturedLog::dispatch);
        let thread = std::thread::spawn(move || -> Result<()> {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(dispatch) = dispatch.clone() {
                // Each worker thread logs into the capture for its lifetime.
                builder.on_thread_start(move || std::mem::forget(tracing::dispatcher::set_default(&dispatch)));
            }
            let rt = builder.worker_threads(2).enable_all().build()?;
            let _guard = dispatch.as_ref().map(tracing::dispatcher::set_default);
            rt.block_on(async move {
                let server = match Server::bind(config, server_registry, spool, policy).await {
                    Ok(server) => server,
                    Err(err) => {
                        let _ = ready_tx.send(Err(format!("{err:#}")));
                        return Err(err);
                    }
                };
                let addrs = (server.local_addr()?, server.addr(Role::Submission), server.addr(Role::Submissions));
                let _ = ready_tx.send(Ok(addrs));
                server
                    .serve(async {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        });
        let (addr, submission_addr, tls_addr) = ready_rx
            .recv()
            .context("server thread ended before binding")?
            .map_err(anyhow::Error::msg)
            .context("binding the test server")?;
        Ok(TestServer {
            addr,
            submission_addr,
            tls_addr,
            cert: self.cert,
            users_file,
            maildir,
            registry,
            log: self.log,
            _dir: dir,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

/// Messages delivered into a Maildir (new/ and cur/), sorted by name.
pub fn delivered(maildir: &Path) -> Vec<PathBuf> {
    let mut files = list(&maildir.join("new"));
    files.extend(list(&maildir.join("cur")));
    files.sort();
    files
}

fn list(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default();
    files.sort();
    files
}

/// Splits a stored file into the trace block smtpcell prepends and the
/// content the client sent. The trace ends with the Received header, whose
/// last line is `;CRLF TAB date CRLF`.
pub fn stored_message(path: &Path) -> Result<StoredMessage> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let received = find(&bytes, b"\r\nReceived: ", 0).context("no Received header")?;
    let date = find(&bytes, b";\r\n\t", received).context("no date in the Received header")?;
    let end = find(&bytes, b"\r\n", date + 4).context("unterminated Received header")? + 2;
    Ok(StoredMessage { trace: bytes[..end].to_vec(), content: bytes[end..].to_vec() })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack[from..].windows(needle.len()).position(|w| w == needle).map(|at| at + from)
}

/// A stored file: the trace headers smtpcell wrote, and the content exactly
/// as the client sent it (dot-unstuffed).
#[derive(Debug)]
pub struct StoredMessage {
    pub trace: Vec<u8>,
    pub content: Vec<u8>,
}

impl StoredMessage {
    pub fn trace_text(&self) -> String {
        String::from_utf8_lossy(&self.trace).into_owned()
    }
}
