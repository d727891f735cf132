//! Runs a transcript against a session: the component in the host's
//! runtime here, the core natively in the tests. Every driver speaks
//! smtp-core's types (the component's through `runtime::convert`), so
//! outcomes compare byte for byte and envelope for envelope, and every
//! call is checked by smtp-core's one contract checker.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail, ensure};
use smtp_core::contract::{Call, Checker, Step};
use smtp_core::{Action, Answer, Envelope, Question, TlsInfo};

use super::parse::{Handshake, Transcript, TranscriptAnswer, TranscriptConfig};
use crate::runtime::{self as rt, GuestSession, LoadedComponent};

/// A session under test.
#[allow(async_fn_in_trait)]
pub trait Driver {
    async fn greeting(&mut self) -> Result<Vec<Action>>;
    async fn feed(&mut self, input: &[u8]) -> Result<Vec<Action>>;
    async fn answer(&mut self, answer: &Answer) -> Result<Vec<Action>>;
    async fn tls_started(&mut self, tls: &TlsInfo) -> Result<Vec<Action>>;
}

/// What a run produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub output: Vec<u8>,
    pub envelopes: Vec<Envelope>,
    /// Contents of the messages that reached their end, whatever the answer.
    pub messages: Vec<Vec<u8>>,
}

/// One way of feeding a transcript's input: for each segment (see
/// [`Transcript::segments`]), the inputs of its `feed` calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedPlan {
    pub name: String,
    pub segments: Vec<Vec<Vec<u8>>>,
}

/// Feeds the segments in order (each the inputs of its `feed` calls, as in
/// a [`FeedPlan`]), executing actions, answering questions and completing
/// TLS handshakes as the transcript format says
/// (tests/transcripts/README.md).
///
/// Errors: a broken contract rule, a question other than the one the
/// transcript answers, answers left over, a `start-tls` where no `T:` line
/// follows, a `T:` line the session did not ask for or closed before, or
/// the driver's own failure.
pub async fn run(driver: &mut impl Driver, t: &Transcript, segments: &[Vec<Vec<u8>>]) -> Result<Outcome> {
    let mut handshakes = t.starttls_handshakes();
    let expected = t.starttls_handshakes().count() + 1;
    ensure!(segments.len() == expected, "a feeding plan of {} segments for a transcript of {expected}", segments.len());
    let session = &t.config.session;
    let mut checker = Checker::new(session.max_message_size, session.max_recipients);
    let mut outcome = Outcome::default();
    let mut answers = t.answers.iter();
    let mut current: Option<Vec<u8>> = None;
    let mut segments = segments.iter();
    let mut chunks = segments.next().context("checked")?.iter();
    let mut implicit_tls = t.implicit_tls();
    let mut greeted = false;
    let mut question = None;
    let mut start_tls = false;
    loop {
        let (call, actions) = if let Some(handshake) = implicit_tls.take() {
            // RFC 8314: the handshake comes before the first byte of SMTP.
            (Call::TlsStarted, driver.tls_started(&handshake.tls).await?)
        } else if !greeted {
            greeted = true;
            (Call::Greeting, driver.greeting().await?)
        } else if let Some(question) = question.take() {
            if question == Question::MessageEnd {
                outcome.messages.push(current.take().context("checked")?);
            }
            let answer = next_answer(&mut answers, &question, outcome.messages.len())?;
            (Call::Answer, driver.answer(&answer).await?)
        } else if std::mem::take(&mut start_tls) {
            let handshake = handshakes.next().context("the session emitted start-tls, but no T: line follows")?;
            // What is left of the segment is plaintext the client sent
            // behind its STARTTLS: the host discards what it read before
            // the handshake (RFC 3207 section 6), so it is never fed.
            chunks = segments.next().context("checked")?.iter();
            (Call::TlsStarted, driver.tls_started(&handshake.tls).await?)
        } else {
            match chunks.next() {
                Some(chunk) => (Call::Feed(chunk.len()), driver.feed(chunk).await?),
                None => match handshakes.next() {
                    Some(handshake) => bail!(
                        "line {}: a TLS handshake, but the session did not emit start-tls before it",
                        handshake.line
                    ),
                    None => return finished(outcome, answers.len(), None),
                },
            }
        };
        checker.check(call, actions.iter().map(Step::of)).map_err(|v| anyhow!("contract violation: {v}"))?;
        for action in actions {
            match action {
                Action::Send(bytes) => outcome.output.extend_from_slice(&bytes),
                Action::MessageBegin(envelope) => {
                    current = Some(vec![]);
                    outcome.envelopes.push(envelope);
                }
                Action::MessageData(bytes) => current.as_mut().context("checked")?.extend(bytes),
                Action::MessageAbort => current = None,
                Action::Ask(asked) => question = Some(asked),
                Action::StartTls => start_tls = true,
                Action::Close => return finished(outcome, answers.len(), handshakes.next()),
            }
        }
    }
}

