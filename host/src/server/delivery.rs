//! One message being received: the envelope (converted once, at
//! `message-begin`), the spool transaction its content streams into, and
//! its end: the policy's end-of-data decision, then the commit that makes
//! it durable, turned into the answer to `ask(message-end)`.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use smtp_core::{Answer, BodyType, DsnReturn, Envelope, Reason};
use tracing::{info, warn};

use super::listener::ServerContext;
use crate::policy::{Client, EndOfData, MessageChecks, Policy};
use crate::runtime::LoadedComponent;
use crate::spool::{MessageMeta, StoredRecipient, Transaction, is_storage_full};

/// A message from `message-begin` to its answer.
pub struct Delivery {
    envelope: Envelope,
    /// Storage open, or failed (the client still sends the rest, and hears
    /// 451/452 at the end).
    storage: Result<Box<dyn Transaction>, io::Error>,
    /// Content octets so far.
    size: u64,
    /// The policy's checks of the content, which it passes through.
    checks: Option<Box<dyn MessageChecks>>,
}

impl Delivery {
    /// Opens storage for the message `envelope` announces.
    /// `policy` says where each recipient's copies go.
    pub fn begin(
        ctx: &ServerContext,
        component: &LoadedComponent,
        policy: &dyn Policy,
        client: &Client,
        envelope: Envelope,
    ) -> Delivery {
        let storage = ctx.spool.begin(&meta(ctx, component, policy, client, &envelope)).inspect_err(|err| {
            warn!(%err, "cannot open storage for a message");
        });
        let checks = policy.message_checks(client, &envelope);
        Delivery { envelope, storage, size: 0, checks }
    }

    /// Appends content; a failed write fails the message (dropping the
    /// transaction removes what was written so far).
    pub fn write(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        let storage = &mut self.storage;
        match &mut self.checks {
            Some(checks) => checks.write(bytes, &mut |bytes| store(storage, bytes)),
            None => store(storage, bytes),
        }
    }

    /// Content octets received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The answer to `ask(message-end)`: the policy decides, then the
    /// message is made durable and accepted with its queue id, or refused
    /// (as the policy says, or temporarily when storage fails). The
    /// decision and the storage together may take `bound` (the data-end
    /// timeout); past it the client hears 451 and the transaction is
    /// cancelled before it becomes visible. With the answer, when the
    /// message was stored: how long the commit took (from the policy's
    /// decision to durable).
    pub async fn finish(self, policy: &dyn Policy, client: &Client, bound: Duration) -> (Answer, Option<Duration>) {
        let mut commit = None;
        let answer = self.decide_and_commit(policy, client, bound, &mut commit).await;
        (answer, commit)
    }

    async fn decide_and_commit(
        mut self,
        policy: &dyn Policy,
        client: &Client,
        bound: Duration,
        commit: &mut Option<Duration>,
    ) -> Answer {
        let deadline = Instant::now() + bound;
        let storage = &mut self.storage;
        if let Some(checks) = &mut self.checks {
            checks.finish(&mut |bytes| store(storage, bytes));
        }
        let failure = |err: &io::Error| {
            let reason = if is_storage_full(err) { Reason::StorageFull } else { Reason::LocalError };
            Answer::refuse(reason, false)
        };
        let txn = match self.storage {
            Ok(txn) => txn,
            Err(err) => return failure(&err),
        };
        let decided = async {
            let mut headers = Vec::new();
            if let Some(checks) = self.checks {
                match checks.decide(client, &self.envelope).await {
                    EndOfData::Accept { headers: checked } => headers = checked,
                    refused => return refused,
                }
            }
            match policy.end_of_data(client, &self.envelope, self.size).await {
                EndOfData::Accept { headers: more } => {
                    headers.extend_from_slice(&more);
                    EndOfData::Accept { headers }
                }
                refused => refused,
            }
        };
        let Ok(decision) = tokio::time::timeout_at(deadline, decided).await else {
            warn!("the policy did not decide the end of data in time; message not stored");
            return Answer::refuse(Reason::LocalError, false);
        };
        let headers = match decision {
            EndOfData::Refuse(refusal) => {
                info!(reason = refusal.reason.name(), "message refused at end of data; nothing stored");
                return Answer::Refuse(refusal);
            }
            EndOfData::Accept { headers } if well_formed(&headers) => headers,
            EndOfData::Accept { .. } => {
                warn!("the policy's end-of-data header fields are malformed; message not stored");
                return Answer::refuse(Reason::LocalError, false);
            }
        };
        let id = txn.queue_id().to_string();
        let cancelled = Arc::new(AtomicBool::new(false));
        let committing = txn.commit(headers, cancelled.clone());
        let started = Instant::now();
        let Ok(outcome) = tokio::time::timeout_at(deadline, committing).await else {
            cancelled.store(true, Ordering::SeqCst);
            warn!(queue_id = %id, "storage did not finish in time; message abandoned");
            return Answer::refuse(Reason::LocalError, false);
        };
        match outcome {
            Ok(()) => {
                *commit = Some(started.elapsed());
                Answer::Accept(Some(id))
            }
            Err(err) => {
                warn!(%err, "cannot make the message durable");
                failure(&err)
            }
        }
    }
}

