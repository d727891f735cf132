//! `--metrics ADDR`: the `/metrics` endpoint, on its own listener, in the
//! OpenMetrics text format (which Prometheus scrapes natively).
//!
//! A minimal HTTP/1.x responder on tokio: it reads one request head, answers
//! `GET /metrics` (200) or anything else (404, 405) and closes. A scrape
//! needs nothing more, and a web framework would be a large dependency for
//! one fixed page. Bounded: a request head of at most 8 KiB within 10 s, at
//! most 16 requests at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::debug;

use super::Metrics;

const MAX_HEAD: usize = 8 << 10;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CLIENTS: usize = 16;
/// OpenMetrics 1.0 (prometheus-client writes it; Prometheus asks for it).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds `addr`; the returned future answers scrapes until dropped.
/// Errors: the address cannot be bound.
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: &'static Metrics,
) -> Result<(SocketAddr, impl Future<Output = ()>)> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding the metrics listener {addr}"))?;
    let bound = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let serve = async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors: the SMTP listeners back off and warn;
                // this one just waits a little.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else { continue };
            tokio::spawn(async move {
                if let Err(err) = tokio::time::timeout(CLIENT_TIMEOUT, answer(stream, metrics)).await {
                    debug!(%err, "metrics client timed out");
                }
                drop(slot);
            });
        }
    };
    Ok((bound, serve))
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) if head.len() + n > MAX_HEAD => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let request_line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = request_line.split(|&b| b == b' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let response = match (method, path) {
        (b"GET", b"/metrics") => response("200 OK", CONTENT_TYPE, &metrics.encode()),
        (b"GET", _) => response("404 Not Found", "text/plain", "try /metrics\n"),
        _ => response("405 Method Not Allowed", "text/plain", "GET /metrics\n"),
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
