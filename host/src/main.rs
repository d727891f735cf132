//! The smtpcell command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use smtp_core::Config as SessionConfig;
use smtpcell::policy::{AcceptAll, PasswordFile, Policy};
use smtpcell::runtime::{CompileCache, Registry, Runtime, SandboxLimits};
use smtpcell::server::{FileStamp, ReloadableFiles, Reloader, Server, ServerConfig, budget, control};
use smtpcell::spool::Maildir;
use smtpcell::tls::TlsFiles;
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
    /// Ask a running server to reload its --component file, its TLS
    /// certificate and its users file.
    Reload(ControlArgs),
    /// List the component versions a running server has loaded.
    Status(ControlArgs),
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

#[derive(Args, Clone)]
struct ControlArgs {
    /// The running server's control socket.
    #[arg(long, value_name = "PATH", default_value = "./smtpcell.sock")]
    control: PathBuf,
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address and port of the MX listener (port 25's role: mail from
    /// anyone, AUTH optional).
    #[arg(long, value_name = "ADDR", default_value = ServerConfig::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Also listen for message submission (port 587's role, RFC 6409):
    /// STARTTLS, then AUTH before MAIL. Needs --tls-cert and --users.
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "users"])]
    listen_submission: Option<SocketAddr>,
    /// Also listen for submission over implicit TLS (port 465's role, RFC
    /// 8314): TLS from the first byte, then AUTH before MAIL. Needs
    /// --tls-cert and --users.
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "users"])]
    listen_tls: Option<SocketAddr>,
    /// PEM certificate chain (server certificate first): with --tls-key,
    /// STARTTLS is offered (RFC 3207). Reloaded with the component.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the --tls-cert certificate.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds a client may take over its TLS handshake.
    #[arg(long, value_name = "SECS", default_value_t = ServerConfig::DEFAULT_TLS_HANDSHAKE_TIMEOUT)]
    tls_handshake_timeout: u64,
    /// On the MX listener, answer every command but NOOP, EHLO, STARTTLS
    /// and QUIT with 530 until TLS is started. For private servers only:
    /// RFC 3207 section 4 forbids it on a publicly referenced MX.
    #[arg(long, requires = "tls_cert")]
    require_tls: bool,
    /// Users allowed to AUTH (RFC 4954), in Dovecot's passwd-file format:
    /// `user:{SCHEME}hash[:extra fields]`. AUTH PLAIN and LOGIN are offered
    /// after TLS when given. Reloaded with the component.
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// Offer AUTH without TLS too (for tests on loopback: a password must
    /// not otherwise cross an unencrypted connection).
    #[arg(long, requires = "users")]
    allow_plaintext_auth: bool,
    /// Milliseconds before the reply to a refused AUTH.
    #[arg(long, value_name = "MS", default_value_t = ServerConfig::DEFAULT_AUTH_FAILURE_DELAY_MS)]
    auth_failure_delay_ms: u64,
    /// Failed AUTH commands per connection, counted by the session: every
    /// AUTH not answered 235, malformed and cancelled ones included; the
    /// last is answered 421 4.7.0 and the connection closed.
    #[arg(
        long,
        value_name = "N",
        default_value_t = SessionConfig::DEFAULT_MAX_AUTH_FAILURES,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_auth_failures: u32,
    /// Write the authenticated identity into the Received header.
    #[arg(long)]
    received_auth: bool,
    /// Maildir to store accepted mail in (tmp/, new/ and cur/ are created).
    #[arg(long, value_name = "DIR", default_value = "./mail")]
    maildir: PathBuf,
    /// Name announced in the greeting and written into Received headers.
    #[arg(long, value_name = "NAME", default_value = SessionConfig::DEFAULT_HOSTNAME)]
    hostname: String,
    /// Serve with this protocol component instead of the one built in;
    /// `smtpcell reload` and SIGHUP reload it from this path.
    #[arg(long, value_name = "FILE.wasm")]
    component: Option<PathBuf>,
    /// Reload the --component file whenever it changes.
    #[arg(long, requires = "component")]
    watch: bool,
    /// Control socket for `smtpcell reload` and `smtpcell status`.
    #[arg(long, value_name = "PATH", default_value = "./smtpcell.sock")]
    control: PathBuf,
    /// Where compiled components are cached [default: $XDG_CACHE_HOME/smtpcell or ~/.cache/smtpcell].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every component afresh.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Largest message accepted, in octets (advertised as SIZE).
    #[arg(long, value_name = "BYTES", default_value_t = SessionConfig::DEFAULT_MAX_MESSAGE_SIZE)]
    max_message_size: u64,
    /// Most recipients per message.
    #[arg(long, value_name = "N", default_value_t = SessionConfig::DEFAULT_MAX_RECIPIENTS)]
    max_recipients: u32,
    /// Longest text line accepted in DATA, in octets including CRLF (>= 1000).
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = SessionConfig::MIN_LINE_LENGTH,
        value_parser = clap::value_parser!(u32).range(SessionConfig::MIN_LINE_LENGTH as i64..)
    )]
    max_line_length: u32,
    /// Most concurrent connections; more are answered 421 and closed.
    /// Lowered at start-up, with a warning, to what the open-file limit
    /// (raised to its hard limit first) and vm.max_map_count allow.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_connections: usize,
    /// Most concurrent connections from one IP address.
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_connections_per_ip: usize,
    /// Seconds to wait for a command, and for the client to take a reply
    /// (RFC 5321: 5 minutes).
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    command_timeout: u64,
    /// Seconds to wait for the next block of message data, from the 354 (or
    /// the first BDAT) to the end of the content (RFC 5321: 3 minutes).
    #[arg(long, value_name = "SECS", default_value_t = 180)]
    data_timeout: u64,
    /// Seconds storage may take to make a message durable (RFC 5321: 10 minutes).
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    data_end_timeout: u64,
    /// Seconds a shutdown waits for messages in flight.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    shutdown_grace: u64,
    /// Linear memory cap per connection's component instance, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    guest_memory_mib: usize,
    /// CPU time one guest call may use before the connection is ended, in ms.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    guest_call_budget_ms: u64,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SMTPCELL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::Check { file }) => check(file).await,
            Some(Command::Reload(args)) => print(control::request(&args.control, "reload").await?),
            Some(Command::Status(args)) => print(control::request(&args.control, "status").await?),
            Some(Command::Passwd { users, user }) => passwd(&users, &user),
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

