//! The command-line parser (`command.rs`, `address.rs`) on arbitrary
//! lines. Beyond not panicking:
//! - a refusal is one well-formed 5xx reply;
//! - an accepted line is UTF-8 without control characters (bar TAB);
//! - an accepted command written back in canonical form parses to the same
//!   command (nothing the parser keeps depends on how it was spelled);
//! - verbs are case-insensitive: upper-casing the verb changes nothing;
//! - HELO names, paths, parameters and AUTH's mechanism and initial
//!   response are taken verbatim from the line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_core::fuzzing::{Command, ReversePath, parse_command};
use smtp_core_fuzz::replies::{self, Rules};

fuzz_target!(|line: &[u8]| {
    let parsed = parse_command(line);
    check_verb_case(line, &parsed);
    let command = match parsed {
        Ok(command) => command,
        Err(wire) => {
            let replies = replies::check(&wire, Rules { enhanced_codes: true, hostname: "" });
            assert_eq!(replies.len(), 1, "one refusal, one reply");
            assert_eq!(replies[0].code / 100, 5, "a refused command line gets 5xx");
            return;
        }
    };
    let text = std::str::from_utf8(line).expect("accepted a line that is not UTF-8");
    assert!(!text.chars().any(|c| c.is_control() && c != '\t'), "accepted a control character");
    let canonical = canonical(&command);
    let again = parse_command(canonical.as_bytes()).unwrap_or_else(|e| panic!("{canonical:?} refused: {e:?}"));
    assert_eq!(again, command, "{canonical:?} parses differently");
    match command {
        Command::Helo(name) | Command::Ehlo(name) => {
            assert!(!name.is_empty() && name.len() <= 255 && name.bytes().all(|b| b.is_ascii_graphic()));
            assert!(text.contains(name));
        }
        Command::Mail { path, params } => {
            if let ReversePath::Mailbox(mailbox) = path {
                assert!(text.contains(mailbox.as_str()), "path not taken verbatim");
            }
            check_params(text, params);
        }
        Command::Rcpt { path, params } => {
            assert!(text.contains(path.as_str()), "path not taken verbatim");
            check_params(text, params);
        }
        Command::Auth { mechanism, initial } => {
            for word in [mechanism].into_iter().chain(initial) {
                assert!(!word.is_empty() && !word.contains(' ') && text.contains(word), "AUTH word {word:?}");
            }
        }
        _ => {}
    }
});

/// The command written the one way the RFC writes it. VRFY's argument and
/// the verb of a not-implemented command are not kept, so any will do.
fn canonical(command: &Command<'_>) -> String {
    match command {
        Command::Helo(name) => format!("HELO {name}"),
        Command::Ehlo(name) => format!("EHLO {name}"),
        Command::Mail { path: ReversePath::Null, params } => format!("MAIL FROM:<>{params}"),
        Command::Mail { path: ReversePath::Mailbox(mailbox), params } => {
            format!("MAIL FROM:<{}>{params}", mailbox.as_str())
        }
        Command::Rcpt { path, params } => format!("RCPT TO:<{}>{params}", path.as_str()),
        Command::Data => "DATA".to_string(),
        Command::Bdat { size, last: false } => format!("BDAT {size}"),
        Command::Bdat { size, last: true } => format!("BDAT {size} LAST"),
        Command::Rset => "RSET".to_string(),
        Command::Noop => "NOOP".to_string(),
        Command::Quit => "QUIT".to_string(),
        Command::Help => "HELP".to_string(),
        Command::Vrfy => "VRFY x".to_string(),
        Command::Expn => "EXPN".to_string(),
        Command::StartTls => "STARTTLS".to_string(),
        Command::Auth { mechanism, initial: None } => format!("AUTH {mechanism}"),
        Command::Auth { mechanism, initial: Some(initial) } => format!("AUTH {mechanism} {initial}"),
        Command::NotImplemented => "TURN".to_string(),
    }
}

/// Parameters are the rest of the line after the path, space-led.
fn check_params(text: &str, params: &str) {
    assert!(params.is_empty() || params.starts_with(' '), "parameters {params:?} not space-led");
    assert!(text.trim_end_matches(' ').ends_with(params), "parameters not the tail of the line");
}

/// Upper-casing the verb (the bytes before the first space) must give the
/// same outcome.
fn check_verb_case(line: &[u8], parsed: &Result<Command<'_>, Vec<u8>>) {
    let verb_len = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let mut upper = line.to_vec();
    upper[..verb_len].make_ascii_uppercase();
    assert_eq!(&parse_command(&upper), parsed, "verb case matters");
}
