//! A host for fuzzed sessions. It executes actions as the contract says
//! (every `MessageEnd` answered at once with the next verdict, every
//! `StartTls` completed at once) and panics on any broken contract rule:
//! replies that are not well-formed, content outside a message, a message
//! begun without recipients or without a 354 or a BDAT command, envelope
//! text that could break a trace header, actions after `Close`, replies
//! beyond the contract's bound (`smtp_core::max_reply_octets`).

use smtp_core::{Action, BodyType, Config, Envelope, PeerInfo, Session, Verdict, max_reply_octets};

use crate::reference;
use crate::replies::{self, Rules};

/// Everything that shapes a session besides its input.
#[derive(Clone, Debug)]
pub struct Setup {
    pub config: Config,
    /// Answers to successive `MessageEnd`s; `accepted Qn` after the last.
    pub verdicts: Vec<Verdict>,
    /// Call `complete` and `tls_started` after every feed, when nothing is
    /// pending: a confused host must not change anything.
    pub spurious_calls: bool,
    /// What happens after the last input byte.
    pub end: End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The client just stops.
    Silence,
    Timeout,
    Shutdown,
}

/// What became of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Still being received when the input ran out.
    Open,
    Ended,
    Aborted,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub envelope: Envelope,
    /// Begun by DATA (after a 354) rather than by BDAT.
    pub by_data: bool,
    /// Content received; none once aborted.
    pub content: Vec<u8>,
    pub fate: Fate,
}

/// Everything the client and the mailbox can tell about a session: the same
/// for every split of the same input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub output: Vec<u8>,
    pub messages: Vec<Message>,
    pub closed: bool,
}

/// Where things happened, counted in input bytes fed so far: exact when
/// the input was fed one byte per call. Actions after the input (timeout,
/// shutdown) are at `usize::MAX`.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    /// Per message: where it began and where it ended or was aborted.
    pub begun: Vec<usize>,
    pub finished: Vec<Option<usize>>,
    /// Every `Send`, with where it happened.
    pub sends: Vec<(usize, Vec<u8>)>,
    /// Where each `StartTls` happened.
    pub tls: Vec<usize>,
}

/// The hostname every fuzzed session is configured with.
pub const HOSTNAME: &str = "smtpcell.test";

/// Runs a session on `pieces`, one `feed` each, checking the contract.
pub fn run(setup: &Setup, pieces: &[&[u8]]) -> (Observed, Timeline) {
    let mut host = Host {
        setup,
        session: Session::new(setup.config.clone(), PeerInfo { ip: "192.0.2.1".into(), port: 40000 }),
        at: 0,
        ended: 0,
        input: 0,
        observed: Observed::default(),
        timeline: Timeline::default(),
    };
    let greeting = host.session.greeting();
    host.execute(greeting);
    for piece in pieces {
        if host.observed.closed {
            break;
        }
        host.at += piece.len();
        host.input = piece.len();
        let actions = host.session.feed(piece);
        host.execute(actions);
        if setup.spurious_calls {
            assert_eq!(host.session.complete(Verdict::Accepted("spurious".into())), [], "complete without MessageEnd");
            assert_eq!(host.session.tls_started(), [], "tls_started without StartTls");
        }
    }
    host.at = usize::MAX;
    host.input = 0;
    if !host.observed.closed {
        let actions = match setup.end {
            End::Silence => Vec::new(),
            End::Timeout => host.session.timeout(),
            End::Shutdown => host.session.shutdown(),
        };
        host.execute(actions);
    }
    if host.observed.closed {
        assert_eq!(host.session.feed(b"NOOP\r\n"), [], "a closed session answered");
        assert_eq!(host.session.timeout(), [], "a closed session timed out");
    }
    (host.observed, host.timeline)
}

struct Host<'a> {
    setup: &'a Setup,
    session: Session,
    /// Input bytes fed so far.
    at: usize,
    /// Messages ended so far (indexes the verdicts).
    ended: usize,
    /// Input of the current call: what its replies are bounded by (a
    /// `complete` is charged with the `feed` that ended the message).
    input: usize,
    observed: Observed,
    timeline: Timeline,
}

