//! The host never trusts what a guest returns: every action is checked
//! against the contract before it touches the socket or the disk. A
//! violation is a guest fault, handled exactly like a trap.
//!
//! Every bound here is one a correct guest cannot reach from any input a
//! client may legitimately send: a guard limit that a correct guest can
//! reach turns a client's legitimate traffic into a "guest fault" and a
//! 421 4.3.0 for nobody's error.

use crate::runtime::{Action, Envelope, GuestFault};

/// Longest string the host accepts in an envelope field, in octets. Each
/// field (HELO name, reverse-path, forward-path, ENVID, ORCPT, NOTIFY) is
/// part of one command line, taken as sent (wit/session.wit, `envelope`),
/// so no field a correct guest produces is longer than the longest command
/// line it accepts (512 octets raised by the MAIL/RCPT extension
/// allowances of RFC 1870, 6152, 6531 and 3461: 1,048).
const MAX_FIELD: usize = smtp_core::LONGEST_COMMAND_LINE;

/// The guest call whose actions are checked, with the client input it
/// processes: the send bound of wit/session.wit is a function of it.
#[derive(Clone, Copy, Debug)]
pub enum Call {
    /// `feed`, with the length of its input in octets.
    Feed(usize),
    /// `complete`: it processes the input kept behind the message, which is
    /// never more than the input of the `feed` call that returned
    /// `message-end`.
    Complete,
    /// Calls without input: greeting, timeout, shutdown, tls-started.
    NoInput,
}

/// Tracks the transaction state the actions imply.
pub struct ActionGuard {
    open: bool,
    size: u64,
    max_size: u64,
    max_recipients: usize,
    /// Input of the `feed` call whose actions ended with `message-end`: the
    /// most the following `complete` may process.
    input_behind_message: usize,
}

impl ActionGuard {
    pub fn new(max_size: u64, max_recipients: u32) -> Self {
        ActionGuard { open: false, size: 0, max_size, max_recipients: max_recipients as usize, input_behind_message: 0 }
    }

    /// Whether the client is sending message content: from `message-begin`
    /// to `message-end` or `message-abort` (wit/session.wit emits
    /// `message-abort` only once the client's content is over).
    pub fn in_message(&self) -> bool {
        self.open
    }

    /// Reply octets `call` may send: 64 per octet of input plus 4,096
    /// (wit/session.wit, the reply bound on `feed` and `complete`).
    pub fn send_bound(&self, call: Call) -> usize {
        let input = match call {
            Call::Feed(len) => len,
            Call::Complete => self.input_behind_message,
            Call::NoInput => 0,
        };
        smtp_core::max_reply_octets(input)
    }

    /// Checks one call's whole list before any of it is executed.
    pub fn check(&mut self, call: Call, actions: &[Action]) -> Result<(), GuestFault> {
        let bound = self.send_bound(call);
        let mut sent = 0usize;
        for (i, action) in actions.iter().enumerate() {
            let last = i + 1 == actions.len();
            match action {
                Action::Send(bytes) => {
                    sent += bytes.len();
                    if sent > bound {
                        return Err(GuestFault::Contract(format!(
                            "{sent} octets of replies in one call, more than the {bound} its input allows"
                        )));
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
                    if let Call::Feed(len) = call {
                        self.input_behind_message = len;
                    }
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
            return violation("envelope field with CR, LF, NUL or longer than any command line");
        }
    }
    if e.helo.is_empty() || e.protocol.is_empty() || e.protocol.bytes().any(|b| !b.is_ascii_alphanumeric()) {
        return violation("envelope without HELO name or with a malformed protocol name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope {
            helo: "a".into(),
            reverse_path: String::new(),
            recipients: vec![crate::runtime::Recipient { address: "r@x".into(), notify: None, orcpt: None }],
            protocol: "ESMTP".into(),
            body: crate::runtime::BodyType::SevenBit,
            smtputf8: false,
            declared_size: None,
            dsn_return: None,
            dsn_envid: None,
        }
    }

    fn send(n: usize) -> Vec<Action> {
        vec![Action::Send(vec![b'x'; n])]
    }

    #[test]
    fn replies_scale_with_the_input_of_the_call() {
        let mut guard = ActionGuard::new(1000, 10);
        // 6,899 pipelined `EHLO a` (55,192 octets) answered with 250s of
        // 200 octets each: 1.4 MB, over the old fixed 1 MiB.
        assert!(guard.check(Call::Feed(55_192), &send(6_899 * 200)).is_ok());
        assert!(guard.check(Call::Feed(10), &send(64 * 10 + 4096)).is_ok());
        assert!(guard.check(Call::Feed(10), &send(64 * 10 + 4097)).is_err());
        assert!(guard.check(Call::NoInput, &send(4096)).is_ok());
        assert!(guard.check(Call::NoInput, &send(4097)).is_err());
    }

    #[test]
    fn complete_may_answer_the_input_behind_the_message() {
        let mut guard = ActionGuard::new(1000, 10);
        guard.check(Call::Feed(100), &[Action::MessageBegin(envelope())]).unwrap();
        guard.check(Call::Feed(5000), &[Action::MessageEnd]).unwrap();
        assert_eq!(guard.send_bound(Call::Complete), 5000 * 64 + 4096);
        assert!(guard.check(Call::Complete, &send(5000 * 64 + 4096)).is_ok());
        assert!(guard.check(Call::Complete, &send(5000 * 64 + 4097)).is_err());
    }

    #[test]
    fn fields_as_long_as_an_extended_rcpt_line_allows_are_accepted() {
        let mut envelope = envelope();
        // RCPT TO:<r@x> ORCPT=rfc822;… : 512 + 500 octets of line.
        envelope.recipients[0].orcpt = Some(format!("rfc822;{}", "o".repeat(1000)));
        assert!(check_envelope(&envelope, 10).is_ok());
        envelope.recipients[0].orcpt = Some("o".repeat(MAX_FIELD + 1));
        assert!(check_envelope(&envelope, 10).is_err());
    }
}
