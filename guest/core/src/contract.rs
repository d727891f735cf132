//! The contract's ordering rules (wit/session.wit), stated once and checked
//! by every Rust driver: the host's guard, the transcript runner, the core
//! tests and the fuzz host. A driver maps each action of a call to a
//! [`Step`] and hands the call's whole list to [`Checker::check`] before
//! executing any of it.

use crate::action::Action;
use crate::limits::max_reply_octets;
use crate::prelude::*;
use core::fmt;

/// The session method a list of actions came from, with the client input
/// it processes (the reply bound is a function of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `greeting`.
    Greeting,
    /// `feed`, with the length of its input in octets.
    Feed(usize),
    /// `answer`: it processes the input kept behind the question, never
    /// more than the input of the `feed` call that asked.
    Answer,
    /// `tls-started`: after `start-tls`, or before `greeting` (implicit
    /// TLS). No input.
    TlsStarted,
    /// `timeout`, `shutdown`: no input; they end the session, a pending
    /// question with it.
    NoInput,
}

/// One action as far as ordering is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `send`, with its length in octets.
    Send(usize),
    /// `ask`; `message_end` for the end-of-message question.
    Ask {
        message_end: bool,
    },
    /// `message-begin`, with the number of recipients in its envelope.
    Begin {
        recipients: usize,
    },
    /// `message-data`, with its length in octets.
    Data(usize),
    Abort,
    StartTls,
    Close,
}

impl Step {
    /// The step of one of smtp-core's own actions.
    pub fn of(action: &Action) -> Step {
        match action {
            Action::Send(bytes) => Step::Send(bytes.len()),
            Action::Ask(question) => Step::Ask { message_end: question.name() == "message-end" },
            Action::MessageBegin(envelope) => Step::Begin { recipients: envelope.recipients.len() },
            Action::MessageData(bytes) => Step::Data(bytes.len()),
            Action::MessageAbort => Step::Abort,
            Action::StartTls => Step::StartTls,
            Action::Close => Step::Close,
        }
    }
}

/// A broken rule, in words for a log line or a test failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation(pub String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn violation<T>(what: &str) -> Result<T, Violation> {
    Err(Violation(what.to_string()))
}

/// What the actions so far imply about the session, as the host sees it.
#[derive(Clone, Debug)]
pub struct Checker {
    max_message_size: u64,
    max_recipients: usize,
    /// Between `message-begin` and `ask(message-end)` / `message-abort`.
    open: bool,
    /// Content octets of the open message.
    size: u64,
    /// A question is pending.
    asking: bool,
    /// `start-tls` was returned and `tls-started` not yet called.
    awaiting_tls: bool,
    /// `greeting` was called.
    greeted: bool,
    closed: bool,
    /// Input of the `feed` call that asked the pending question: the most
    /// the following `answer` calls may process.
    input_behind_question: usize,
}

impl Checker {
    /// A checker for a session configured with these limits.
    pub fn new(max_message_size: u64, max_recipients: u32) -> Checker {
        Checker {
            max_message_size,
            max_recipients: max_recipients as usize,
            open: false,
            size: 0,
            asking: false,
            awaiting_tls: false,
            greeted: false,
            closed: false,
            input_behind_question: 0,
        }
    }

    /// Whether the client is sending message content: from `message-begin`
    /// to `ask(message-end)` or `message-abort` (the span of the data
    /// timeout).
    pub fn in_message(&self) -> bool {
        self.open
    }

    /// Whether a question waits for its answer.
    pub fn asking(&self) -> bool {
        self.asking
    }

    /// Whether the session returned `close`.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Reply octets `call` may send: 64 per octet of input plus 4,096.
    pub fn send_bound(&self, call: Call) -> usize {
        max_reply_octets(match call {
            Call::Feed(len) => len,
            Call::Answer => self.input_behind_question,
            Call::Greeting | Call::TlsStarted | Call::NoInput => 0,
        })
    }

