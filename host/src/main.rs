//! The smtpcell command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use smtpcell::runtime::{Registry, Runtime, SandboxLimits};
use smtpcell::server::{Server, ServerConfig};
use smtpcell::spool::Maildir;
use tracing::info;

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
enum Command {
    /// Receive mail over SMTP and store it in a Maildir (the default).
    Serve(ServeArgs),
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR", default_value = ServerConfig::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Maildir to store accepted mail in (tmp/, new/ and cur/ are created).
    #[arg(long, value_name = "DIR", default_value = "./mail")]
    maildir: PathBuf,
    /// Name announced in the greeting and written into Received headers.
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    hostname: String,
    /// Serve with this protocol component instead of the one built in.
    #[arg(long, value_name = "FILE.wasm")]
    component: Option<PathBuf>,
    /// Largest message accepted, in octets (advertised as SIZE).
    #[arg(long, value_name = "BYTES", default_value_t = 10_240_000)]
    max_message_size: u64,
    /// Most recipients per message.
    #[arg(long, value_name = "N", default_value_t = 100)]
    max_recipients: u32,
    /// Longest text line accepted in DATA, in octets including CRLF (>= 1000).
    #[arg(long, value_name = "BYTES", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1000..))]
    max_line_length: u32,
    /// Most concurrent connections; more are answered 421 and closed.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    max_connections: usize,
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
    match cli.command {
        Some(Command::Serve(args)) => runtime.block_on(serve(args)),
        None => runtime.block_on(serve(cli.serve)),
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let config = ServerConfig {
        listen: args.listen,
        hostname: args.hostname.clone(),
        max_message_size: args.max_message_size,
        max_recipients: args.max_recipients,
        max_line_length: args.max_line_length,
        max_connections: args.max_connections,
        ..ServerConfig::default()
    };
    let limits = SandboxLimits {
        max_memory: args.guest_memory_mib << 20,
        call_budget: std::time::Duration::from_millis(args.guest_call_budget_ms),
        // Room for every connection plus the instances a reload validates with.
        max_instances: u32::try_from(args.max_connections + 16).context("--max-connections is too large")?,
        ..SandboxLimits::default()
    };
    let runtime = Runtime::new(limits)?;
    let bytes = match &args.component {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => smtpcell::EMBEDDED_COMPONENT.to_vec(),
    };
    let component = runtime.load(&bytes).await.context("loading the protocol component")?;
    info!(component = %component.label(), contract = %component.info().contract, "component loaded");
    let spool = Arc::new(
        Maildir::open(&args.maildir, &args.hostname)
            .with_context(|| format!("opening the Maildir {}", args.maildir.display()))?,
    );
    let server = Server::bind(config, Arc::new(Registry::new(component)), spool).await?;
    server.serve(shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    info!("signal received");
}