impl Host<'_> {
    fn execute(&mut self, actions: Vec<Action>) {
        let mut queue = actions;
        while !queue.is_empty() {
            let sent: usize = queue.iter().map(|a| if let Action::Send(bytes) = a { bytes.len() } else { 0 }).sum();
            assert!(sent <= max_reply_octets(self.input), "{sent} octets of replies for {} of input", self.input);
            let mut follow_up = Vec::new();
            let count = queue.len();
            let mut after_354 = false;
            for (i, action) in queue.into_iter().enumerate() {
                assert!(!self.observed.closed, "{action:?} after Close");
                let is_last = i + 1 == count;
                after_354 = match action {
                    Action::Send(bytes) => self.send(bytes),
                    Action::MessageBegin(envelope) => {
                        self.begin(envelope, after_354);
                        false
                    }
                    Action::MessageData(bytes) => {
                        assert!(!bytes.is_empty(), "empty MessageData");
                        self.open().content.extend_from_slice(&bytes);
                        false
                    }
                    Action::MessageEnd => {
                        assert!(is_last, "actions after MessageEnd, before the verdict");
                        self.finish(Fate::Ended);
                        follow_up = self.complete();
                        false
                    }
                    Action::MessageAbort => {
                        self.finish(Fate::Aborted);
                        false
                    }
                    Action::StartTls => {
                        assert!(self.setup.config.extensions.starttls, "StartTls while STARTTLS is off");
                        assert!(is_last, "actions after StartTls, before the handshake");
                        assert_eq!(self.session.tls_started(), [], "tls_started answered");
                        self.timeline.tls.push(self.at);
                        false
                    }
                    Action::Close => {
                        assert!(is_last, "actions after Close");
                        assert!(self.open_index().is_none(), "Close with a message open");
                        self.observed.closed = true;
                        false
                    }
                };
            }
            queue = follow_up;
        }
    }

    /// Returns whether the bytes end with a 354 reply.
    fn send(&mut self, bytes: Vec<u8>) -> bool {
        let rules = Rules { enhanced_codes: self.setup.config.extensions.enhancedstatuscodes, hostname: HOSTNAME };
        let replies = replies::check(&bytes, rules);
        let ends_354 = replies.last().is_some_and(|reply| reply.code == 354);
        self.observed.output.extend_from_slice(&bytes);
        self.timeline.sends.push((self.at, bytes));
        ends_354
    }

    fn begin(&mut self, envelope: Envelope, by_data: bool) {
        assert!(self.open_index().is_none(), "MessageBegin inside a message");
        check_envelope(&envelope, &self.setup.config);
        if by_data {
            assert_ne!(envelope.body, BodyType::BinaryMime, "BINARYMIME content through DATA");
        }
        self.observed.messages.push(Message { envelope, by_data, content: Vec::new(), fate: Fate::Open });
        self.timeline.begun.push(self.at);
        self.timeline.finished.push(None);
    }

    fn open_index(&self) -> Option<usize> {
        self.observed.messages.iter().position(|m| m.fate == Fate::Open)
    }

    fn open(&mut self) -> &mut Message {
        let i = self.open_index().expect("message action outside a message");
        &mut self.observed.messages[i]
    }

    fn finish(&mut self, fate: Fate) {
        let i = self.open_index().expect("message end or abort outside a message");
        let message = &mut self.observed.messages[i];
        message.fate = fate;
        if fate == Fate::Aborted {
            // Discarded, as a real host does: how much of a failed message
            // was handed over before the failure depends on the split.
            message.content.clear();
        }
        self.timeline.finished[i] = Some(self.at);
    }

    /// Answers a `MessageEnd`; the reply must come first and match.
    fn complete(&mut self) -> Vec<Action> {
        let verdict = self.setup.verdicts.get(self.ended).cloned();
        self.ended += 1;
        let verdict = verdict.unwrap_or_else(|| Verdict::Accepted(format!("Q{}", self.ended)));
        let code = match verdict {
            Verdict::Accepted(_) => "250 ",
            Verdict::InsufficientStorage => "452 ",
            Verdict::TemporaryFailure => "451 ",
            Verdict::PermanentFailure => "554 ",
        };
        let actions = self.session.complete(verdict);
        match actions.first() {
            Some(Action::Send(bytes)) => assert!(bytes.starts_with(code.as_bytes()), "verdict answered with {bytes:?}"),
            other => panic!("complete began with {other:?} instead of the final reply"),
        }
        actions
    }
}

