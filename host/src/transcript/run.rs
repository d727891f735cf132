//! Runs a transcript against a session: the component in the host's
//! runtime here, the core natively in the tests. Every driver speaks
//! smtp-core's types (the component's through `runtime::convert`), so
//! outcomes compare byte for byte and envelope for envelope, and every
//! call is checked by smtp-core's one contract checker.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail, ensure};
use smtp_core::contract::{Call, Checker, Step};
use smtp_core::{Action, Answer, Envelope, Question};

use super::parse::{Transcript, TranscriptConfig};
use crate::runtime::{self as rt, GuestSession, LoadedComponent};

/// A session under test.
#[allow(async_fn_in_trait)]
pub trait Driver {
    async fn greeting(&mut self) -> Result<Vec<Action>>;
    async fn feed(&mut self, input: &[u8]) -> Result<Vec<Action>>;
    async fn answer(&mut self, answer: &Answer) -> Result<Vec<Action>>;
}

/// What a run produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub output: Vec<u8>,
    pub envelopes: Vec<Envelope>,
    /// Contents of the messages that reached their end, whatever the answer.
    pub messages: Vec<Vec<u8>>,
}

/// Feeds `chunks` in order, executing actions and answering questions as
/// the transcript format says (tests/transcripts/README.md).
///
/// Errors: a broken contract rule, a question other than the one the
/// transcript answers, answers left over, or the driver's own failure.
pub async fn run(driver: &mut impl Driver, t: &Transcript, chunks: &[Vec<u8>]) -> Result<Outcome> {
    let session = &t.config.session;
    let mut checker = Checker::new(session.max_message_size, session.max_recipients);
    let mut outcome = Outcome::default();
    let mut answers = t.answers.iter();
    let mut current: Option<Vec<u8>> = None;
    let mut chunks = chunks.iter();
    let mut call = Call::Greeting;
    let mut actions = driver.greeting().await?;
    loop {
        checker.check(call, actions.iter().map(Step::of)).map_err(|v| anyhow!("contract violation: {v}"))?;
        let mut question = None;
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
                Action::StartTls => bail!("start-tls is not part of the transcript corpus"),
                Action::Close => return finished(outcome, answers.len()),
            }
        }
        (call, actions) = match question {
            Some(question) => {
                if question == Question::MessageEnd {
                    outcome.messages.push(current.take().context("checked")?);
                }
                let answer = match answers.next() {
                    Some(given) => {
                        ensure!(
                            given.question == question.name(),
                            "the session asked {} where the transcript answers {}",
                            question.name(),
                            given.question
                        );
                        given.answer.clone()
                    }
                    None if question == Question::MessageEnd => {
                        Answer::Accept(Some(format!("Q{}", outcome.messages.len())))
                    }
                    None => Answer::ACCEPT,
                };
                (Call::Answer, driver.answer(&answer).await?)
            }
            None => match chunks.next() {
                Some(chunk) => (Call::Feed(chunk.len()), driver.feed(chunk).await?),
                None => return finished(outcome, answers.len()),
            },
        };
    }
}

/// An answer never asked for is a transcript that does not test what it
/// says.
fn finished(outcome: Outcome, answers_left: usize) -> Result<Outcome> {
    ensure!(answers_left == 0, "{answers_left} answers left over: the session asked fewer questions");
    Ok(outcome)
}

/// The ways a transcript's input is split into feed calls. All must give the
/// same outcome: the guest is split-invariant.
pub fn feed_plans(t: &Transcript, every_split: bool) -> Vec<(String, Vec<Vec<u8>>)> {
    let input = t.input();
    let mut plans = vec![
        ("per-line".to_string(), t.client.clone()),
        ("all-at-once".to_string(), vec![input.clone()]),
        ("byte-by-byte".to_string(), input.iter().map(|b| vec![*b]).collect()),
    ];
    if every_split {
        for at in 1..input.len() {
            plans.push((format!("split-at-{at}"), vec![input[..at].to_vec(), input[at..].to_vec()]));
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
}