    /// Checks that the host may make `call` now, then every action it
    /// returned, in order, updating the state they imply.
    ///
    /// Errors: the first rule broken, by the host (`feed` while a question
    /// is pending, `answer` without one) or by the session (anything after
    /// `ask` or `close`, content outside a message, replies over the bound,
    /// a second question, ...).
    pub fn check(&mut self, call: Call, steps: impl IntoIterator<Item = Step>) -> Result<(), Violation> {
        match call {
            _ if self.closed => return violation("a call after close"),
            Call::Greeting if self.greeted => return violation("a second greeting"),
            Call::Greeting => self.greeted = true,
            _ if !self.greeted && call != Call::TlsStarted => return violation("a call before the greeting"),
            Call::Feed(_) if self.asking => return violation("feed while a question is pending"),
            Call::Feed(_) if self.awaiting_tls => return violation("feed before tls-started"),
            Call::Answer if !self.asking => return violation("an answer without a question"),
            Call::Answer => self.asking = false,
            Call::TlsStarted if !self.awaiting_tls && self.greeted => {
                return violation("tls-started without start-tls");
            }
            Call::TlsStarted => self.awaiting_tls = false,
            Call::NoInput => {
                // timeout and shutdown end the session: a pending question
                // is dropped.
                self.asking = false;
                self.awaiting_tls = false;
            }
            Call::Feed(_) => {}
        }
        let bound = self.send_bound(call);
        let mut sent = 0usize;
        let mut ended = false;
        for step in steps {
            if ended {
                return violation("actions after ask, start-tls or close");
            }
            match step {
                Step::Send(len) => {
                    sent += len;
                    if sent > bound {
                        return Err(Violation(format!(
                            "{sent} octets of replies in one call, more than the {bound} its input allows"
                        )));
                    }
                }
                Step::Ask { message_end } => {
                    if message_end != self.open {
                        return violation(if message_end {
                            "ask(message-end) without message-begin"
                        } else {
                            "a question inside an open message"
                        });
                    }
                    self.open = false;
                    self.asking = true;
                    if let Call::Feed(len) = call {
                        self.input_behind_question = len;
                    }
                    ended = true;
                }
                Step::Begin { recipients } => {
                    if self.open {
                        return violation("message-begin inside an open message");
                    }
                    if recipients == 0 || recipients > self.max_recipients {
                        return violation("message-begin with no recipients or more than the limit");
                    }
                    self.open = true;
                    self.size = 0;
                }
                Step::Data(len) => {
                    if !self.open {
                        return violation("message-data without message-begin");
                    }
                    self.size += len as u64;
                    if self.size > self.max_message_size {
                        return violation("message-data beyond the configured size limit");
                    }
                }
                Step::Abort => {
                    if !self.open {
                        return violation("message-abort without message-begin");
                    }
                    self.open = false;
                }
                Step::StartTls => {
                    if self.open {
                        return violation("start-tls inside an open message");
                    }
                    self.awaiting_tls = true;
                    ended = true;
                }
                Step::Close => {
                    if self.open {
                        return violation("close with a message open (it is aborted first)");
                    }
                    self.closed = true;
                    ended = true;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(n: usize) -> [Step; 1] {
        [Step::Send(n)]
    }

    /// A checker past the greeting.
    fn greeted(max_message_size: u64, max_recipients: u32) -> Checker {
        let mut checker = Checker::new(max_message_size, max_recipients);
        checker.check(Call::Greeting, [Step::Send(10)]).unwrap();
        checker
    }

    #[test]
    fn replies_scale_with_the_input_of_the_call() {
        let mut checker = greeted(1000, 10);
        // 6,899 pipelined `EHLO a` (55,192 octets) answered with 250s of
        // 200 octets each: 1.4 MB, over a fixed 1 MiB.
        assert!(checker.check(Call::Feed(55_192), send(6_899 * 200)).is_ok());
        assert!(checker.check(Call::Feed(10), send(64 * 10 + 4096)).is_ok());
        assert!(checker.check(Call::Feed(10), send(64 * 10 + 4097)).is_err());
        assert!(checker.check(Call::NoInput, send(4096)).is_ok());
        assert!(checker.check(Call::NoInput, send(4097)).is_err());
    }

    #[test]
    fn answers_may_process_the_input_behind_the_question() {
        let mut checker = greeted(1000, 10);
        checker.check(Call::Feed(100), [Step::Begin { recipients: 1 }]).unwrap();
        checker.check(Call::Feed(5000), [Step::Data(10), Step::Ask { message_end: true }]).unwrap();
        assert_eq!(checker.send_bound(Call::Answer), 5000 * 64 + 4096);
        assert!(checker.check(Call::Answer, send(5000 * 64 + 4097)).is_err());
        // Asked again behind the first answer: the same input bounds it.
        let mut checker = greeted(1000, 10);
        checker.check(Call::Feed(5000), [Step::Ask { message_end: false }]).unwrap();
        checker.check(Call::Answer, [Step::Send(10), Step::Ask { message_end: false }]).unwrap();
        assert!(checker.check(Call::Answer, send(5000 * 64 + 4096)).is_ok());
    }

    #[test]
    fn question_rules() {
        let err = |checker: &mut Checker, call, steps: &[Step]| checker.check(call, steps.iter().copied()).unwrap_err();
        let mut checker = greeted(1000, 10);
        assert_eq!(err(&mut checker, Call::Answer, &[]).0, "an answer without a question");
        checker.check(Call::Feed(5), [Step::Ask { message_end: false }]).unwrap();
        assert_eq!(err(&mut checker.clone(), Call::Feed(5), &[]).0, "feed while a question is pending");
        let after = &[Step::Ask { message_end: false }, Step::Send(1)];
        assert_eq!(err(&mut checker.clone(), Call::Answer, after).0, "actions after ask, start-tls or close");
        let inside = &[Step::Begin { recipients: 1 }, Step::Ask { message_end: false }];
        assert_eq!(err(&mut checker.clone(), Call::Answer, inside).0, "a question inside an open message");
        let end = &[Step::Ask { message_end: true }];
        assert_eq!(err(&mut checker.clone(), Call::Answer, end).0, "ask(message-end) without message-begin");
        assert!(checker.check(Call::Answer, [Step::Close]).is_ok());
        assert_eq!(err(&mut checker, Call::Feed(1), &[]).0, "a call after close");
    }

    #[test]
    fn message_rules() {
        let mut checker = greeted(10, 2);
        assert!(checker.clone().check(Call::Feed(1), [Step::Data(1)]).is_err());
        assert!(checker.clone().check(Call::Feed(1), [Step::Begin { recipients: 3 }]).is_err());
        checker.check(Call::Feed(1), [Step::Begin { recipients: 2 }, Step::Data(10)]).unwrap();
        assert!(checker.in_message());
        assert!(checker.clone().check(Call::Feed(1), [Step::Data(1)]).is_err(), "over the size limit");
        assert!(checker.clone().check(Call::Feed(1), [Step::Begin { recipients: 1 }]).is_err());
        assert!(checker.clone().check(Call::Feed(1), [Step::Close]).is_err(), "close with the message open");
        checker.check(Call::Feed(1), [Step::Abort, Step::Close]).unwrap();
        assert!(!checker.in_message());
    }

    #[test]
    fn greeting_and_tls_rules() {
        let mut checker = Checker::new(10, 2);
        assert!(checker.clone().check(Call::Feed(1), []).is_err(), "a feed before the greeting");
        // Implicit TLS: tls-started before the greeting.
        checker.check(Call::TlsStarted, []).unwrap();
        checker.check(Call::Greeting, [Step::Send(10)]).unwrap();
        assert!(checker.clone().check(Call::Greeting, []).is_err(), "a second greeting");
        assert!(checker.clone().check(Call::TlsStarted, []).is_err(), "tls-started without start-tls");
        checker.check(Call::Feed(10), [Step::Send(10), Step::StartTls]).unwrap();
        assert!(checker.clone().check(Call::Feed(1), []).is_err(), "a feed before tls-started");
        checker.check(Call::TlsStarted, []).unwrap();
        // tls-started leaves a pending question pending.
        checker.check(Call::Feed(10), [Step::Ask { message_end: false }]).unwrap();
        assert!(checker.clone().check(Call::TlsStarted, []).is_err());
        checker.check(Call::Answer, []).unwrap();
    }
}