async fn serve(args: ServeArgs) -> Result<()> {
    // Signal handlers first: until tokio's are installed, SIGTERM, SIGINT and
    // SIGHUP keep their default action, which kills the process outright (so
    // a SIGTERM just after "serving SMTP" would skip the graceful drain, and
    // a SIGHUP during start-up would end the server instead of reloading).
    let stop = shutdown_signal()?;
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    // Before the engine: its instance pool is sized from the result.
    let max_connections = budget::connections(args.max_connections)?;
    let config = ServerConfig {
        listen: args.listen,
        listen_submission: args.listen_submission,
        listen_tls: args.listen_tls,
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| TlsFiles { cert, key }),
        tls_handshake_timeout: Duration::from_secs(args.tls_handshake_timeout),
        require_tls: args.require_tls,
        allow_plaintext_auth: args.allow_plaintext_auth,
        auth_failure_delay: Duration::from_millis(args.auth_failure_delay_ms),
        max_auth_failures: args.max_auth_failures,
        received_auth: args.received_auth,
        hostname: args.hostname.clone(),
        max_message_size: args.max_message_size,
        max_recipients: args.max_recipients,
        max_line_length: args.max_line_length,
        max_connections,
        max_connections_per_ip: args.max_connections_per_ip,
        proxy_networks: Default::default(),
        proxy_header_timeout: Duration::from_secs(ServerConfig::DEFAULT_PROXY_HEADER_TIMEOUT),
        command_timeout: Duration::from_secs(args.command_timeout),
        data_timeout: Duration::from_secs(args.data_timeout),
        data_end_timeout: Duration::from_secs(args.data_end_timeout),
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
    };
    let limits = SandboxLimits {
        max_memory: args.guest_memory_mib << 20,
        call_budget: Duration::from_millis(args.guest_call_budget_ms),
        // Room for every connection plus the instances a reload validates with.
        max_instances: u32::try_from(max_connections + 16).context("--max-connections is too large")?,
        ..SandboxLimits::default()
    };
    let cache = match (args.no_cache, args.cache_dir.or_else(CompileCache::default_dir)) {
        (false, Some(dir)) => Some(CompileCache::open(dir)?),
        _ => None,
    };
    let runtime = Runtime::new(limits, cache)?;
    // Taken before the read, for --watch: a change after this point is seen.
    let stamp = args.component.as_deref().and_then(FileStamp::of);
    let bytes = match &args.component {
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
    let spool = Arc::new(
        Maildir::open(&args.maildir, &args.hostname)
            .with_context(|| format!("opening the Maildir {}", args.maildir.display()))?,
    );
    let users = match &args.users {
        Some(path) => {
            let users = PasswordFile::open(path).context("loading the users file")?;
            info!(path = %path.display(), count = users.count(), "users file loaded");
            if config.tls.is_none() && !args.allow_plaintext_auth {
                warn!("--users without --tls-cert: AUTH is offered only over TLS, so it will never be offered");
            }
            Some(Arc::new(users))
        }
        None => None,
    };
    let policy: Arc<dyn Policy> = match &users {
        Some(users) => users.clone(),
        None => Arc::new(AcceptAll),
    };
    let control_listener = control::bind(&args.control).await?;
    let server = Server::bind(config, registry.clone(), spool, policy).await?;
    let files = ReloadableFiles { certificates: server.certificates(), users };
    let reloader = Reloader::with_files(runtime, registry.clone(), args.component.clone(), files);

    let control_task = tokio::spawn(control::serve(control_listener, reloader.clone(), registry));
    let hup_task = tokio::spawn(reload_on_sighup(reloader.clone(), hup));
    let watch_task = args.watch.then(|| tokio::spawn(reloader.watch(stamp)));
    let result = server.serve(stop).await;
    control_task.abort();
    hup_task.abort();
    if let Some(task) = watch_task {
        task.abort();
    }
    let _ = std::fs::remove_file(&args.control);
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
    })
}
