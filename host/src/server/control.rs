//! The local control socket behind `smtpcell reload` and `smtpcell status`:
//! a Unix socket (mode 0600, so only the server's user can use it) that
//! takes one command line and answers with text lines.
//!
//! Answers start with `ok` or `error` on their first line.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};

use super::backoff::Backoff;
use super::reload::Reloader;
use crate::runtime::Registry;

/// Longest command accepted.
const MAX_COMMAND: u64 = 64;
/// How long a control client may take to send its command, and to take the
/// answer: the socket is local and private, but a client that connects and
/// then stalls must not hold a task forever.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the control socket. A stale socket file from a crashed server is
/// replaced; a live one (another server answering) is an error.
pub async fn bind(path: &Path) -> Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            bail!("{} is in use by a running server", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing the stale socket {}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers control requests until the task is dropped. Accept failures
/// (out of file descriptors) back off instead of spinning.
pub async fn serve(listener: UnixListener, reloader: Arc<Reloader>, registry: Arc<Registry>) {
    let mut backoff = Backoff::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                let failed = backoff.failed(Instant::now());
                if let Some(failures) = failed.warn {
                    let delay_ms = failed.delay.as_millis() as u64;
                    warn!(%err, failures, delay_ms, "control socket accept failed: backing off");
                }
                tokio::time::sleep(failed.delay).await;
                continue;
            }
        };
        backoff.succeeded();
        let (reloader, registry) = (reloader.clone(), registry.clone());
        tokio::spawn(async move {
            if let Err(err) = answer(stream, &reloader, &registry).await {
                debug!(%err, "control request failed");
            }
        });
    }
}

async fn answer(stream: UnixStream, reloader: &Reloader, registry: &Registry) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::time::timeout(CLIENT_TIMEOUT, BufReader::new(read).take(MAX_COMMAND).read_line(&mut line))
        .await
        .context("no command within the control client timeout")??;
    let reply = match line.trim() {
        "reload" => {
            let report = reloader.reload_all("control socket").await;
            let lines = report.lines.join("\n");
            // The error line heads the answer, so that a part that did
            // reload does not read as the failure.
            if report.ok {
                format!("ok {lines}\n")
            } else {
                format!("error reload refused, nothing changed:\n{lines}\n")
            }
        }
        "status" => status_text(registry),
        "status json" => status_json(registry),
        other => format!("error unknown command {other:?}; try `reload` or `status`\n"),
    };
    tokio::time::timeout(CLIENT_TIMEOUT, async {
        write.write_all(reply.as_bytes()).await?;
        write.shutdown().await
    })
    .await
    .context("the control client did not take the answer in time")??;
    Ok(())
}

/// `ok`, then one line per loaded version.
fn status_text(registry: &Registry) -> String {
    let mut text = String::from("ok\n");
    for v in registry.status() {
        text.push_str(&format!(
            "{}{} contract={} connections={}\n",
            v.label,
            if v.current { " (current)" } else { "" },
            v.contract,
            v.connections
        ));
    }
    text
}

/// `ok`, then one JSON object: the loaded versions and the metrics (null
/// when they are not collected), as `smtpcell status --json` prints it.
fn status_json(registry: &Registry) -> String {
    let components: Vec<serde_json::Value> = registry
        .status()
        .into_iter()
        .map(|v| {
            serde_json::json!({
                "label": v.label, "contract": v.contract, "connections": v.connections, "current": v.current,
            })
        })
        .collect();
    let metrics = crate::events::metrics().map(crate::events::snapshot);
    format!("ok\n{}\n", serde_json::json!({ "components": components, "metrics": metrics }))
}

/// Client side: sends `command`, returns the answer; an `error` answer is
/// an Err carrying its text.
pub async fn request(path: &PathBuf, command: &str) -> Result<String> {
    let mut stream = UnixStream::connect(path)
        .await
        .with_context(|| format!("connecting to {} (is `smtpcell serve` running there?)", path.display()))?;
    stream.write_all(format!("{command}\n").as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    match answer.strip_prefix("ok") {
        Some(rest) => Ok(rest.trim_start().to_string()),
        None => bail!("{}", answer.strip_prefix("error ").unwrap_or(&answer).trim_end()),
    }
}
