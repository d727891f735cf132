//! Runs every transcript of tests/transcripts against the core natively,
//! feeding the client bytes one line per call, all at once, one byte per
//! call and (for small files) at every split point of two calls. Each way
//! must give exactly the listed server bytes and message contents.
//!
//! The format is the one of tests/transcripts/README.md; the component and
//! live-server drivers live in the workspace's tests crate. This runner only
//! keeps the core honest without wasmtime in the loop.

use std::path::{Path, PathBuf};

use smtp_core::{Action, Config, Extensions, PeerInfo, Session, Verdict};

struct Transcript {
    name: String,
    config: Config,
    peer: PeerInfo,
    /// Client bytes, one entry per `C` line.
    client: Vec<Vec<u8>>,
    expected: Vec<u8>,
    verdicts: Vec<Verdict>,
    messages: Vec<Vec<u8>>,
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/transcripts")
}

fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next() {
            Some(b'r') => b'\r',
            Some(b'n') => b'\n',
            Some(b't') => b'\t',
            Some(b'0') => 0,
            Some(b'\\') => b'\\',
            Some(b'x') => {
                let hex: String = bytes.by_ref().take(2).map(char::from).collect();
                u8::from_str_radix(&hex, 16).unwrap_or_else(|_| panic!("bad \\x escape in {text:?}"))
            }
            other => panic!("unknown escape {other:?} in {text:?}"),
        });
    }
    out
}

fn set_config(t: &mut Transcript, key: &str, value: &str) {
    match key {
        "hostname" => t.config.hostname = value.to_string(),
        "max-message-size" => t.config.max_message_size = value.parse().unwrap(),
        "max-recipients" => t.config.max_recipients = value.parse().unwrap(),
        "max-line-length" => t.config.max_line_length = value.parse().unwrap(),
        "peer-ip" => t.peer.ip = value.to_string(),
        "disable" => {
            let ext = &mut t.config.extensions;
            for name in value.split(',').map(|s| s.trim().to_ascii_lowercase()) {
                match name.as_str() {
                    "pipelining" => ext.pipelining = false,
                    "size" => ext.size = false,
                    "8bitmime" => ext.eightbitmime = false,
                    "enhancedstatuscodes" => ext.enhancedstatuscodes = false,
                    "smtputf8" => ext.smtputf8 = false,
                    "chunking" => ext.chunking = false,
                    "binarymime" => ext.binarymime = false,
                    "dsn" => ext.dsn = false,
                    "help" => ext.help = false,
                    other => panic!("{}: unknown extension {other:?}", t.name),
                }
            }
        }
        other => panic!("{}: unknown configuration key {other:?}", t.name),
    }
}

fn parse_verdict(text: &str) -> Verdict {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        ["accepted", id] => Verdict::Accepted(id.to_string()),
        ["insufficient-storage"] => Verdict::InsufficientStorage,
        ["temporary-failure"] => Verdict::TemporaryFailure,
        ["permanent-failure"] => Verdict::PermanentFailure,
        _ => panic!("unknown verdict {text:?}"),
    }
}

fn parse(name: &str, text: &str) -> Transcript {
    let mut t = Transcript {
        name: name.to_string(),
        config: Config {
            hostname: "smtpcell.test".to_string(),
            max_message_size: 10_240_000,
            max_recipients: 100,
            max_line_length: 1000,
            extensions: Extensions::DEFAULT,
        },
        peer: PeerInfo { ip: "192.0.2.1".to_string(), port: 40000 },
        client: Vec::new(),
        expected: Vec::new(),
        verdicts: Vec::new(),
        messages: Vec::new(),
    };
    let mut exchange_started = false;
    for (n, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", n + 1);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(assignment) = line.strip_prefix("! ") {
            assert!(!exchange_started, "{at}: configuration after the first C/S line");
            let (key, value) = assignment.split_once('=').unwrap_or_else(|| panic!("{at}: expected key = value"));
            set_config(&mut t, key.trim(), value.trim());
            continue;
        }
        assert!(line.len() == 2 || line.as_bytes().get(2) == Some(&b' '), "{at}: expected a tag and a space");
        let rest = line.get(3..).unwrap_or("");
        match &line[..2] {
            "C:" => {
                exchange_started = true;
                t.client.push([rest.as_bytes(), b"\r\n"].concat());
            }
            "C=" => {
                exchange_started = true;
                t.client.push(unescape(rest));
            }
            "S:" => {
                exchange_started = true;
                t.expected.extend_from_slice(rest.as_bytes());
                t.expected.extend_from_slice(b"\r\n");
            }
            "V:" => t.verdicts.push(parse_verdict(rest)),
            "M=" => t.messages.push(unescape(rest)),
            tag => panic!("{at}: unknown tag {tag:?}"),
        }
    }
    t
}

