//! The smtpcell command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use smtpcell::config::{self, Options};
use smtpcell::events::{self, LogFormat};
use smtpcell::policy::{PasswordFile, RecipientTable, SystemClock};
use smtpcell::runtime::{CompileCache, Registry, Runtime, SandboxLimits};
use smtpcell::server::{FileStamp, ReloadableFiles, Reloader, Server, budget, control};
use smtpcell::tls::Certificates;
use smtpcell::users;
use tracing::{info, warn};

/// An SMTP server whose protocol handling runs in a sandboxed WebAssembly
/// component, one instance per connection. Without a subcommand it serves.
#[derive(Parser)]
#[command(name = "smtpcell", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
// Parsed once at start-up: boxing the serve arguments would buy nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Receive mail over SMTP and store it in a Maildir (the default).
    Serve(ServeArgs),
    /// Validate a component offline exactly as a reload would (compile,
    /// link against the contract, identify, replay the transcript corpus).
    Check {
        /// The component to check.
        #[arg(value_name = "FILE.wasm")]
        file: PathBuf,
    },
    /// Ask a running server to reload its component file, its TLS
    /// certificate, its configuration file and the files it names, and its
    /// users file: all checked first, then installed together, or none.
    Reload(ControlArgs),
    /// List the component versions a running server has loaded; with
    /// `--json`, those and every metric (when `--metrics` is on).
    Status {
        #[command(flatten)]
        control: ControlArgs,
        /// One JSON object: `components` (label, contract, connections,
        /// current) and `metrics` (the samples `/metrics` shows, as `name`,
        /// `labels`, `value`; null when the server runs without `--metrics`).
        #[arg(long)]
        json: bool,
    },
    /// Check a configuration file offline: everything `serve --config FILE`
    /// would check before serving (the file, the tables and files it names),
    /// without binding or creating anything.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write the messages stored in PostgreSQL (`--store`) into a Maildir,
    /// byte for byte what a Maildir copy of each holds; messages already
    /// exported there are skipped. Prints how many were written.
    Export {
        /// The database, as `serve --store` takes it.
        #[arg(long, value_name = "URL")]
        store: String,
        /// The Maildir (created if missing; tmp/, new/, cur/).
        #[arg(long, value_name = "DIR")]
        to_maildir: PathBuf,
        /// Only messages with a higher id.
        #[arg(long, value_name = "ID", default_value_t = 0)]
        after: i64,
    },
    /// Add a user to a users file, or set a new password for one: an
    /// argon2id hash of a password read from the terminal (or from standard
    /// input when it is not a terminal, one trailing newline removed).
    Passwd {
        /// The users file (created with mode 0600 if missing).
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
        /// The user name (the SASL authentication id clients log in with).
        user: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate FILE and what it names; prints a summary, or the first error
    /// (naming the file, line and key) and exits with 1.
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Args, Clone)]
struct ControlArgs {
    /// The running server's control socket.
    #[arg(long, value_name = "PATH", default_value = "./smtpcell.sock")]
    control: PathBuf,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// The configuration file (TOML): every flag as a key (`max_recipients
    /// = 50`), and the policy: domains, recipients, relay, rate limits,
    /// greylisting. Flags override it. Reloaded by `smtpcell reload`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    options: Options,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // `serve` logs in the format its settings name, once they are read.
    if !matches!(cli.command, None | Some(Command::Serve(_))) {
        events::init_logging(LogFormat::Text);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::Check { file }) => check(file).await,
            Some(Command::Reload(args)) => print(control::request(&args.control, "reload").await?),
            Some(Command::Status { control, json }) => {
                print(control::request(&control.control, if json { "status json" } else { "status" }).await?)
            }
            Some(Command::Passwd { users, user }) => passwd(&users, &user),
            Some(Command::Export { store, to_maildir, after }) => export(&store, &to_maildir, after).await,
            Some(Command::Config(ConfigCommand::Check { file })) => check_config(&file),
        }
    })
}

fn print(text: String) -> Result<()> {
    print!("{text}");
    Ok(())
}

async fn check(file: PathBuf) -> Result<()> {
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let runtime = Runtime::new(SandboxLimits { max_instances: 16, ..SandboxLimits::default() }, None)?;
    let validated = runtime.validate(bytes).await?;
    let info = validated.component.info();
    println!(
        "ok {} implements {} ({} transcripts replayed in {} ms)",
        validated.component.label(),
        info.contract,
        validated.transcripts,
        validated.elapsed.as_millis()
    );
    Ok(())
}

fn passwd(path: &std::path::Path, user: &str) -> Result<()> {
    let password = users::read_new_password()?;
    let existed = users::set_password(path, user, &password)?;
    println!("{} {user} in {}", if existed { "updated" } else { "added" }, path.display());
    Ok(())
}

async fn export(url: &str, dir: &Path, after: i64) -> Result<()> {
    let database = smtpcell::postgres::Database::open(url).context("--store")?;
    let done = smtpcell::spool::export_to_maildir(&database, dir, after).await?;
    let last = done.last_id.map(|id| format!(", last id {id}")).unwrap_or_default();
    let noun = if done.written == 1 { "message" } else { "messages" };
    println!("exported {} {noun} to {} ({} already there{last})", done.written, dir.display(), done.present);
    Ok(())
}

