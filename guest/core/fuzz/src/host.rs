//! A host for fuzzed sessions. It executes actions as the contract says
//! (every question answered at once with the next answer of the setup,
//! every `StartTls` completed at once) and panics on any broken rule:
//! - the contract's ordering rules and reply bound, as smtp-core's one
//!   statement of them ([`Checker`]) has them, on every call;
//! - replies that are not well-formed (`replies.rs`), and an answer whose
//!   reply does not say what the host decided;
//! - questions the configuration does not ask, AUTH offered where it may
//!   not be, and question or envelope text that could break a header or a
//!   log line;
//! - a message begun without a 354 or a BDAT command, or with an envelope
//!   the configuration does not allow;
//! - anything but nothing from a call a confused host makes out of turn.

use smtp_core::contract::{Call, Checker, Step};
use smtp_core::{
    Action, Answer, BodyType, Config, Envelope, LONGEST_COMMAND_LINE, PeerInfo, Question, Reason, SASL_RESPONSE_LINE,
    Session, TlsInfo,
};

use crate::reference;
use crate::replies::{self, Reply, Rules};

/// Everything that shapes a session besides its input.
#[derive(Clone, Debug)]
pub struct Setup {
    pub config: Config,
    /// Answers to successive questions, whatever they are; after the last,
    /// accept (with the queue id `Qn` for the n-th message that ends).
    pub answers: Vec<Answer>,
    /// Call `tls_started` before `greeting` (RFC 8314 implicit TLS).
    pub implicit_tls: bool,
    /// Call `answer` and `tls_started` after every feed, when nothing is
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
    /// Reached its end, and the host accepted it.
    Stored,
    /// Reached its end, and the host refused it.
    Refused,
    Aborted,
}

