//! Parser for the transcript files in tests/transcripts (format: README.md
//! in that folder).

use anyhow::{Context, Result, bail, ensure};
use smtp_core::{Answer, Config, Reason, Refusal, TlsInfo};

/// The host's answer to one question, as an `A:` line states it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptAnswer {
    /// The question expected (`connect`, `helo`, `mail`, `rcpt`, `auth`,
    /// `message-end`: smtp-core's `Question::name`).
    pub question: String,
    pub answer: Answer,
}

/// Session configuration a transcript asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptConfig {
    /// The session's configuration: smtp-core's defaults, the hostname
    /// `smtpcell.test`, and what the `!` lines change.
    pub session: Config,
    pub peer_ip: String,
}

impl Default for TranscriptConfig {
    fn default() -> Self {
        TranscriptConfig {
            session: Config { hostname: "smtpcell.test".into(), ..Config::default() },
            peer_ip: "192.0.2.1".into(),
        }
    }
}

/// A `T:` line: the TLS handshake completes at this point of the client's
/// stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The `C` lines before it. 0 is implicit TLS (RFC 8314): `tls-started`
    /// comes before `greeting`. Any other value is a STARTTLS handshake
    /// (RFC 3207), which the session must have asked for with `start-tls`
    /// while processing those lines.
    pub after: usize,
    /// What the driver passes to `tls-started`.
    pub tls: TlsInfo,
    /// The `T:` line's number in the file, for error messages.
    pub line: usize,
}

impl Handshake {
    /// Before any client input: implicit TLS (RFC 8314), not the end of a
    /// STARTTLS.
    pub fn implicit(&self) -> bool {
        self.after == 0
    }
}

/// One parsed transcript.
#[derive(Clone, Debug)]
pub struct Transcript {
    pub name: String,
    pub config: TranscriptConfig,
    /// Client input, one entry per `C` line.
    pub client: Vec<Vec<u8>>,
    /// The TLS handshakes (`T:` lines), in order.
    pub handshakes: Vec<Handshake>,
    /// Everything the server must send.
    pub expected: Vec<u8>,
    /// The host's answers, in the order questions are asked.
    pub answers: Vec<TranscriptAnswer>,
    /// Contents of the messages that end, in order.
    pub messages: Vec<Vec<u8>>,
}