/// What a run produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    output: Vec<u8>,
    messages: Vec<Vec<u8>>,
}

/// A host that executes actions as the README describes, checking the
/// contract's ordering rules on the way.
struct Driver<'a> {
    transcript: &'a Transcript,
    session: Session,
    output: Vec<u8>,
    messages: Vec<Vec<u8>>,
    open: Option<Vec<u8>>,
    ended: usize,
    closed: bool,
}

impl Driver<'_> {
    fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            assert!(!self.closed, "{}: action after Close", self.transcript.name);
            match action {
                Action::Send(bytes) => self.output.extend_from_slice(&bytes),
                Action::MessageBegin(envelope) => {
                    assert!(self.open.is_none(), "{}: MessageBegin inside a message", self.transcript.name);
                    assert!(!envelope.recipients.is_empty(), "{}: message without recipients", self.transcript.name);
                    self.open = Some(Vec::new());
                }
                Action::MessageData(bytes) => {
                    assert!(!bytes.is_empty(), "{}: empty MessageData", self.transcript.name);
                    self.open.as_mut().expect("MessageData outside a message").extend_from_slice(&bytes);
                }
                Action::MessageEnd => {
                    let content = self.open.take().expect("MessageEnd outside a message");
                    self.messages.push(content);
                    let verdict = self.transcript.verdicts.get(self.ended).cloned();
                    self.ended += 1;
                    let verdict = verdict.unwrap_or_else(|| Verdict::Accepted(format!("Q{}", self.ended)));
                    let actions = self.session.complete(verdict);
                    self.execute(actions);
                }
                Action::MessageAbort => {
                    self.open.take().expect("MessageAbort outside a message");
                }
                Action::StartTls => panic!("{}: STARTTLS is not enabled in transcripts", self.transcript.name),
                Action::Close => self.closed = true,
            }
        }
    }
}

fn run(t: &Transcript, pieces: &[&[u8]]) -> Outcome {
    let mut driver = Driver {
        transcript: t,
        session: Session::new(t.config.clone(), t.peer.clone()),
        output: Vec::new(),
        messages: Vec::new(),
        open: None,
        ended: 0,
        closed: false,
    };
    let greeting = driver.session.greeting();
    driver.execute(greeting);
    for piece in pieces {
        if driver.closed {
            break;
        }
        let actions = driver.session.feed(piece);
        driver.execute(actions);
    }
    Outcome { output: driver.output, messages: driver.messages }
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace("\r\n", "\\r\\n\n")
}

fn check(t: &Transcript, how: &str, outcome: Outcome) -> Result<(), String> {
    if outcome.output != t.expected {
        return Err(format!(
            "{} ({how}): output differs\n--- expected\n{}--- got\n{}",
            t.name,
            show(&t.expected),
            show(&outcome.output)
        ));
    }
    if outcome.messages != t.messages {
        return Err(format!(
            "{} ({how}): messages differ\nexpected {:?}\ngot      {:?}",
            t.name,
            t.messages.iter().map(|m| show(m)).collect::<Vec<_>>(),
            outcome.messages.iter().map(|m| show(m)).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

fn run_every_way(t: &Transcript) -> Result<(), String> {
    let input = t.client.concat();
    let lines: Vec<&[u8]> = t.client.iter().map(Vec::as_slice).collect();
    check(t, "one call per C line", run(t, &lines))?;
    check(t, "all at once", run(t, &[&input]))?;
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    check(t, "byte by byte", run(t, &bytes))?;
    if input.len() < 2048 {
        for cut in 0..=input.len() {
            check(t, &format!("split at {cut}"), run(t, &[&input[..cut], &input[cut..]]))?;
        }
    }
    Ok(())
}

#[test]
fn every_transcript_passes_every_way() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/transcripts exists")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no transcripts found in {}", corpus_dir().display());
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(path).unwrap();
            run_every_way(&parse(&name, &text)).err()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} transcripts failed:\n\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n\n")
    );
}

#[test]
fn unescape_handles_every_escape() {
    assert_eq!(unescape(r"a\r\n\t\0\\\x41 "), b"a\r\n\t\0\\A ");
}