/// The decision of the next `A:` line, which must name the question asked;
/// once they run out, accept: `message-end` with the queue id `Qn` (n
/// counting the messages that reached their end), the others with no text.
fn next_answer<'a>(
    answers: &mut impl Iterator<Item = &'a TranscriptAnswer>,
    question: &Question,
    ended: usize,
) -> Result<Answer> {
    Ok(match answers.next() {
        Some(given) => {
            ensure!(
                given.question == question.name(),
                "the session asked {} where the transcript answers {}",
                question.name(),
                given.question
            );
            given.answer.clone()
        }
        None if *question == Question::MessageEnd => Answer::Accept(Some(format!("Q{ended}"))),
        None => Answer::ACCEPT,
    })
}

/// An answer never asked for, or a handshake never reached, is a
/// transcript that does not test what it says.
fn finished(outcome: Outcome, answers_left: usize, handshake_left: Option<&Handshake>) -> Result<Outcome> {
    ensure!(answers_left == 0, "{answers_left} answers left over: the session asked fewer questions");
    if let Some(handshake) = handshake_left {
        bail!("line {}: a TLS handshake the session closed before", handshake.line);
    }
    Ok(outcome)
}

/// The ways a transcript's input is split into feed calls. All must give
/// the same outcome: the guest is split-invariant. Every plan splits within
/// a segment only (see [`Transcript::segments`]); with `every_split`, each
/// point inside a segment is also tried as a split into two calls.
pub fn feed_plans(t: &Transcript, every_split: bool) -> Vec<FeedPlan> {
    let segments = t.segments();
    let inputs: Vec<Vec<u8>> = segments.iter().map(|lines| lines.concat()).collect();
    // Each segment in one call (none for an empty one).
    let whole = || -> Vec<Vec<Vec<u8>>> {
        inputs.iter().map(|input| if input.is_empty() { vec![] } else { vec![input.clone()] }).collect()
    };
    let plan = |name: String, segments: Vec<Vec<Vec<u8>>>| FeedPlan { name, segments };
    let mut plans = vec![
        plan("per-line".to_string(), segments.clone()),
        plan("all-at-once".to_string(), whole()),
        plan("byte-by-byte".to_string(), inputs.iter().map(|input| input.iter().map(|b| vec![*b]).collect()).collect()),
    ];
    if every_split {
        // Offsets count from the start of the whole input.
        let mut offset = 0;
        for (n, input) in inputs.iter().enumerate() {
            for at in 1..input.len() {
                let mut split = whole();
                split[n] = vec![input[..at].to_vec(), input[at..].to_vec()];
                plans.push(plan(format!("split-at-{}", offset + at), split));
            }
            offset += input.len();
        }
    }
    plans
}

/// Checks an outcome against what the transcript expects.
pub fn check(t: &Transcript, outcome: &Outcome) -> Result<()> {
    if outcome.output != t.expected {
        bail!(
            "output differs\n--- expected\n{}\n--- got\n{}",
            String::from_utf8_lossy(&t.expected),
            String::from_utf8_lossy(&outcome.output)
        );
    }
    if outcome.messages != t.messages {
        bail!(
            "stored messages differ\n--- expected {:?}\n--- got {:?}",
            t.messages.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect::<Vec<_>>(),
            outcome.messages.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// The built component, in the host's own runtime (the code path the
/// server uses).
pub struct ComponentDriver(GuestSession);

impl ComponentDriver {
    pub async fn new(component: &Arc<LoadedComponent>, config: &TranscriptConfig) -> Result<Self> {
        let peer = rt::PeerInfo { ip: config.peer_ip.clone(), port: 40000 };
        Ok(ComponentDriver(GuestSession::start(component, &rt::guest_config(&config.session), &peer).await?))
    }
}

impl Driver for ComponentDriver {
    async fn greeting(&mut self) -> Result<Vec<Action>> {
        Ok(self.0.greeting().await?)
    }

    async fn feed(&mut self, input: &[u8]) -> Result<Vec<Action>> {
        Ok(self.0.feed(input).await?)
    }

    async fn answer(&mut self, answer: &Answer) -> Result<Vec<Action>> {
        Ok(self.0.answer(answer).await?)
    }

    async fn tls_started(&mut self, tls: &TlsInfo) -> Result<Vec<Action>> {
        Ok(self.0.tls_started(tls).await?)
    }
}