impl Transcript {
    pub fn parse(name: &str, text: &str) -> Result<Transcript> {
        let mut t = Transcript {
            name: name.to_string(),
            config: TranscriptConfig::default(),
            client: vec![],
            handshakes: vec![],
            expected: vec![],
            answers: vec![],
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
                "T:" => {
                    seen_exchange = true;
                    let after = t.client.len();
                    if t.handshakes.last().is_some_and(|h| h.after == after) {
                        bail!("{}: a second TLS handshake with no client line since the first", at());
                    }
                    let tls = parse_tls(rest).with_context(at)?;
                    t.handshakes.push(Handshake { after, tls, line: n + 1 });
                }
                "A:" => t.answers.push(parse_answer(rest).with_context(at)?),
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

    /// The implicit TLS handshake (a `T:` line before the first `C` line),
    /// if any.
    pub fn implicit_tls(&self) -> Option<&Handshake> {
        self.handshakes.first().filter(|h| h.implicit())
    }

    /// The STARTTLS handshakes: the `T:` lines after some client input.
    pub fn starttls_handshakes(&self) -> impl Iterator<Item = &Handshake> {
        self.handshakes.iter().filter(|h| !h.implicit())
    }

    /// The client lines cut into segments at the STARTTLS handshakes: the
    /// first segment is what the client sends before the first handshake,
    /// the last what it sends after the last one. Feeding plans split
    /// within a segment only (a client sends nothing between its STARTTLS
    /// and the end of the handshake), so this is also the per-line plan.
    pub fn segments(&self) -> Vec<Vec<Vec<u8>>> {
        let mut segments = Vec::new();
        let mut from = 0;
        for handshake in self.starttls_handshakes() {
            segments.push(self.client[from..handshake.after].to_vec());
            from = handshake.after;
        }
        segments.push(self.client[from..].to_vec());
        segments
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
    let session = &mut config.session;
    let names = || value.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
    match key {
        "hostname" => session.hostname = value.to_string(),
        "max-message-size" => session.max_message_size = value.parse()?,
        "max-recipients" => session.max_recipients = value.parse()?,
        "max-line-length" => session.max_line_length = value.parse()?,
        "max-auth-failures" => session.max_auth_failures = value.parse()?,
        "disable" => {
            for name in names() {
                // A typo must not silently test the default.
                *session.extensions.flag_mut(&name).with_context(|| format!("unknown extension {name:?}"))? = false;
            }
        }
        "ask" => {
            for name in names() {
                *session.questions.flag_mut(&name).with_context(|| format!("unknown question {name:?}"))? = true;
            }
        }
        "auth" => {
            for name in names() {
                match name.as_str() {
                    "plain" => session.auth_mechanisms.plain = true,
                    "login" => session.auth_mechanisms.login = true,
                    _ => bail!("unknown SASL mechanism {name:?}"),
                }
            }
        }
        "starttls" => session.extensions.starttls = yes_no(value)?,
        "auth-without-tls" => session.auth_without_tls = yes_no(value)?,
        "require-tls" => session.require_tls = yes_no(value)?,
        "peer-ip" => config.peer_ip = value.to_string(),
        _ => bail!("unknown configuration key {key:?}"),
    }
    Ok(())
}

fn yes_no(value: &str) -> Result<bool> {
    match value {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => bail!("expected yes or no, not {value:?}"),
    }
}

/// `VERSION CIPHER`, the IANA/OpenSSL names a host reports (`TLSv1.3
/// TLS_AES_256_GCM_SHA384`).
fn parse_tls(text: &str) -> Result<TlsInfo> {
    match text.split(' ').collect::<Vec<_>>()[..] {
        [version, cipher] if !version.is_empty() && !cipher.is_empty() => {
            Ok(TlsInfo { version: version.to_string(), cipher: cipher.to_string() })
        }
        _ => bail!("expected `T: VERSION CIPHER`, two words"),
    }
}

/// `QUESTION accept [TEXT]` or `QUESTION refuse REASON permanent|temporary|disconnect [TEXT]`.
fn parse_answer(text: &str) -> Result<TranscriptAnswer> {
    let mut words = text.splitn(3, ' ');
    let question = words.next().unwrap_or_default().to_string();
    ensure!(
        ["connect", "helo", "mail", "rcpt", "auth", "message-end"].contains(&question.as_str()),
        "unknown question {question:?}"
    );
    let answer = match (words.next(), words.next()) {
        (Some("accept"), text) => Answer::Accept(text.map(str::to_string)),
        (Some("refuse"), Some(rest)) => {
            let mut words = rest.splitn(3, ' ');
            let reason = words.next().unwrap_or_default();
            let reason = Reason::from_name(reason).with_context(|| format!("unknown reason {reason:?}"))?;
            let (permanent, disconnect) = match words.next() {
                Some("permanent") => (true, false),
                Some("temporary") => (false, false),
                Some("disconnect") => (false, true),
                other => bail!("expected permanent, temporary or disconnect, not {other:?}"),
            };
            Answer::Refuse(Refusal { reason, permanent, text: words.next().map(str::to_string), disconnect })
        }
        _ => bail!(
            "expected `accept [text]` or `refuse reason permanent|temporary|disconnect [text]` after the question"
        ),
    };
    Ok(TranscriptAnswer { question, answer })
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
            "# c\n! max-recipients = 2\n! disable = chunking, DSN\n! ask = rcpt\nS: 220 hi\nC: EHLO a\nC= .\\r\\n\\x41\\\\\n\
             A: rcpt refuse no-such-user permanent see https://x.test/\nA: message-end accept ID1\nM= a\\0b\n",
        )
        .unwrap();
        assert_eq!(t.config.session.max_recipients, 2);
        assert!(
            !t.config.session.extensions.chunking
                && !t.config.session.extensions.dsn
                && t.config.session.extensions.size
        );
        assert!(t.config.session.questions.rcpt && !t.config.session.questions.mail);
        assert_eq!(t.expected, b"220 hi\r\n");
        assert_eq!(t.input(), b"EHLO a\r\n.\r\nA\\");
        assert_eq!(
            t.answers[0].answer,
            Answer::Refuse(Refusal {
                reason: Reason::NoSuchUser,
                permanent: true,
                text: Some("see https://x.test/".into()),
                disconnect: false,
            })
        );
        assert_eq!(
            t.answers[1],
            TranscriptAnswer { question: "message-end".into(), answer: Answer::Accept(Some("ID1".into())) }
        );
        assert_eq!(t.messages, [b"a\0b".to_vec()]);
    }

    #[test]
    fn tls_lines_cut_the_input_into_segments() {
        let text = "! starttls = yes\nT: TLSv1.3 TLS_AES_256_GCM_SHA384\nS: 220 hi\nC: EHLO a\nC: STARTTLS\n\
                    S: 220 go\nT: TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256\nC: EHLO a\n";
        let t = Transcript::parse("x", text).unwrap();
        assert!(t.config.session.extensions.starttls);
        let tls = |version: &str, cipher: &str| TlsInfo { version: version.into(), cipher: cipher.into() };
        assert_eq!(
            t.handshakes,
            [
                Handshake { after: 0, tls: tls("TLSv1.3", "TLS_AES_256_GCM_SHA384"), line: 2 },
                Handshake { after: 2, tls: tls("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"), line: 7 },
            ]
        );
        assert_eq!(t.implicit_tls().map(|h| h.line), Some(2));
        assert_eq!(
            t.segments(),
            [vec![b"EHLO a\r\n".to_vec(), b"STARTTLS\r\n".to_vec()], vec![b"EHLO a\r\n".to_vec()]]
        );
        // Without T: lines, one segment; a T: line last leaves an empty one.
        assert_eq!(Transcript::parse("x", "C: A\n").unwrap().segments().len(), 1);
        assert_eq!(Transcript::parse("x", "C: A\nT: v c\n").unwrap().segments()[1], Vec::<Vec<u8>>::new());
    }

    #[test]
    fn rejects_malformed_tls_lines() {
        for bad in
            ["T: TLSv1.3\n", "T: a b c\n", "T: a  b\n", "T:\n", "C: A\nT: v c\nT: v c\n", "T: v c\n! starttls = yes\n"]
        {
            assert!(Transcript::parse("x", bad).is_err(), "{bad:?}");
        }
        assert!(Transcript::parse("x", "! starttls = on\n").is_err());
    }

    #[test]
    fn rejects_late_config_and_unknown_tags() {
        assert!(Transcript::parse("x", "C: NOOP\n! hostname = a\n").is_err());
        assert!(Transcript::parse("x", "Q: what\n").is_err());
        assert!(Transcript::parse("x", "C= \\q\n").is_err());
        assert!(Transcript::parse("x", "! disable = chunkin\n").is_err());
        assert!(Transcript::parse("x", "A: rcpt refuse no-such-usr permanent\n").is_err());
    }
}
