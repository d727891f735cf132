//! The command and reply counts of a connection's summary line, like
//! Postfix's `disconnect from ... ehlo=1 mail=1 rcpt=1 data=1 quit=1
//! commands=5`.
//!
//! Why the host counts: the contract (wit/session.wit) hands the host
//! actions and questions, not commands, and a summary must not cost a
//! boundary crossing per command. So the host follows the client's input
//! just enough to tell a command line from what is not one: message
//! content after a 354 reply (up to the `<CRLF>.<CRLF>` that ends it, RFC
//! 5321 section 4.1.1.4), the octets of a BDAT chunk (RFC 3030), the SASL
//! response after a 334 (RFC 4954). Replies come from the guest's output,
//! whose complete replies the guard has checked. This is observation only:
//! nothing here decides a reply, and input from a client that breaks the
//! protocol (content pipelined ahead of its 354) is merely miscounted.
//!
//! Bounded: 32 octets of the current command line are kept (the verb and a
//! BDAT size), nothing of content, chunks or SASL responses (secrets).

use std::fmt;

/// The verbs counted by name, in summary order; anything else is `unknown`.
const VERBS: [&str; 14] = [
    "helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop", "vrfy", "expn", "help", "quit",
];
const UNKNOWN: usize = VERBS.len();
/// Octets of a command line kept: `BDAT` and a 20-digit size fit.
const LINE_KEPT: usize = 32;

/// Commands by verb.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandCounts([u32; VERBS.len() + 1]);

impl CommandCounts {
    /// Every command line, known or not.
    pub fn total(&self) -> u32 {
        self.0.iter().sum()
    }
}

/// `ehlo=1 mail=1 rcpt=1 data=1 quit=1`: the verbs used, in a fixed order.
impl fmt::Display for CommandCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = VERBS.iter().chain(std::iter::once(&"unknown"));
        let mut first = true;
        for (name, &count) in names.zip(&self.0).filter(|(_, count)| **count > 0) {
            write!(f, "{}{name}={count}", if first { "" } else { " " })?;
            first = false;
        }
        Ok(())
    }
}

/// What the next input octets are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// A command line.
    Command,
    /// Message content; `state` is how much of `<CRLF>.<CRLF>` was seen.
    Content(Terminator),
    /// This many octets of a BDAT chunk.
    Chunk(u64),
    /// A SASL response line.
    Sasl,
}

/// Progress towards the end of content: 0 = inside a line, 1 = after a CR,
/// 2 = at the start of a line (the 354 reply counts as one), 3 = a `.`
/// opens the line, 4 = `.` and CR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Terminator(u8);

/// Follows one connection's input and output.
#[derive(Debug)]
pub struct CommandCounter {
    mode: Mode,
    line: [u8; LINE_KEPT],
    line_len: usize,
    commands: CommandCounts,
    /// Final replies by class: 2xx, 3xx, 4xx, 5xx.
    replies: [u32; 4],
}

impl Default for CommandCounter {
    fn default() -> Self {
        CommandCounter {
            mode: Mode::Command,
            line: [0; LINE_KEPT],
            line_len: 0,
            commands: CommandCounts::default(),
            replies: [0; 4],
        }
    }
}

impl CommandCounter {
    pub fn commands(&self) -> &CommandCounts {
        &self.commands
    }

    /// Replies sent, by class: `[2xx, 3xx, 4xx, 5xx]`.
    pub fn replies(&self) -> [u32; 4] {
        self.replies
    }