/// Everything `serve --config FILE` checks before it binds anything.
fn check_config(path: &Path) -> Result<()> {
    let settings = config::load(&Options::default(), Some(path))?;
    let mut summary = vec![format!("listen {}", settings.server.listen)];
    let database = config::open_database(&settings.storage)?;
    if let Some(database) = &database {
        summary.push(format!("store {database}"));
    }
    if let Some(files) = &settings.server.tls {
        Certificates::load(files.clone())?;
        summary.push(format!("certificate {}", files.cert.display()));
    }
    let users = settings.users.as_deref().map(PasswordFile::open).transpose()?;
    if let Some(users) = &users {
        summary.push(format!("{} users", users.count()));
    }
    if let Some(rules) = &settings.rules {
        summary.extend(config::policy_summary(rules, None, database.as_ref()));
        if let Some(table) = &rules.recipients {
            let table = RecipientTable::load(table, &rules.domains, &rules.recipient_delimiter)?;
            summary.push(format!("{} recipients", table.len()));
        }
    }
    println!("ok {}: {}", path.display(), summary.join(", "));
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<()> {
    // Signal handlers first: until tokio's are installed, SIGTERM, SIGINT and
    // SIGHUP keep their default action, which kills the process outright (so
    // a SIGTERM just after "serving SMTP" would skip the graceful drain, and
    // a SIGHUP during start-up would end the server instead of reloading).
    let stop = shutdown_signal()?;
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let mut settings = config::load(&args.options, args.config.as_deref())?;
    events::init_logging(settings.log_format);
    // Before the engine: its instance pool is sized from the result.
    let max_connections = budget::connections(settings.server.max_connections)?;
    settings.server.max_connections = max_connections;
    let limits = SandboxLimits {
        max_memory: settings.guest_memory_mib << 20,
        call_budget: settings.guest_call_budget,
        // Room for every connection plus the instances a reload validates with.
        max_instances: u32::try_from(max_connections + 16).context("max_connections is too large")?,
        ..SandboxLimits::default()
    };
    let cache = match (settings.no_cache, settings.cache_dir.clone().or_else(CompileCache::default_dir)) {
        (false, Some(dir)) => Some(CompileCache::open(dir)?),
        _ => None,
    };
    let runtime = Runtime::new(limits, cache)?;
    // Taken before the read, for --watch: a change after this point is seen.
    let stamp = settings.component.as_deref().and_then(FileStamp::of);
    let bytes = match &settings.component {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => smtpcell::EMBEDDED_COMPONENT.to_vec(),
    };
    let validated = runtime.validate(bytes).await.context("loading the protocol component")?;
    info!(
        component = %validated.component.label(),
        contract = %validated.component.info().contract,
        cache = ?validated.cache,
        ms = validated.elapsed.as_millis() as u64,
        "component validated"
    );
    let registry = Arc::new(Registry::new(validated.component));
    let database = config::open_database(&settings.storage)?;
    if let Some(database) = &database {
        info!(store = %database, "storing mail in PostgreSQL (every message gets 451 4.3.0 while it is unreachable)");
        tokio::spawn(database.clone().connect_in_background());
    } else {
        info!(maildir = %settings.storage.maildir.display(), "storing mail in Maildirs");
    }
    let spool = config::open_spool_with(&settings.storage, &settings.server.hostname, database.clone())?;
    let build = config::policy_builder(args.options.clone(), args.config.clone(), Arc::new(SystemClock), database);
    let (policy, lines) = build()?;
    for line in &lines {
        info!(what = %line, "policy loaded");
    }
    if settings.rules.is_none() {
        info!("no configuration file: every recipient is accepted (the embedded default, for local use only)");
    }
    if settings.users.is_some() && settings.server.tls.is_none() && !settings.server.allow_plaintext_auth {
        warn!("users without a certificate: AUTH is offered only over TLS, so it will never be offered");
    }
    let control_listener = control::bind(&settings.control).await?;
    let server = Server::bind(settings.server.clone(), registry.clone(), spool, policy).await?;
    let metrics_task = match settings.metrics {
        Some(addr) => {
            let (bound, serve) = events::serve_metrics(addr, events::install_metrics()).await?;
            info!(listen = %bound, "serving metrics at /metrics");
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    let files = ReloadableFiles { certificates: server.certificates(), policy: Some((server.policies(), build)) };
    let reloader = Reloader::with_files(runtime, registry.clone(), settings.component.clone(), files);

    let control_task = tokio::spawn(control::serve(control_listener, reloader.clone(), registry));
    let hup_task = tokio::spawn(reload_on_sighup(reloader.clone(), hup));
    let watch_task = settings.watch.then(|| tokio::spawn(reloader.watch(stamp)));
    // systemd (Type=notify): the component is validated and every listener
    // bound. Outside systemd (no NOTIFY_SOCKET) this does nothing.
    if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        warn!(%err, "could not notify systemd of readiness");
    }
    let result = server.serve(stop).await;
    if let Some(task) = metrics_task {
        task.abort();
    }
    control_task.abort();
    hup_task.abort();
    if let Some(task) = watch_task {
        task.abort();
    }
    let _ = std::fs::remove_file(&settings.control);
    result
}

async fn reload_on_sighup(reloader: Arc<Reloader>, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        let _ = reloader.reload_all("SIGHUP").await;
    }
}

/// Installs the SIGINT and SIGTERM handlers now, and returns what resolves
/// on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        info!("signal received");
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    })
}