impl Fate {
    /// Whether the message reached its end (`ask(message-end)`).
    pub fn ended(self) -> bool {
        matches!(self, Fate::Stored | Fate::Refused)
    }
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

/// Everything the client, the policy and the mailbox can tell about a
/// session: the same for every split of the same input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub output: Vec<u8>,
    /// Every question asked, in order.
    pub questions: Vec<Question>,
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

/// The TLS session the host reports, implicit or after STARTTLS.
fn tls_info() -> TlsInfo {
    TlsInfo { version: "TLSv1.3".into(), cipher: "TLS_AES_256_GCM_SHA384".into() }
}

/// Runs a session on `pieces`, one `feed` each, checking the contract.
pub fn run(setup: &Setup, pieces: &[&[u8]]) -> (Observed, Timeline) {
    let config = &setup.config;
    let mut host = Host {
        setup,
        session: Session::new(config.clone(), PeerInfo { ip: "192.0.2.1".into(), port: 40000 }),
        checker: Checker::new(config.max_message_size, config.max_recipients),
        tls: false,
        at: 0,
        asked: 0,
        observed: Observed::default(),
        timeline: Timeline::default(),
    };
    if setup.implicit_tls {
        let actions = host.session.tls_started(tls_info());
        host.call(Call::TlsStarted, actions);
        host.tls = true;
    }
    let greeting = host.session.greeting();
    match greeting.first() {
        Some(Action::Ask(Question::Connect)) => assert!(config.questions.connect, "connect asked unasked"),
        Some(Action::Send(bytes)) => assert!(!config.questions.connect && bytes.starts_with(b"220 "), "{bytes:?}"),
        other => panic!("greeting began with {other:?}"),
    }
    host.call(Call::Greeting, greeting);
    for piece in pieces {
        if host.observed.closed {
            break;
        }
        host.at += piece.len();
        let actions = host.session.feed(piece);
        host.call(Call::Feed(piece.len()), actions);
        if setup.spurious_calls {
            // Out of turn, so not for the checker: the contract says
            // these do nothing.
            assert_eq!(host.session.answer(Answer::ACCEPT), [], "answer without a question");
            assert_eq!(host.session.tls_started(tls_info()), [], "tls_started without StartTls");
        }
    }
    host.at = usize::MAX;
    if !host.observed.closed {
        let actions = match setup.end {
            End::Silence => Vec::new(),
            End::Timeout => host.session.timeout(),
            End::Shutdown => host.session.shutdown(),
        };
        host.call(Call::NoInput, actions);
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
    checker: Checker,
    /// TLS is active (implicit, or `tls_started` after `StartTls`).
    tls: bool,
    /// Input bytes fed so far.
    at: usize,
    /// Questions answered so far (indexes the answers).
    asked: usize,
    observed: Observed,
    timeline: Timeline,
}

impl Host<'_> {
    /// Checks and executes the actions of `call`, then of every call they
    /// lead to (an answer, `tls_started`) until none is due.
    fn call(&mut self, mut call: Call, mut actions: Vec<Action>) {
        loop {
            if let Err(violation) = self.checker.check(call, actions.iter().map(Step::of)) {
                panic!("{violation}: {call:?} returned {actions:?}");
            }
            match self.execute(call, actions) {
                Some(next) => (call, actions) = next,
                None => return,
            }
        }
    }

    /// Executes one call's actions (already checked); returns the call a
    /// question or `StartTls` makes due, with what it returned.
    fn execute(&mut self, call: Call, actions: Vec<Action>) -> Option<(Call, Vec<Action>)> {
        let mut after_354 = false;
        for action in actions {
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
                Action::MessageAbort => {
                    self.finish(Fate::Aborted);
                    false
                }
                // The checker made sure each of these three is the last.
                Action::Ask(question) => return Some((Call::Answer, self.answer(call, question))),
                Action::StartTls => {
                    assert!(self.setup.config.extensions.starttls, "StartTls while STARTTLS is off");
                    assert!(!self.tls, "StartTls with TLS active");
                    self.timeline.tls.push(self.at);
                    self.tls = true;
                    return Some((Call::TlsStarted, self.session.tls_started(tls_info())));
                }
                Action::Close => {
                    // The contract aborts an open message before closing
                    // (wit/session.wit `message-abort`); the checker
                    // lets a close end it silently.
                    assert!(self.open_index().is_none(), "Close with a message open");
                    self.observed.closed = true;
                    false
                }
            };
        }
        None
    }

    /// Returns whether the bytes end with a 354 reply.
    fn send(&mut self, bytes: Vec<u8>) -> bool {
        let replies = replies::check(&bytes, self.rules());
        let ends_354 = replies.last().is_some_and(|reply| reply.code == 354);
        self.observed.output.extend_from_slice(&bytes);
        self.timeline.sends.push((self.at, bytes));
        ends_354
    }

    fn rules(&self) -> Rules<'static> {
        Rules { enhanced_codes: self.setup.config.extensions.enhancedstatuscodes, hostname: HOSTNAME }
    }

    fn begin(&mut self, envelope: Envelope, by_data: bool) {
        check_envelope(&envelope, &self.setup.config, self.tls);
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
        let i = self.open_index().expect("checked: message action inside a message");
        &mut self.observed.messages[i]
    }

    fn finish(&mut self, fate: Fate) {
        let i = self.open_index().expect("checked: message end or abort inside a message");
        let message = &mut self.observed.messages[i];
        message.fate = fate;
        if fate == Fate::Aborted {
            // Discarded, as a real host does.
            message.content.clear();
        }
        self.timeline.finished[i] = Some(self.at);
    }

    /// Answers `question`, asked by `call`, with the setup's next answer;
    /// returns what `answer` returned, whose first reply must say what the
    /// host decided.
    fn answer(&mut self, call: Call, question: Question) -> Vec<Action> {
        check_question(&question, call, &self.setup.config, self.tls);
        let answer = self.setup.answers.get(self.asked).cloned();
        self.asked += 1;
        let answer = answer.unwrap_or_else(|| match question {
            Question::MessageEnd => {
                let ended = self.observed.messages.iter().filter(|m| m.fate.ended()).count();
                Answer::Accept(Some(format!("Q{}", ended + 1)))
            }
            _ => Answer::ACCEPT,
        });
        if question == Question::MessageEnd {
            self.finish(if matches!(answer, Answer::Accept(_)) { Fate::Stored } else { Fate::Refused });
        }
        let actions = self.session.answer(answer.clone());
        let first = match actions.first() {
            Some(Action::Send(bytes)) => replies::check(bytes, self.rules()).swap_remove(0),
            other => panic!("{} answered with {other:?} before its reply", question.name()),
        };
        check_answer_reply(&question, &answer, &first, &actions, self.setup.config.max_auth_failures != 0);
        self.observed.questions.push(question);
        actions
    }
}