    /// Octets the client sent, in order, split anywhere.
    pub fn input(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            bytes = match self.mode {
                Mode::Command => self.command(bytes),
                Mode::Content(state) => self.content(state, bytes),
                Mode::Chunk(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    self.mode = if left == n as u64 { Mode::Command } else { Mode::Chunk(left - n as u64) };
                    &bytes[n..]
                }
                Mode::Sasl => match bytes.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        self.mode = Mode::Command;
                        &bytes[end + 1..]
                    }
                    None => &[],
                },
            };
        }
    }

    /// Complete replies written to the client (one call's `send` actions).
    /// A 354 turns the following input into content, a 334 makes the next
    /// line a SASL response.
    pub fn output(&mut self, bytes: &[u8]) {
        for line in bytes.split(|&b| b == b'\n') {
            let (Some(&class), Some(&sep)) = (line.first(), line.get(3)) else { continue };
            // A continuation line (`250-`) is part of the reply its last line ends.
            if sep != b' ' && sep != b'\r' || !(b'2'..=b'5').contains(&class) {
                continue;
            }
            self.replies[usize::from(class - b'2')] += 1;
            match &line[..3] {
                b"354" => self.mode = Mode::Content(Terminator(2)),
                b"334" => self.mode = Mode::Sasl,
                _ => {}
            }
        }
    }

    /// Takes command-line octets up to the end of the line; counts the line.
    fn command<'b>(&mut self, bytes: &'b [u8]) -> &'b [u8] {
        let (part, rest, ended) = match bytes.iter().position(|&b| b == b'\n') {
            Some(end) => (&bytes[..end], &bytes[end + 1..], true),
            None => (bytes, &[][..], false),
        };
        let keep = part.len().min(LINE_KEPT - self.line_len);
        self.line[self.line_len..self.line_len + keep].copy_from_slice(&part[..keep]);
        self.line_len += keep;
        if ended {
            self.count_line();
        }
        rest
    }

    fn count_line(&mut self) {
        let line = &self.line[..self.line_len];
        self.line_len = 0;
        let mut words = line.split(|&b| b == b' ' || b == b'\r').filter(|w| !w.is_empty());
        let verb = words.next().unwrap_or_default();
        let index = VERBS.iter().position(|v| v.as_bytes().eq_ignore_ascii_case(verb)).unwrap_or(UNKNOWN);
        self.commands.0[index] += 1;
        if VERBS.get(index) == Some(&"bdat") {
            // The chunk follows the command line at once, whatever the reply.
            let size = words.next().and_then(|w| std::str::from_utf8(w).ok()).and_then(|w| w.parse::<u64>().ok());
            if let Some(size @ 1..) = size {
                self.mode = Mode::Chunk(size);
            }
        }
    }

    /// Skips content up to and including `<CRLF>.<CRLF>`. Between line
    /// ends only the octet before each LF matters, so the scan jumps from
    /// LF to LF (memchr) and steps octet by octet only at a line's start.
    fn content<'b>(&mut self, Terminator(mut state): Terminator, bytes: &'b [u8]) -> &'b [u8] {
        let mut i = 0;
        while i < bytes.len() {
            if state <= 1 {
                let Some(lf) = memchr::memchr(b'\n', &bytes[i..]) else {
                    state = u8::from(bytes[bytes.len() - 1] == b'\r');
                    break;
                };
                let after_cr = if lf == 0 { state == 1 } else { bytes[i + lf - 1] == b'\r' };
                state = if after_cr { 2 } else { 0 };
                i += lf + 1;
                continue;
            }
            state = match (state, bytes[i]) {
                (4, b'\n') => {
                    self.mode = Mode::Command;
                    return &bytes[i + 1..];
                }
                (3, b'\r') => 4,
                (_, b'\r') => 1,
                (2, b'.') => 3,
                _ => 0,
            };
            i += 1;
        }
        self.mode = Mode::Content(Terminator(state));
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session's input and the replies between its parts: `>` lines are
    /// input, `<` lines output.
    fn run(steps: &[(&str, &str)], split: usize) -> CommandCounter {
        let mut counter = CommandCounter::default();
        for (input, output) in steps {
            for piece in input.as_bytes().chunks(split.max(1)) {
                counter.input(piece);
            }
            counter.output(output.as_bytes());
        }
        counter
    }

    const SESSION: &[(&str, &str)] = &[
        ("", "220 mx.test ESMTP\r\n"),
        ("EHLO client.test\r\n", "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"),
        ("AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n"),
        ("YWxpY2U=\r\n", "334 UGFzc3dvcmQ6\r\n"),
        ("c2VjcmV0\r\n", "235 2.7.0 ok\r\n"),
        ("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nrcpt to:<e@f>\r\nDATA\r\n", "250 ok\r\n250 ok\r\n550 no\r\n354 go\r\n"),
        ("QUIT\r\n..leading dot\r\nRSET\r\n.\r\n", "250 2.0.0 queued\r\n"),
        ("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 13 LAST\r\nRCPT TO:<x>\r\n", "250 ok\r\n250 ok\r\n250 stored\r\n"),
        ("NOOP\r\nXYZZY\r\nQUIT\r\n", "250 ok\r\n500 what\r\n221 bye\r\n"),
    ];

    #[test]
    fn counts_commands_not_content_chunks_or_sasl_however_split() {
        for split in [1, 2, 3, 5, 7, 64] {
            let counter = run(SESSION, split);
            let commands = counter.commands();
            assert_eq!(
                commands.to_string(),
                "ehlo=1 auth=1 mail=2 rcpt=3 data=1 bdat=1 noop=1 quit=1 unknown=1",
                "split {split}"
            );
            assert_eq!(commands.total(), 12);
            // The greeting is a reply too; continuation lines are not.
            assert_eq!(counter.replies(), [11, 3, 0, 2]);
        }
    }

    #[test]
    fn only_crlf_dot_crlf_ends_content() {
        let steps: &[(&str, &str)] =
            &[("DATA\r\n", "354 go\r\n"), ("a\n.\nQUIT\r\n.\rRSET\r\nx\r\n.\r\n", "250 ok\r\n"), ("QUIT\r\n", "")];
        let counter = run(steps, 1);
        assert_eq!(counter.commands().to_string(), "data=1 quit=1");
    }

    #[test]
    fn content_ends_only_at_crlf_dot_crlf_whatever_comes_before() {
        for (content, ends) in [
            ("\r\n.\r\n", true),
            ("x\r\r\n.\r\n", true),
            ("x\n.\r\n", false),
            ("x\r\n.\r\r\n", false),
            ("x\r\n..\r\n", false),
            ("x\r\n.x\r\n.\r\n", true),
            ("x\r\n\r\n.\r\n", true),
        ] {
            for split in 1..=content.len() {
                let steps = [("DATA\r\n", "354 go\r\n"), (&*format!("line{content}QUIT\r\n"), "")];
                let counted = run(&steps, split).commands().to_string();
                let expected = if ends { "data=1 quit=1" } else { "data=1" };
                assert_eq!(counted, expected, "{content:?} split {split}");
            }
        }
    }

    #[test]
    fn a_long_line_keeps_its_verb_and_nothing_more() {
        let mut counter = CommandCounter::default();
        counter.input(format!("RCPT TO:<{}@example.org>\r\n", "x".repeat(10_000)).as_bytes());
        assert_eq!(counter.commands().to_string(), "rcpt=1");
        assert_eq!(counter.line_len, 0);
    }
}
