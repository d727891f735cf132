//! Runs a transcript against a session: the component in the host's
//! runtime here, the core natively in the tests. Every driver turns what the
//! session does into the same [`Event`]s, so outputs compare byte for byte.

use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};

use super::parse::{Transcript, TranscriptConfig, TranscriptVerdict};
use crate::runtime::{self as rt, GuestSession, LoadedComponent};
/// One action, normalised across drivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Send(Vec<u8>),
    /// The envelope, rendered canonically.
    Begin(String),
    Data(Vec<u8>),
    End,
    Abort,
    StartTls,
    Close,
}

/// A session under test.
#[allow(async_fn_in_trait)]
pub trait Driver {
    async fn greeting(&mut self) -> Result<Vec<Event>>;
    async fn feed(&mut self, input: &[u8]) -> Result<Vec<Event>>;
    async fn complete(&mut self, verdict: &TranscriptVerdict) -> Result<Vec<Event>>;
}

/// What a run produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub output: Vec<u8>,
    pub envelopes: Vec<String>,
    pub messages: Vec<Vec<u8>>,
}

/// Feeds `chunks` in order, executing events as the transcript format says.
pub async fn run(driver: &mut impl Driver, t: &Transcript, chunks: &[Vec<u8>]) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    let mut verdicts = t.verdicts.iter();
    let mut current: Option<Vec<u8>> = None;
    let mut chunks = chunks.iter();
    let mut events = driver.greeting().await?;
    loop {
        let mut ended = false;
        let mut closed = false;
        for event in events {
            ensure!(!ended && !closed, "an action after message-end or close");
            match event {
                Event::Send(bytes) => outcome.output.extend_from_slice(&bytes),
                Event::Begin(envelope) => {
                    ensure!(current.is_none(), "message-begin inside a message");
                    current = Some(vec![]);
                    outcome.envelopes.push(envelope);
                }
                Event::Data(bytes) => current.as_mut().context("message-data outside a message")?.extend(bytes),
                Event::End => {
                    outcome.messages.push(current.take().context("message-end outside a message")?);
                    ended = true;
                }
                Event::Abort => {
                    current.take().context("message-abort outside a message")?;
                }
                Event::StartTls => bail!("start-tls is not part of the transcript corpus"),
                Event::Close => closed = true,
            }
        }
        if closed {
            return Ok(outcome);
        }
        events = if ended {
            let default = TranscriptVerdict::Accepted(format!("Q{}", outcome.messages.len()));
            driver.complete(verdicts.next().unwrap_or(&default)).await?
        } else {
            match chunks.next() {
                Some(chunk) => driver.feed(chunk).await?,
                None => return Ok(outcome),
            }
        };
    }
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

/// Extension names a transcript may `disable`.
pub const EXTENSIONS: [&str; 9] =
    ["pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8", "chunking", "binarymime", "dsn", "help"];

/// Fails on a `disable` entry that names no extension (a typo would
/// otherwise silently test the default).
pub fn check_config(config: &TranscriptConfig) -> Result<()> {
    for name in &config.disabled {
        ensure!(EXTENSIONS.contains(&name.as_str()), "unknown extension {name:?} in `disable`");
    }
    Ok(())
}

/// The built component, in the host's own runtime (the code path the
/// server uses).
pub struct ComponentDriver(GuestSession);

impl ComponentDriver {
    pub async fn new(component: &Arc<LoadedComponent>, config: &TranscriptConfig) -> Result<Self> {
        check_config(config)?;
        let mut ext = rt::Extensions::empty();
        for (name, flag) in [
            ("pipelining", rt::Extensions::PIPELINING),
            ("size", rt::Extensions::SIZE),
            ("8bitmime", rt::Extensions::EIGHTBITMIME),
            ("enhancedstatuscodes", rt::Extensions::ENHANCEDSTATUSCODES),
            ("smtputf8", rt::Extensions::SMTPUTF8),
            ("chunking", rt::Extensions::CHUNKING),
            ("binarymime", rt::Extensions::BINARYMIME),
            ("dsn", rt::Extensions::DSN),
            ("help", rt::Extensions::HELP),
        ] {
            if config.enabled(name) {
                ext |= flag;
            }
        }
        let guest = rt::GuestConfig {
            hostname: config.hostname.clone(),
            max_message_size: config.max_message_size,
            max_recipients: config.max_recipients,
            max_line_length: config.max_line_length,
            extensions: ext,
        };
        let peer = rt::PeerInfo { ip: config.peer_ip.clone(), port: 40000 };
        Ok(ComponentDriver(GuestSession::start(component, &guest, &peer).await?))
    }

    fn events(actions: Vec<rt::Action>) -> Vec<Event> {
        use rt::Action as A;
        actions
            .into_iter()
            .map(|a| match a {
                A::Send(b) => Event::Send(b),
                A::MessageBegin(e) => Event::Begin(render_envelope(
                    &e.helo,
                    &e.reverse_path,
                    e.recipients.iter().map(|r| (r.address.as_str(), r.notify.as_deref(), r.orcpt.as_deref())),
                    &e.protocol,
                    match e.body {
                        rt::BodyType::SevenBit => "SevenBit",
                        rt::BodyType::EightBitMime => "EightBitMime",
                        rt::BodyType::BinaryMime => "BinaryMime",
                    },
                    e.smtputf8,
                    e.declared_size,
                    e.dsn_return.map(|r| match r {
                        rt::DsnReturn::Full => "Full".to_string(),
                        rt::DsnReturn::Headers => "Headers".to_string(),
                    }),
                    e.dsn_envid.as_deref(),
                )),
                A::MessageData(b) => Event::Data(b),
                A::MessageEnd => Event::End,
                A::MessageAbort => Event::Abort,
                A::StartTls => Event::StartTls,
                A::Close => Event::Close,
            })
            .collect()
    }
}

impl Driver for ComponentDriver {
    async fn greeting(&mut self) -> Result<Vec<Event>> {
        Ok(Self::events(self.0.greeting().await?))
    }

    async fn feed(&mut self, input: &[u8]) -> Result<Vec<Event>> {
        Ok(Self::events(self.0.feed(input).await?))
    }

    async fn complete(&mut self, verdict: &TranscriptVerdict) -> Result<Vec<Event>> {
        let verdict = match verdict {
            TranscriptVerdict::Accepted(id) => rt::Verdict::Accepted(id.clone()),
            TranscriptVerdict::InsufficientStorage => rt::Verdict::InsufficientStorage,
            TranscriptVerdict::TemporaryFailure => rt::Verdict::TemporaryFailure,
            TranscriptVerdict::PermanentFailure => rt::Verdict::PermanentFailure,
        };
        Ok(Self::events(self.0.complete(&verdict).await?))
    }
}

#[allow(clippy::too_many_arguments)]
pub fn render_envelope<'a>(
    helo: &str,
    from: &str,
    rcpts: impl Iterator<Item = (&'a str, Option<&'a str>, Option<&'a str>)>,
    protocol: &str,
    body: &str,
    smtputf8: bool,
    size: Option<u64>,
    ret: Option<String>,
    envid: Option<&str>,
) -> String {
    let rcpts: Vec<String> = rcpts.map(|(a, n, o)| format!("<{a}> notify={n:?} orcpt={o:?}")).collect();
    format!(
        "helo={helo} from=<{from}> to=[{}] proto={protocol} body={body} smtputf8={smtputf8} size={size:?} ret={ret:?} envid={envid:?}",
        rcpts.join(", ")
    )
}