/// The envelope promises no CR, LF or NUL anywhere (the host writes it
/// into trace headers), at least one recipient and no more than allowed,
/// and only what the enabled extensions permit.
fn check_envelope(envelope: &Envelope, config: &Config) {
    let ext = &config.extensions;
    let mut texts = vec![&envelope.helo, &envelope.reverse_path, &envelope.protocol];
    texts.extend(&envelope.dsn_envid);
    for recipient in &envelope.recipients {
        texts.push(&recipient.address);
        texts.extend(&recipient.notify);
        texts.extend(&recipient.orcpt);
    }
    for text in &texts {
        assert!(!text.contains(['\r', '\n', '\0']), "envelope text {text:?} could break a header");
    }
    assert!(!envelope.recipients.is_empty(), "message without recipients");
    assert!(envelope.recipients.len() <= config.max_recipients as usize, "more recipients than allowed");
    let ascii = envelope.reverse_path.is_ascii() && envelope.recipients.iter().all(|r| r.address.is_ascii());
    assert!(ascii || envelope.smtputf8, "UTF-8 address without SMTPUTF8");
    assert!(ext.smtputf8 || !envelope.smtputf8, "SMTPUTF8 while disabled");
    assert!(envelope.declared_size.is_none_or(|size| ext.size && size <= config.max_message_size));
    match envelope.body {
        BodyType::SevenBit => {}
        BodyType::EightBitMime => assert!(ext.eightbitmime, "BODY=8BITMIME while disabled"),
        BodyType::BinaryMime => assert!(ext.binarymime && ext.chunking, "BODY=BINARYMIME while disabled"),
    }
    let dsn = envelope.dsn_return.is_some()
        || envelope.dsn_envid.is_some()
        || envelope.recipients.iter().any(|r| r.notify.is_some() || r.orcpt.is_some());
    assert!(ext.dsn || !dsn, "DSN parameters while disabled");
    assert!(["SMTP", "ESMTP", "ESMTPS", "UTF8SMTP", "UTF8SMTPS"].contains(&envelope.protocol.as_str()));
}

/// Checks what only a one-byte-per-call run can show, given its result:
/// each message began right after the line of a DATA or BDAT command, and
/// each DATA message ended exactly where, and with exactly the content,
/// the reference decoder finds for the input behind its DATA line.
pub fn check_positions(setup: &Setup, input: &[u8], observed: &Observed, timeline: &Timeline) {
    for (i, message) in observed.messages.iter().enumerate() {
        let begun = timeline.begun[i];
        let line = command_line_before(input, begun);
        if message.by_data {
            assert!(line.trim_ascii_end().eq_ignore_ascii_case(b"DATA"), "354 after {line:?}");
            check_data(setup, &input[begun..], message, begun, timeline, i);
        } else {
            assert!(line.len() > 5 && line[..5].eq_ignore_ascii_case(b"BDAT "), "message begun by {line:?}");
        }
    }
}

/// The command line (without CR LF) that ends just before `at`.
fn command_line_before(input: &[u8], at: usize) -> &[u8] {
    let before = &input[..at];
    let line = before.strip_suffix(b"\r\n").unwrap_or_else(|| panic!("message begun mid-line at {at}"));
    let start = line.iter().rposition(|&b| b == b'\n').map_or(0, |lf| lf + 1);
    &line[start..]
}

fn check_data(setup: &Setup, content: &[u8], message: &Message, begun: usize, timeline: &Timeline, i: usize) {
    let config = &setup.config;
    let max_line = config.max_line_length.max(Config::MIN_LINE_LENGTH);
    let expected = reference::decode(content, max_line, config.max_message_size);
    if expected.fault.is_none() && message.fate != Fate::Aborted {
        assert_eq!(message.content, expected.content, "DATA content differs from the reference un-stuffing");
    }
    let sent_at = |at: usize| timeline.sends.iter().find(|(when, _)| *when == at).map(|(_, bytes)| bytes.as_slice());
    match (expected.end, expected.fault) {
        (Some(len), None) => {
            assert_eq!(message.fate, Fate::Ended, "the reference found an end");
            assert_eq!(timeline.finished[i], Some(begun + len), "ended elsewhere than the reference");
        }
        (Some(len), Some(fault)) => {
            assert_eq!(message.fate, Fate::Aborted, "the reference found {fault:?}");
            assert_eq!(timeline.finished[i], Some(begun + len), "a failed message aborted before its end");
            let reply = smtp_core::fuzzing::fault_reply(fault);
            let sent = sent_at(begun + len).unwrap_or_else(|| panic!("no reply at the end of a failed message"));
            let expected_reply = if config.extensions.enhancedstatuscodes { &reply[..] } else { &reply[..4] };
            assert!(sent.starts_with(expected_reply), "{fault:?} answered with {sent:?}");
        }
        (None, _) => {
            // Without an end the client is still sending content: the
            // message stays open, failed or not, until the input runs out
            // (a timeout or shutdown then aborts it).
            assert_ne!(message.fate, Fate::Ended, "ended where the reference found no end");
            if message.fate == Fate::Aborted {
                assert_eq!(timeline.finished[i], Some(usize::MAX), "aborted before the input ran out");
            }
            let replied = timeline.sends.iter().any(|(at, _)| *at > begun && *at != usize::MAX);
            assert!(!replied, "a reply while DATA content was still being read");
        }
    }
}