/// Appends content to the transaction; a failed write fails the message
/// (dropping the transaction removes what was written so far).
fn store(storage: &mut Result<Box<dyn Transaction>, io::Error>, bytes: &[u8]) {
    if let Ok(txn) = storage
        && let Err(err) = txn.write(bytes)
    {
        warn!(%err, "cannot write message content");
        *storage = Err(err);
    }
}

/// Header fields as RFC 5322 section 2.2 has them: lines ending in CRLF,
/// no other CR or LF, no NUL, each line at most 998 octets, the first line
/// a field name and a colon, continuation lines folded (starting with
/// whitespace). A policy's fields go above our Received field as they are,
/// so a malformed one would break or forge the header block.
fn well_formed(headers: &[u8]) -> bool {
    let Some(body) = headers.strip_suffix(b"\r\n") else {
        return headers.is_empty();
    };
    let lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    let last = lines.len() - 1;
    lines.iter().enumerate().all(|(i, line)| {
        // Every line but the last was cut at a LF: it must have had its CR.
        let line = if i < last {
            match line.strip_suffix(b"\r") {
                Some(line) => line,
                None => return false,
            }
        } else {
            line
        };
        let folded = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        let named = line
            .iter()
            .position(|&b| b == b':')
            .is_some_and(|colon| colon > 0 && line[..colon].iter().all(|&b| (33..=126).contains(&b)));
        line.len() <= 998 && !line.iter().any(|&b| b == b'\r' || b == 0) && (named || (i > 0 && folded))
    })
}

fn meta(
    ctx: &ServerContext,
    component: &LoadedComponent,
    policy: &dyn Policy,
    client: &Client,
    envelope: &Envelope,
) -> MessageMeta {
    MessageMeta {
        server_hostname: ctx.config.hostname.clone(),
        client_ip: client.ip,
        helo: envelope.helo.clone(),
        reverse_path: envelope.reverse_path.clone(),
        recipients: envelope
            .recipients
            .iter()
            .map(|r| StoredRecipient {
                address: r.address.clone(),
                notify: r.notify.clone(),
                orcpt: r.orcpt.clone(),
                destinations: policy.destinations(client, &r.address),
            })
            .collect(),
        protocol: envelope.protocol.clone(),
        body: match envelope.body {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
            BodyType::BinaryMime => "BINARYMIME",
        },
        smtputf8: envelope.smtputf8,
        dsn_return: envelope.dsn_return.map(|r| match r {
            DsnReturn::Full => "FULL",
            DsnReturn::Headers => "HDRS",
        }),
        dsn_envid: envelope.dsn_envid.clone(),
        received_at: SystemTime::now(),
        handled_by: component.label(),
        tls: envelope.tls.clone(),
        authenticated: envelope.authenticated.clone().filter(|_| ctx.config.received_auth),
    }
}

#[cfg(test)]
mod tests {
    use super::well_formed;

    #[test]
    fn policy_header_fields_must_be_well_formed() {
        assert!(well_formed(b""));
        assert!(well_formed(b"Authentication-Results: mx.test;\r\n\tspf=pass\r\nReceived-SPF: pass\r\n"));
        for bad in [
            &b"Authentication-Results: x"[..],
            b"A: 1\nB: 2\r\n",
            b"A: 1\r\n\r\nbody\r\n",
            b"no colon\r\n",
            b": empty name\r\n",
            b"A: 1\rB: 2\r\n",
            b"A: \0\r\n",
        ] {
            assert!(!well_formed(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(!well_formed(format!("A: {}\r\n", "x".repeat(996)).as_bytes()));
    }
}
