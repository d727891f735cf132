//! A live server started the way `smtpcell serve --config FILE` starts one
//! (the same settings, spool and policy builder), in-process so that the
//! test can hold its clock: rate limits and greylisting read the time
//! from a [`FakeClock`] the test advances, and no test sleeps for them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use smtpcell::config::{self, Options};
use smtpcell::policy::FakeClock;
use smtpcell::runtime::Registry;
use smtpcell::server::{ReloadReport, ReloadableFiles, Reloader, Server};
use tokio::sync::oneshot;

use crate::driver::embedded_component;

/// `{dir}` in a configuration stands for the server's temporary directory.
const DIR: &str = "{dir}";

pub struct ConfiguredServer {
    /// The MX listener.
    pub addr: SocketAddr,
    /// What rate limits and greylisting see as now.
    pub clock: Arc<FakeClock>,
    dir: tempfile::TempDir,
    reloader: Arc<Reloader>,
    runtime: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl ConfiguredServer {
    /// Writes `files` (name, contents; `{dir}` replaced) into a fresh
    /// temporary directory, then `config` as its smtpcell.toml, and serves
    /// it. The configuration should listen on `127.0.0.1:0`.
    /// Mail authentication is off (`--no-mail-auth`): these servers reach
    /// no DNS. [`ConfiguredServer::start_with`] gives other flags.
    pub fn start(config: &str, files: &[(&str, &str)]) -> Result<ConfiguredServer> {
        ConfiguredServer::start_with(config, files, Options { no_mail_auth: true, ..Options::default() })
    }

    /// [`ConfiguredServer::start`] with `flags` as the command line's.
    pub fn start_with(config: &str, files: &[(&str, &str)], flags: Options) -> Result<ConfiguredServer> {
        let dir = tempfile::tempdir()?;
        let root = dir.path().to_str().context("a UTF-8 temporary directory")?.to_string();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents.replace(DIR, &root))?;
        }
        let path = dir.path().join("smtpcell.toml");
        std::fs::write(&path, config.replace(DIR, &root))?;
        // 2026-01-01T00:00:00Z: a fixed start keeps greylisting keys and
        // windows the same on every run.
        let clock = Arc::new(FakeClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)));
        let settings = config::load(&flags, Some(&path))?;
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        // The PostgreSQL spool starts its commit task: within the runtime.
        let database = config::open_database(&settings.storage)?;
        let spool = {
            let _runtime = runtime.enter();
            config::open_spool_with(&settings.storage, &settings.server.hostname, database.clone())?
        };
        let build = config::policy_builder(flags, Some(path), clock.clone(), database);
        let registry = Arc::new(Registry::new(embedded_component()));
        let handle = runtime.handle().clone();
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> Result<()> {
            runtime.block_on(async move {
                let started = async {
                    let (policy, _) = build()?;
                    let server = Server::bind(settings.server, registry.clone(), spool, policy).await?;
                    let files = ReloadableFiles {
                        certificates: server.certificates(),
                        policy: Some((server.policies(), build)),
                    };
                    let smtp_runtime = smtpcell::runtime::Runtime::new(Default::default(), None)?;
                    let reloader = Reloader::with_files(smtp_runtime, registry, None, files);
                    anyhow::Ok((server, reloader))
                };
                let (server, reloader) = match started.await {
                    Ok(started) => started,
                    Err(err) => {
                        let _ = ready_tx.send(Err(format!("{err:#}")));
                        return Err(err);
                    }
                };
                let _ = ready_tx.send(Ok((server.local_addr()?, reloader)));
                server
                    .serve(async {
                        let _ = stop_rx.await;
                    })
                    .await
            })
        });
        let (addr, reloader) = ready_rx
            .recv()
            .context("server thread ended before binding")?
            .map_err(anyhow::Error::msg)
            .context("starting the configured server")?;
        Ok(ConfiguredServer { addr, clock, dir, reloader, runtime: handle, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// The server's temporary directory (`{dir}`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Rewrites a file of the directory (`{dir}` replaced).
    pub fn write(&self, name: &str, contents: &str) {
        let root = self.dir.path().to_str().unwrap();
        std::fs::write(self.dir.path().join(name), contents.replace(DIR, root)).unwrap();
    }

    /// `smtpcell reload`: the configuration and what it names.
    pub fn reload(&self) -> ReloadReport {
        let reloader = self.reloader.clone();
        self.runtime.block_on(async move { reloader.reload_all("test").await })
    }

    /// The messages delivered into the Maildir at `relative` (new/ and cur/).
    pub fn delivered(&self, relative: &str) -> Vec<PathBuf> {
        crate::server::delivered(&self.dir.path().join(relative))
    }
}

impl Drop for ConfiguredServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
