//! The shape every byte a session sends must have: whole RFC 5321
//! section 4.2 replies, with RFC 2034 enhanced codes where they belong.

/// One parsed reply: its code and the text of each of its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// `"250 2.1.0"`-style: the code and the enhanced code, if any, of a
    /// single-line reply; what a model of the session can predict.
    pub fn status(&self) -> String {
        match self.lines.last().and_then(|text| enhanced_code(text)) {
            Some(enhanced) => format!("{} {enhanced}", self.code),
            None => self.code.to_string(),
        }
    }
}

/// What the replies of one session may contain.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    /// ENHANCEDSTATUSCODES is enabled.
    pub enhanced_codes: bool,
    /// The configured hostname: the whole text of the HELO reply.
    pub hostname: &'a str,
}

/// Parses the bytes of one `Send` and panics unless they are one or more
/// complete, well-formed replies:
/// - lines end with CR LF, and hold no other CR or LF;
/// - each line is a code (first digit 2 to 5, second 0 to 5), then `-` or
///   a space, then text of TAB and printable ASCII only;
/// - a multi-line reply keeps one code, and the `Send` ends on a last line;
/// - enhanced codes appear exactly where RFC 2034 wants them, in the
///   reply's class.
pub fn check(bytes: &[u8], rules: Rules<'_>) -> Vec<Reply> {
    assert!(bytes.ends_with(b"\r\n"), "Send does not end with CR LF: {:?}", String::from_utf8_lossy(bytes));
    let mut replies = Vec::new();
    let mut open: Option<Reply> = None;
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r\n").unwrap_or_else(|| panic!("bare LF in a reply: {bytes:?}"));
        assert!(line.len() >= 4, "reply line too short: {line:?}");
        assert!(!line.contains(&b'\r'), "bare CR in a reply: {line:?}");
        let code = code(&line[..3]);
        let text = &line[4..];
        assert!(
            text.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)),
            "reply text not printable ASCII: {line:?}"
        );
        let text = String::from_utf8(text.to_vec()).expect("checked ASCII");
        let reply = open.get_or_insert_with(|| Reply { code, lines: Vec::new() });
        assert_eq!(reply.code, code, "code changes inside a multi-line reply: {bytes:?}");
        reply.lines.push(text);
        match line[3] {
            b'-' => {}
            b' ' => replies.push(open.take().expect("just inserted")),
            other => panic!("reply separator {other:?} is neither '-' nor ' '"),
        }
    }
    assert!(open.is_none(), "Send ends inside a multi-line reply: {bytes:?}");
    for reply in &replies {
        check_enhanced(reply, rules);
    }
    replies
}

fn code(digits: &[u8]) -> u16 {
    assert!(digits.iter().all(u8::is_ascii_digit), "reply code not digits: {digits:?}");
    assert!((b'2'..=b'5').contains(&digits[0]), "reply class {} out of 2..5", digits[0] as char);
    assert!((b'0'..=b'5').contains(&digits[1]), "reply category {} out of 0..5", digits[1] as char);
    digits.iter().fold(0, |code, &d| code * 10 + u16::from(d - b'0'))
}

/// The enhanced code at the start of `text` (`class.subject.detail`,
/// RFC 3463 section 2), if there is one.
fn enhanced_code(text: &str) -> Option<&str> {
    let word = text.split(' ').next()?;
    let parts: Vec<&str> = word.split('.').collect();
    let digits = |part: &str, max: usize| (1..=max).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit());
    (parts.len() == 3 && digits(parts[0], 1) && digits(parts[1], 3) && digits(parts[2], 3)).then_some(word)
}

/// RFC 2034 section 3: every reply carries an enhanced code of its own
/// class, except the greeting, the HELO/EHLO 250s and the 3xx replies
/// (RFC 3463 has no class 3: DATA's 354, AUTH's 334 challenges, whose
/// text is base64, RFC 4954 section 4). Without the extension, none does.
fn check_enhanced(reply: &Reply, rules: Rules<'_>) {
    let first = &reply.lines[0];
    let found = enhanced_code(first);
    if !rules.enhanced_codes {
        assert_eq!(found, None, "enhanced code sent while ENHANCEDSTATUSCODES is off: {reply:?}");
        return;
    }
    if let Some(enhanced) = found {
        assert_eq!(
            enhanced.as_bytes()[0] as u16 - u16::from(b'0'),
            reply.code / 100,
            "enhanced class mismatch: {reply:?}"
        );
    }
    let exempt = reply.code / 100 == 3
        || reply.lines.len() > 1
        || (reply.code == 220 && first.starts_with(&format!("{} ", rules.hostname)))
        || (reply.code == 250 && first == rules.hostname);
    assert!(exempt || found.is_some(), "reply without enhanced code: {reply:?}");
}
