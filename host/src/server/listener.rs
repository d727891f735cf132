//! The accept loop: one task per connection, a cap on concurrent
//! connections, and a graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use super::config::ServerConfig;
use super::connection::serve_connection;
use super::per_ip::PerIpLimit;
use crate::runtime::{GuestConfig, Registry};
use crate::spool::Spool;

/// What every connection task shares.
pub struct ServerContext {
    pub config: ServerConfig,
    pub guest_config: GuestConfig,
    pub registry: Arc<Registry>,
    pub spool: Arc<dyn Spool>,
    /// Becomes `true` when the server starts draining.
    pub shutdown: watch::Receiver<bool>,
}

/// A bound, not yet serving, SMTP server.
pub struct Server {
    listener: TcpListener,
    context: Arc<ServerContext>,
    shutdown_tx: watch::Sender<bool>,
}

impl Server {
    pub async fn bind(config: ServerConfig, registry: Arc<Registry>, spool: Arc<dyn Spool>) -> Result<Server> {
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        let guest_config = config.guest_config();
        let context = Arc::new(ServerContext { config, guest_config, registry, spool, shutdown });
        Ok(Server { listener, context, shutdown_tx })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` resolves, then drains: no new connections;
    /// sessions between commands get 421 from their guest; sessions in the
    /// middle of a message may finish it within `shutdown_grace`, after which
    /// they are cut off (their unfinished messages are discarded, never
    /// half-stored).
    pub async fn serve(self, stop: impl Future<Output = ()>) -> Result<()> {
        let Server { listener, context, shutdown_tx } = self;
        let slots = Arc::new(Semaphore::new(context.config.max_connections));
        let per_ip = PerIpLimit::new(context.config.max_connections_per_ip);
        let mut tasks = JoinSet::new();
        tokio::pin!(stop);
        info!(listen = %listener.local_addr()?, component = %context.registry.current().label(), "serving SMTP");
        loop {
            while tasks.try_join_next().is_some() {}
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(err) => {
                            // Out of file descriptors and the like: back off
                            // instead of spinning, keep serving the others.
                            warn!(%err, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let slot = per_ip.try_acquire(peer.ip().to_canonical());
                    match (slots.clone().try_acquire_owned(), slot) {
                        (Ok(permit), Some(slot)) => {
                            let ctx = context.clone();
                            tasks.spawn(async move {
                                serve_connection(ctx, stream, peer).await;
                                drop((permit, slot));
                            });
                        }
                        (Err(_), _) => {
                            tasks.spawn(refuse(stream, context.config.hostname.clone(), "Too many connections"));
                        }
                        (_, None) => {
                            tasks.spawn(refuse(stream, context.config.hostname.clone(), "Too many connections from your address"));
                        }
                    }
                }
                () = &mut stop => break,
            }
        }
        drop(listener);
        info!(sessions = tasks.len(), "shutting down: draining sessions");
        let _ = shutdown_tx.send(true);
        let grace = context.config.shutdown_grace;
        if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
            warn!(sessions = tasks.len(), "shutdown grace period over: cutting off the remaining sessions");
            tasks.shutdown().await;
        }
        info!("stopped");
        Ok(())
    }
}

/// Past the connection limit no guest instance is created; this is the
/// host's second and last piece of protocol text (RFC 5321 section 3.8 lets
/// a server answer 421 instead of the greeting).
async fn refuse(mut stream: TcpStream, hostname: String, why: &'static str) {
    warn!(why, "connection limit reached: refusing a client");
    let reply = format!("421 4.7.0 {hostname} {why}, try again later\r\n");
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}
