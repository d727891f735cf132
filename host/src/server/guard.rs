//! The host never trusts what a guest returns: every action is checked
//! against the contract before it touches the socket or the disk. A
//! violation is a guest fault, handled exactly like a trap.

use crate::runtime::{Action, Envelope, GuestFault};

/// Bytes one call may ask the host to send. A reply is a few hundred bytes;
/// a call answering a 64 KiB read of pipelined commands sends a few KiB.
const MAX_SEND_PER_CALL: usize = 1 << 20;
/// Longest string the host accepts in an envelope field (RFC 5321 paths are
/// at most 256 octets; parameters are shorter).
const MAX_FIELD: usize = 1024;

/// Tracks the transaction state the actions imply.
pub struct ActionGuard {
    open: bool,
    size: u64,
    max_size: u64,
    max_recipients: usize,
}

impl ActionGuard {
    pub fn new(max_size: u64, max_recipients: u32) -> Self {
        ActionGuard { open: false, size: 0, max_size, max_recipients: max_recipients as usize }
    }

    pub fn in_message(&self) -> bool {
        self.open
    }

    /// Checks one call's whole list before any of it is executed.
    pub fn check(&mut self, actions: &[Action]) -> Result<(), GuestFault> {
        let mut sent = 0usize;
        for (i, action) in actions.iter().enumerate() {
            let last = i + 1 == actions.len();
            match action {
                Action::Send(bytes) => {
                    sent += bytes.len();
                    if sent > MAX_SEND_PER_CALL {
                        return violation("more than 1 MiB of replies in one call");
                    }
                }
                Action::MessageBegin(envelope) => {
                    if self.open {
                        return violation("message-begin inside an open message");
                    }
                    check_envelope(envelope, self.max_recipients)?;
                    self.open = true;
                    self.size = 0;
                }
                Action::MessageData(bytes) => {
                    if !self.open {
                        return violation("message-data without message-begin");
                    }
                    self.size += bytes.len() as u64;
                    if self.size > self.max_size {
                        return violation("message-data beyond the configured size limit");
                    }
                }
                Action::MessageEnd => {
                    if !self.open {
                        return violation("message-end without message-begin");
                    }
                    if !last {
                        return violation("actions after message-end (they must wait for the verdict)");
                    }
                    self.open = false;
                }
                Action::MessageAbort => {
                    if !self.open {
                        return violation("message-abort without message-begin");
                    }
                    self.open = false;
                }
                Action::StartTls => return violation("start-tls, but the host offered no TLS"),
                Action::Close => {
                    if !last {
                        return violation("actions after close");
                    }
                }
            }
        }
        Ok(())
    }
}

fn violation<T>(what: &str) -> Result<T, GuestFault> {
    Err(GuestFault::Contract(what.to_string()))
}

fn check_envelope(e: &Envelope, max_recipients: usize) -> Result<(), GuestFault> {
    if e.recipients.is_empty() || e.recipients.len() > max_recipients {
        return violation("message-begin with no recipients or more than the limit");
    }
    let mut fields = vec![e.helo.as_str(), e.reverse_path.as_str(), e.protocol.as_str()];
    fields.extend(e.dsn_envid.as_deref());
    for r in &e.recipients {
        fields.push(&r.address);
        fields.extend(r.notify.as_deref());
        fields.extend(r.orcpt.as_deref());
    }
    for field in fields {
        if field.len() > MAX_FIELD || field.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return violation("envelope field with CR, LF, NUL or over 1024 octets");
        }
    }
    if e.helo.is_empty() || e.protocol.is_empty() || e.protocol.bytes().any(|b| !b.is_ascii_alphanumeric()) {
        return violation("envelope without HELO name or with a malformed protocol name");
    }
    Ok(())
}