/// The first reply after `answer`: the step's positive code for an
/// accept; for a refusal a 4xx or 5xx of the class the refusal asks for
/// (wit/session.wit `reason`: greylisting is always temporary, a missing
/// AUTH or TLS always permanent), of printable ASCII only however odd the
/// host's text, and at connect the greeting's 421 (then close) or 554; a
/// refusal that disconnects is 421, then close, at any step. With a limit
/// on failed AUTH commands (`auth_limited`), a refused AUTH may be the one
/// that reaches it: 421 4.7.0, then close.
fn check_answer_reply(question: &Question, answer: &Answer, reply: &Reply, actions: &[Action], auth_limited: bool) {
    let refusal = match answer {
        Answer::Accept(_) => {
            let code = match question {
                Question::Connect => 220,
                Question::Auth(_) => 235,
                _ => 250,
            };
            assert_eq!(reply.code, code, "{} accepted with {reply:?}", question.name());
            return;
        }
        Answer::Refuse(refusal) => refusal,
    };
    let too_many =
        reply.code == 421 && reply.lines.iter().any(|l| l.ends_with("Too many failed authentication attempts"));
    if too_many {
        assert!(auth_limited && matches!(question, Question::Auth(_)), "{} refused with {reply:?}", question.name());
        assert_eq!(actions.get(1), Some(&Action::Close), "AUTH limit without close: {actions:?}");
        return;
    }
    if refusal.disconnect {
        assert_eq!(reply.code, 421, "{} refused with disconnect: {reply:?}", question.name());
        assert_eq!(actions.get(1), Some(&Action::Close), "disconnect without close: {actions:?}");
        return;
    }
    let class = match refusal.reason {
        Reason::Greylisted => 4,
        Reason::AuthRequired | Reason::EncryptionRequired => 5,
        _ if refusal.permanent => 5,
        _ => 4,
    };
    assert_eq!(reply.code / 100, class, "{} refused ({refusal:?}) with {reply:?}", question.name());
    let printable = reply.lines.iter().all(|line| line.bytes().all(|b| (b' '..=b'~').contains(&b)));
    assert!(printable, "refusal reply {reply:?} not printable ASCII");
    if *question == Question::Connect {
        assert_eq!(reply.code, if class == 4 { 421 } else { 554 }, "connect refused with {reply:?}");
        // 421 closes; after 554 the session stays to serve QUIT.
        assert_eq!(actions.get(1) == Some(&Action::Close), class == 4, "connect refused: {actions:?}");
    }
}

/// A string that may become part of a header field or a log line: no CR,
/// LF or NUL, and no longer than the protocol line it came from.
fn check_text(text: &str, max: usize) {
    assert!(!text.contains(['\r', '\n', '\0']), "text {text:?} could break a header or a log line");
    assert!(text.len() <= max, "{} octets of text from a line of at most {max}", text.len());
}

