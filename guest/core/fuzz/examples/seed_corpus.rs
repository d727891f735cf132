//! Writes the seed corpus (`seeds/<target>/`) from the transcript corpus
//! (`tests/transcripts`), so that fuzzing starts from every protocol path
//! the transcripts reach instead of from nothing:
//! - `session`: each transcript's client bytes behind a header with its
//!   configuration and answers;
//! - `command`: every distinct line the clients send;
//! - `dot`: what follows each DATA command line;
//! - `bdat`: the chunks of each transcript that uses BDAT;
//! - `session` again: the TLS paths no transcript can take ([`TLS_SEEDS`]).
//!
//! Run with `just fuzz-seeds` after changing the transcripts or an input
//! layout (`src/inputs.rs`); the output is deterministic.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use smtp_core::{Answer, Questions, Reason, Refusal};
use smtp_core_fuzz::cuts::seed_of;
use smtp_core_fuzz::inputs::{self, Chunk};

/// libFuzzer's `-max_len` in the justfile: longer seeds would be cut.
const MAX_SEED: usize = 4096;

/// What a seed needs from one transcript.
#[derive(Default)]
struct Transcript {
    settings: Vec<(String, String)>,
    client: Vec<u8>,
    answers: Vec<Answer>,
}

/// Sessions over TLS, which transcripts cannot start: STARTTLS then AUTH
/// PLAIN and SMTPUTF8 with every question asked, and implicit TLS with
/// AUTH LOGIN accepted under a host-named identity, then BDAT. They lead
/// to the envelopes with `S` and `A` in their protocol name.
const TLS_SEEDS: [(&str, [u8; inputs::SESSION_HEADER], &[u8]); 2] = [
    (
        "tls-starttls-auth-plain",
        // STARTTLS offered; every question asked; AUTH PLAIN.
        [0x40, 0, 0xf0, 0x01, 0],
        b"EHLO c\r\nSTARTTLS\r\nEHLO c\r\nAUTH PLAIN YQBiAGM=\r\nMAIL FROM:<a@b> SMTPUTF8\r\nRCPT TO:<c@d>\r\n\
          DATA\r\nx\r\n.\r\nQUIT\r\n",
    ),
    (
        "tls-implicit-auth-login",
        // Implicit TLS; AUTH LOGIN; one answer byte: accept with text 1.
        [0, 0, 0x08, 0x02 | 1 << 3, 0],
        b"\x02EHLO c\r\nAUTH LOGIN\r\nYg==\r\nYw==\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 1 LAST\r\nxQUIT\r\n",
    ),
];

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let transcripts = root.join("../../../tests/transcripts");
    let mut seeds: BTreeMap<(&str, String), Vec<u8>> = BTreeMap::new();
    let mut files: Vec<PathBuf> = fs::read_dir(&transcripts)
        .expect("tests/transcripts")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_stem().and_then(|s| s.to_str()).expect("file name").to_string();
        let t = parse(&fs::read_to_string(&path).expect("transcript"));
        let answers: Vec<u8> = t.answers.iter().take(inputs::MAX_ANSWERS).map(inputs::encode_answer).collect();
        seeds.insert(("session", name.clone()), [&session_header(&t, answers.len())[..], &answers, &t.client].concat());
        for line in t.client.split(|&b| b == b'\n').filter(|line| !line.is_empty() && line.len() < 1024) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            seeds.insert(("command", format!("{:016x}", seed_of(line))), line.to_vec());
        }
        for (n, content) in after_data_lines(&t.client).into_iter().enumerate() {
            seeds.insert(("dot", format!("{name}-{n}")), [&dot_header(&t)[..], content].concat());
        }
        let chunks = chunks(&t.client);
        if !chunks.is_empty() {
            let binarymime = t.client.windows(15).any(|w| w.eq_ignore_ascii_case(b"BODY=BINARYMIME"));
            let size = match max_size(&t) {
                None => 0,
                Some(size) if size <= 16 => 2,
                Some(_) => 3,
            };
            seeds.insert(("bdat", name), inputs::encode_bdat(size, u8::from(binarymime), &chunks));
        }
    }
    for (name, header, client) in TLS_SEEDS {
        seeds.insert(("session", name.to_string()), [&header[..], client].concat());
    }
    for target in ["command", "dot", "bdat", "session"] {
        let dir = root.join("seeds").join(target);
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("remove old seeds");
        }
        fs::create_dir_all(&dir).expect("create seed directory");
    }
    for ((target, name), mut bytes) in seeds {
        bytes.truncate(MAX_SEED);
        fs::write(root.join("seeds").join(target).join(name), bytes).expect("write seed");
    }
}

fn parse(text: &str) -> Transcript {
    let mut t = Transcript::default();
    for line in text.lines() {
        if let Some((key, value)) = line.strip_prefix("! ").and_then(|setting| setting.split_once('=')) {
            t.settings.push((key.trim().to_string(), value.trim().to_string()));
        } else if let Some(text) = line.strip_prefix("C: ") {
            t.client.extend_from_slice(text.as_bytes());
            t.client.extend_from_slice(b"\r\n");
        } else if let Some(text) = line.strip_prefix("C= ") {
            t.client.extend_from_slice(&unescape(text));
        } else if let Some(answer) = line.strip_prefix("A: ") {
            t.answers.push(parse_answer(answer));
        }
    }
    t
}

