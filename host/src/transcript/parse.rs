//! Parser for the transcript files in tests/transcripts (format: README.md
//! in that folder).

use anyhow::{Context, Result, bail};

/// The host's answer to a message end, as a transcript states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TranscriptVerdict {
    Accepted(String),
    InsufficientStorage,
    TemporaryFailure,
    PermanentFailure,
}

/// Session configuration a transcript asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptConfig {
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: u32,
    pub max_line_length: u32,
    /// Extension names from `! disable = …`.
    pub disabled: Vec<String>,
    pub peer_ip: String,
}

impl Default for TranscriptConfig {
    fn default() -> Self {
        TranscriptConfig {
            hostname: "smtpcell.test".into(),
            max_message_size: 10_240_000,
            max_recipients: 100,
            max_line_length: 1000,
            disabled: vec![],
            peer_ip: "192.0.2.1".into(),
        }
    }
}

impl TranscriptConfig {
    pub fn enabled(&self, extension: &str) -> bool {
        !self.disabled.iter().any(|d| d == extension)
    }
}

/// One parsed transcript.
#[derive(Clone, Debug)]
pub struct Transcript {
    pub name: String,
    pub config: TranscriptConfig,
    /// Client input, one entry per `C` line.
    pub client: Vec<Vec<u8>>,
    /// Everything the server must send.
    pub expected: Vec<u8>,
    pub verdicts: Vec<TranscriptVerdict>,
    /// Contents of the messages that end, in order.
    pub messages: Vec<Vec<u8>>,
}

impl Transcript {
    pub fn parse(name: &str, text: &str) -> Result<Transcript> {
        let mut t = Transcript {
            name: name.to_string(),
            config: TranscriptConfig::default(),
            client: vec![],
            expected: vec![],
            verdicts: vec![],
            messages: vec![],
        };
        let mut seen_exchange = false;
        for (n, line) in text.lines().enumerate() {
            let at = || format!("{name}:{}", n + 1);
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(assignment) = line.strip_prefix("! ") {
                if seen_exchange {
                    bail!("{}: configuration after the first C/S line", at());
                }
                set_config(&mut t.config, assignment).with_context(at)?;
                continue;
            }
            let (tag, rest) = match (line.get(..2), line.get(3..)) {
                (Some(tag), Some(rest)) if line.as_bytes()[2] == b' ' => (tag, rest),
                (Some(tag), None) if line.len() == 2 => (tag, ""),
                _ => bail!("{}: expected a two-character tag and a space", at()),
            };
            match tag {
                "C:" => {
                    seen_exchange = true;
                    t.client.push([rest.as_bytes(), b"\r\n"].concat());
                }
                "C=" => {
                    seen_exchange = true;
                    t.client.push(unescape(rest).with_context(at)?);
                }
                "S:" => {
                    seen_exchange = true;
                    t.expected.extend_from_slice(rest.as_bytes());
                    t.expected.extend_from_slice(b"\r\n");
                }
                "V:" => t.verdicts.push(parse_verdict(rest).with_context(at)?),
                "M=" => t.messages.push(unescape(rest).with_context(at)?),
                _ => bail!("{}: unknown tag {tag:?}", at()),
            }
        }
        Ok(t)
    }

    /// All client bytes in one buffer.
    pub fn input(&self) -> Vec<u8> {
        self.client.concat()
    }

    /// The corpus in tests/transcripts, embedded into the binary at build
    /// time (so `smtpcell check` and reloads can replay it anywhere).
    pub fn corpus() -> Result<Vec<Transcript>> {
        CORPUS.iter().map(|(name, text)| Transcript::parse(name, text)).collect()
    }
}

// `const CORPUS: &[(&str, &str)]`, file names and contents, sorted by name.
include!(concat!(env!("OUT_DIR"), "/corpus.rs"));

fn set_config(config: &mut TranscriptConfig, assignment: &str) -> Result<()> {
    let Some((key, value)) = assignment.split_once('=') else { bail!("expected `key = value`") };
    let (key, value) = (key.trim(), value.trim());
    match key {
        "hostname" => config.hostname = value.to_string(),
        "max-message-size" => config.max_message_size = value.parse()?,
        "max-recipients" => config.max_recipients = value.parse()?,
        "max-line-length" => config.max_line_length = value.parse()?,
        "disable" => config.disabled = value.split(',').map(|s| s.trim().to_ascii_lowercase()).collect(),
        "peer-ip" => config.peer_ip = value.to_string(),
        _ => bail!("unknown configuration key {key:?}"),
    }
    Ok(())
}

fn parse_verdict(text: &str) -> Result<TranscriptVerdict> {
    let mut words = text.split_whitespace();
    Ok(match (words.next(), words.next()) {
        (Some("accepted"), Some(id)) => TranscriptVerdict::Accepted(id.to_string()),
        (Some("insufficient-storage"), None) => TranscriptVerdict::InsufficientStorage,
        (Some("temporary-failure"), None) => TranscriptVerdict::TemporaryFailure,
        (Some("permanent-failure"), None) => TranscriptVerdict::PermanentFailure,
        _ => bail!("unknown verdict {text:?}"),
    })
}

/// Decodes `\r \n \t \0 \\ \xHH`.
pub fn unescape(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
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
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).ok().filter(|h| h.len() == 2);
                u8::from_str_radix(hex.context("\\x needs two hex digits")?, 16)?
            }
            other => bail!("unknown escape \\{}", other.map(char::from).unwrap_or(' ')),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_tag() {
        let t = Transcript::parse(
            "x",
            "# c\n! max-recipients = 2\n! disable = chunking, DSN\nS: 220 hi\nC: EHLO a\nC= .\\r\\n\\x41\\\\\nV: accepted ID1\nM= a\\0b\n",
        )
        .unwrap();
        assert_eq!(t.config.max_recipients, 2);
        assert_eq!(t.config.disabled, ["chunking", "dsn"]);
        assert_eq!(t.expected, b"220 hi\r\n");
        assert_eq!(t.input(), b"EHLO a\r\n.\r\nA\\");
        assert_eq!(t.verdicts, [TranscriptVerdict::Accepted("ID1".into())]);
        assert_eq!(t.messages, [b"a\0b".to_vec()]);
    }

    #[test]
    fn rejects_late_config_and_unknown_tags() {
        assert!(Transcript::parse("x", "C: NOOP\n! hostname = a\n").is_err());
        assert!(Transcript::parse("x", "Q: what\n").is_err());
        assert!(Transcript::parse("x", "C= \\q\n").is_err());
    }
}