/// A question is asked only at a step the configuration names (AUTH only
/// where offered; the end of a message is the checker's), connect only by
/// `greeting`, and carries clean text.
fn check_question(question: &Question, call: Call, config: &Config, tls: bool) {
    let asks = &config.questions;
    match question {
        Question::Connect => assert!(asks.connect && call == Call::Greeting, "connect asked by {call:?}"),
        Question::Helo(hello) => {
            assert!(asks.helo, "HELO asked unasked");
            check_text(&hello.domain, LONGEST_COMMAND_LINE);
        }
        Question::Mail(mail) => {
            assert!(asks.mail, "MAIL asked unasked");
            for text in [&mail.helo, &mail.reverse_path].into_iter().chain(&mail.dsn_envid) {
                check_text(text, LONGEST_COMMAND_LINE);
            }
        }
        Question::Rcpt(rcpt) => {
            assert!(asks.rcpt, "RCPT asked unasked");
            assert!(rcpt.accepted < config.max_recipients, "RCPT asked past the recipient limit");
            let recipient = &rcpt.recipient;
            let texts = [&rcpt.reverse_path, &recipient.address].into_iter().chain(&recipient.notify);
            for text in texts.chain(&recipient.orcpt) {
                check_text(text, LONGEST_COMMAND_LINE);
            }
        }
        Question::Auth(credentials) => {
            let offered = &config.auth_mechanisms;
            assert!(tls || config.auth_without_tls, "AUTH without TLS");
            let mechanism = credentials.mechanism.as_str();
            assert!(mechanism == "PLAIN" && offered.plain || mechanism == "LOGIN" && offered.login, "{mechanism}");
            check_text(&credentials.authorization_id, SASL_RESPONSE_LINE);
            check_text(&credentials.authentication_id, SASL_RESPONSE_LINE);
            // The secret may hold anything but NUL (RFC 4616).
            assert!(!credentials.secret.contains('\0') && credentials.secret.len() <= SASL_RESPONSE_LINE);
        }
        Question::MessageEnd => {}
    }
}

/// The envelope promises no CR, LF or NUL anywhere (the host writes it
/// into trace headers; the checker counts its recipients), only what the enabled extensions permit, and the session's TLS and
/// AUTH state, in its fields and in the RFC 3848 protocol name.
fn check_envelope(envelope: &Envelope, config: &Config, tls: bool) {
    let ext = &config.extensions;
    let mut texts = vec![&envelope.helo, &envelope.reverse_path, &envelope.protocol];
    texts.extend(&envelope.dsn_envid);
    texts.extend(&envelope.authenticated);
    for recipient in &envelope.recipients {
        texts.push(&recipient.address);
        texts.extend(&recipient.notify);
        texts.extend(&recipient.orcpt);
    }
    for text in texts {
        check_text(text, LONGEST_COMMAND_LINE);
    }
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
    assert_eq!(envelope.tls, tls.then(tls_info), "the envelope's TLS is not the session's");
    let auth = envelope.authenticated.is_some();
    assert!(!auth || config.auth_mechanisms.any(), "authenticated without AUTH offered");
    // HELO without SMTPUTF8 is plain SMTP, whatever else (RFC 3848 has no
    // name for it over TLS or AUTH); otherwise the name says all three.
    if envelope.protocol != "SMTP" || envelope.smtputf8 {
        let base = if envelope.smtputf8 { "UTF8SMTP" } else { "ESMTP" };
        let expected = format!("{base}{}{}", if tls { "S" } else { "" }, if auth { "A" } else { "" });
        assert_eq!(envelope.protocol, expected, "protocol name");
    }
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
            assert!(message.fate.ended(), "the reference found an end");
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
            assert!(!message.fate.ended(), "ended where the reference found no end");
            if message.fate == Fate::Aborted {
                assert_eq!(timeline.finished[i], Some(usize::MAX), "aborted before the input ran out");
            }
            let replied = timeline.sends.iter().any(|(at, _)| *at > begun && *at != usize::MAX);
            assert!(!replied, "a reply while DATA content was still being read");
        }
    }
}