/// `QUESTION accept [TEXT]` or `QUESTION refuse REASON permanent|temporary
/// [TEXT]` (tests/transcripts/README.md); the question is not encoded,
/// since answers are taken in order whatever was asked.
fn parse_answer(line: &str) -> Answer {
    let (_question, answer) = line.split_once(' ').expect("an answer after the question");
    let (verb, rest) = answer.split_once(' ').map_or((answer, None), |(verb, rest)| (verb, Some(rest)));
    match verb {
        "accept" => Answer::Accept(rest.map(String::from)),
        "refuse" => {
            let mut words = rest.expect("a reason").splitn(3, ' ');
            let reason = Reason::from_name(words.next().expect("a reason")).expect("a known reason");
            let duration = words.next();
            let (permanent, disconnect) = (duration == Some("permanent"), duration == Some("disconnect"));
            Answer::Refuse(Refusal { reason, permanent, text: words.next().map(String::from), disconnect })
        }
        other => panic!("answer {other:?}"),
    }
}

/// The escapes of tests/transcripts/README.md.
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
            Some(b'x') => {
                let hex: String = bytes.by_ref().take(2).map(char::from).collect();
                u8::from_str_radix(&hex, 16).expect("\\x escape")
            }
            Some(other) => other,
            None => b'\\',
        });
    }
    out
}

fn setting<'a>(t: &'a Transcript, key: &str) -> Option<&'a str> {
    t.settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn max_size(t: &Transcript) -> Option<u64> {
    setting(t, "max-message-size").map(|v| v.parse().expect("max-message-size"))
}

/// The nearest configuration the session header can express, announcing
/// `answers` answer bytes.
fn session_header(t: &Transcript, answers: usize) -> [u8; inputs::SESSION_HEADER] {
    let size = match max_size(t) {
        None => 0,
        Some(size) => inputs::SIZES.iter().position(|&s| s >= size).unwrap_or(0) as u8,
    };
    let recipients = setting(t, "max-recipients")
        .map_or(0, |v| inputs::RECIPIENTS.iter().position(|&r| r.to_string() == v).unwrap_or(0) as u8);
    let line = setting(t, "max-line-length")
        .map_or(0, |v| inputs::LINE_LENGTHS.iter().position(|&l| l.to_string() == v).unwrap_or(0) as u8);
    // Each listed name sets the bit at its index in `names`, from `first`.
    let bits = |key: &str, names: &[&str], first: u32| {
        let listed = setting(t, key).unwrap_or("").split(',').map(str::trim).filter(|n| !n.is_empty());
        listed.fold(0u16, |bits, name| {
            let bit = names.iter().position(|&n| n == name).unwrap_or_else(|| panic!("{key} = {name}"));
            bits | 1 << (first + bit as u32)
        })
    };
    let off = bits("disable", inputs::EXTENSIONS, 0);
    let asked = bits("ask", &Questions::NAMES, 4) as u8;
    let mechanisms = bits("auth", &["plain", "login"], 0) as u8;
    let without_tls = u8::from(setting(t, "auth-without-tls") == Some("yes")) << 2;
    let require_tls = u8::from(setting(t, "require-tls") == Some("yes")) << 7;
    let failures = setting(t, "max-auth-failures")
        .map_or(0, |v| inputs::AUTH_FAILURES.iter().position(|&n| n.to_string() == v).unwrap_or(0) as u8);
    [
        size | recipients << 2 | line << 4,
        off as u8,
        (off >> 8) as u8 | asked,
        mechanisms | without_tls | (answers as u8) << 3 | require_tls,
        failures,
    ]
}

fn dot_header(t: &Transcript) -> [u8; inputs::DOT_HEADER] {
    let size = max_size(t).and_then(|size| u16::try_from(size).ok()).filter(|&s| s != u16::MAX).unwrap_or(u16::MAX);
    let [high, low] = size.to_be_bytes();
    [128, high, low]
}

/// What follows each `DATA` command line, to the end of the client bytes.
fn after_data_lines(client: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    for line in client.split_inclusive(|&b| b == b'\n') {
        at += line.len();
        if line.eq_ignore_ascii_case(b"DATA\r\n") {
            out.push(&client[at..]);
        }
    }
    out
}

/// The chunks of every well-formed `BDAT size [LAST]` line.
fn chunks(client: &[u8]) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    let mut rest = client;
    while let Some(lf) = rest.iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&rest[..lf]).trim_end().to_ascii_uppercase();
        rest = &rest[lf + 1..];
        let words: Vec<&str> = line.split(' ').collect();
        let (size, last) = match words.as_slice() {
            ["BDAT", size] => (size.parse::<usize>(), false),
            ["BDAT", size, "LAST"] => (size.parse::<usize>(), true),
            _ => continue,
        };
        let Ok(size) = size else { continue };
        let (bytes, tail) = rest.split_at(size.min(rest.len()));
        out.push(Chunk { bytes, last });
        rest = tail;
    }
    out
}
