//! ESMTP parameters of MAIL and RCPT (RFC 5321 section 4.1.2
//! `esmtp-param`), each accepted only when its extension is enabled:
//!
//! | parameter | command | extension | RFC |
//! | --- | --- | --- | --- |
//! | `SIZE=n` | MAIL | SIZE | 1870 |
//! | `BODY=7BIT / 8BITMIME` | MAIL | 8BITMIME | 6152 |
//! | `BODY=BINARYMIME` | MAIL | BINARYMIME and CHUNKING | 3030 |
//! | `SMTPUTF8` | MAIL | SMTPUTF8 | 6531 |
//! | `RET=FULL / HDRS`, `ENVID=xtext` | MAIL | DSN | 3461 |
//! | `AUTH=xtext / <>` | MAIL | AUTH (SASL mechanisms configured) | 4954 |
//! | `NOTIFY=...`, `ORCPT=type;xtext` | RCPT | DSN | 3461 |
//!
//! An unknown or disabled parameter gets 555 5.5.4 (RFC 5321 section
//! 4.1.1.11); a known one with a bad or repeated value gets 501 5.5.4.
//! Keywords and the fixed values are case-insensitive; ENVID, NOTIFY and
//! ORCPT are recorded as sent (the host writes them into DSNs later).
//! AUTH= is checked and then forgotten: it names who submitted the message
//! originally, as the client claims, and RFC 4954 section 5 lets a server
//! that does not trust the client act as if it said `AUTH=<>`, which is to
//! record nothing (the identity the envelope carries is the one this
//! session's own AUTH established).

use crate::config::{Config, Extensions};
use crate::envelope::{BodyType, DsnReturn};
use crate::limits::{self, MAX_ENVID, MAX_ORCPT};
use crate::prelude::*;
use crate::reply::Reply;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MailParams {
    pub size: Option<u64>,
    pub body: Option<BodyType>,
    pub smtputf8: bool,
    pub ret: Option<DsnReturn>,
    pub envid: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RcptParams {
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// Parses what follows the reverse-path. A SIZE= over the configured
/// limit is refused here, before any content is sent (RFC 1870 section
/// 6.1: 552 5.3.4). A SIZE value of digits is a number however long: too
/// large to represent means too large to accept, never a syntax error (see
/// `limits::decimal`).
pub(crate) fn mail(text: &str, config: &Config) -> Result<MailParams, Reply> {
    let (ext, max_size) = (&config.extensions, config.max_message_size);
    let mut params = MailParams::default();
    // AUTH= is not recorded (see the module documentation); only seen, so
    // that a second one is a duplicate like any other.
    let mut auth_seen = false;
    for (keyword, value) in split(text)? {
        match keyword.to_ascii_uppercase().as_str() {
            "SIZE" if ext.size => {
                let size = value.and_then(limits::decimal).ok_or(Reply::BAD_PARAMETER)?;
                set(&mut params.size, size)?;
                if size > max_size {
                    return Err(Reply::SIZE_EXCEEDED);
                }
            }
            "BODY" if ext.eightbitmime || (ext.binarymime && ext.chunking) => {
                let body = match value.map(str::to_ascii_uppercase).as_deref() {
                    Some("7BIT") => BodyType::SevenBit,
                    Some("8BITMIME") if ext.eightbitmime => BodyType::EightBitMime,
                    Some("BINARYMIME") if ext.binarymime && ext.chunking => BodyType::BinaryMime,
                    _ => return Err(Reply::BAD_PARAMETER),
                };
                set(&mut params.body, body)?;
            }
            "SMTPUTF8" if ext.smtputf8 => {
                if value.is_some() {
                    return Err(Reply::BAD_PARAMETER);
                }
                if core::mem::replace(&mut params.smtputf8, true) {
                    return Err(Reply::DUPLICATE_PARAMETER);
                }
            }
            "RET" if ext.dsn => {
                let ret = match value.map(str::to_ascii_uppercase).as_deref() {
                    Some("FULL") => DsnReturn::Full,
                    Some("HDRS") => DsnReturn::Headers,
                    _ => return Err(Reply::BAD_PARAMETER),
                };
                set(&mut params.ret, ret)?;
            }
            "ENVID" if ext.dsn => {
                let envid = value.filter(|v| v.len() <= MAX_ENVID && is_xtext(v)).ok_or(Reply::BAD_PARAMETER)?;
                set(&mut params.envid, envid.to_string())?;
            }
            "AUTH" if config.auth_mechanisms.any() => {
                // RFC 4954 section 5: `"AUTH=" xtext`, where xtext is an
                // addr-spec or `<>` (both are xtext already).
                if !value.is_some_and(is_xtext) {
                    return Err(Reply::BAD_PARAMETER);
                }
                if core::mem::replace(&mut auth_seen, true) {
                    return Err(Reply::DUPLICATE_PARAMETER);
                }
            }
            _ => return Err(Reply::UNSUPPORTED_PARAMETER),
        }
    }
    Ok(params)
}

/// Parses what follows the forward-path.
pub(crate) fn rcpt(text: &str, ext: &Extensions) -> Result<RcptParams, Reply> {
    let mut params = RcptParams::default();
    for (keyword, value) in split(text)? {
        match keyword.to_ascii_uppercase().as_str() {
            "NOTIFY" if ext.dsn => {
                let notify = value.filter(|v| is_notify(v)).ok_or(Reply::BAD_PARAMETER)?;
                set(&mut params.notify, notify.to_string())?;
            }
            "ORCPT" if ext.dsn => {
                let orcpt = value.filter(|v| v.len() <= MAX_ORCPT && is_orcpt(v)).ok_or(Reply::BAD_PARAMETER)?;
                set(&mut params.orcpt, orcpt.to_string())?;
            }
            _ => return Err(Reply::UNSUPPORTED_PARAMETER),
        }
    }
    Ok(params)
}

/// Splits `SP esmtp-param *(SP esmtp-param)` into keyword and value.
/// Runs of spaces are tolerated, as most servers do. (The command parser
/// already made sure the path is followed by a space or nothing.)
fn split(text: &str) -> Result<Vec<(&str, Option<&str>)>, Reply> {
    text.split(' ')
        .filter(|param| !param.is_empty())
        .map(|param| {
            let (keyword, value) = match param.split_once('=') {
                Some((keyword, value)) => (keyword, Some(value)),
                None => (param, None),
            };
            // esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
            let keyword_ok = keyword.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && keyword.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            // esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 (RFC 6531)
            let value_ok =
                value.is_none_or(|v| !v.is_empty() && v.bytes().all(|b| matches!(b, 33..=60 | 62..=126 | 0x80..)));
            if keyword_ok && value_ok { Ok((keyword, value)) } else { Err(Reply::BAD_PARAMETER) }
        })
        .collect()
}

fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), Reply> {
    if slot.replace(value).is_some() { Err(Reply::DUPLICATE_PARAMETER) } else { Ok(()) }
}

/// RFC 3461 section 4: `xtext = *( xchar / hexchar )`, `xchar` is
/// %d33-42 / %d44-60 / %d62-126, `hexchar = "+" 2(%x30-39 / %x41-46)`.
fn is_xtext(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = |b: Option<&u8>| b.is_some_and(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'));
                if !hex(bytes.get(i + 1)) || !hex(bytes.get(i + 2)) {
                    return false;
                }
                i += 3;
            }
            33..=42 | 44..=60 | 62..=126 => i += 1,
            _ => return false,
        }
    }
    true
}

/// RFC 3461 section 4.1: `NEVER`, or a comma list of distinct `SUCCESS`,
/// `FAILURE`, `DELAY`.
fn is_notify(text: &str) -> bool {
    if text.eq_ignore_ascii_case("NEVER") {
        return true;
    }
    let mut seen = Vec::new();
    text.split(',').all(|item| {
        let item = item.to_ascii_uppercase();
        let known = matches!(item.as_str(), "SUCCESS" | "FAILURE" | "DELAY");
        let fresh = !seen.contains(&item);
        seen.push(item);
        known && fresh
    })
}

/// RFC 3461 section 4.2: `addr-type ";" xtext`, `addr-type` an atom.
fn is_orcpt(text: &str) -> bool {
    match text.split_once(';') {
        Some((addr_type, address)) => {
            !addr_type.is_empty()
                && addr_type.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
                && !address.is_empty()
                && is_xtext(address)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::AuthMechanisms;

    const ALL: Extensions = Extensions::DEFAULT;

    /// `mail` with these extensions and size limit, AUTH not offered.
    fn mail(text: &str, ext: &Extensions, max_size: u64) -> Result<MailParams, Reply> {
        super::mail(text, &Config { extensions: *ext, max_message_size: max_size, ..Config::default() })
    }

    /// `mail` in a session that offers AUTH (PLAIN), every extension on.
    fn mail_with_auth(text: &str) -> Result<MailParams, Reply> {
        let auth_mechanisms = AuthMechanisms { plain: true, login: false };
        super::mail(text, &Config { auth_mechanisms, ..Config::default() })
    }

    #[test]
    fn mail_parameters_are_recorded() {
        let params = mail(" SIZE=1000 body=8bitmime SMTPUTF8 RET=hdrs ENVID=abc+2Bdef", &ALL, 5000).unwrap();
        assert_eq!(
            params,
            MailParams {
                size: Some(1000),
                body: Some(BodyType::EightBitMime),
                smtputf8: true,
                ret: Some(DsnReturn::Headers),
                envid: Some("abc+2Bdef".to_string()),
            }
        );
        assert_eq!(mail("", &ALL, 1), Ok(MailParams::default()));
        assert_eq!(mail("  SIZE=1  ", &ALL, 1).unwrap().size, Some(1));
        assert_eq!(mail(" BODY=BINARYMIME", &ALL, 1).unwrap().body, Some(BodyType::BinaryMime));
    }

    #[test]
    fn mail_parameter_errors() {
        for (text, code) in [
            (" SIZE=", 501),
            (" SIZE=x", 501),
            (" SIZE=-1", 501),
            (" SIZE=99999999999999999999999", 552),
            (" SIZE=18446744073709551616", 552),
            (" SIZE=+1", 501),
            (" SIZE=1.5", 501),
            (" SIZE=5001", 552),
            (" SIZE=1 SIZE=2", 501),
            (" BODY=9BIT", 501),
            (" BODY", 501),
            (" SMTPUTF8=yes", 501),
            (" RET=ALL", 501),
            (" ENVID=a=b", 501),
            (" ENVID=a+2", 501),
            (" ENVID=a+2b", 501),
            (" FOO=bar", 555),
            (" X-FOO", 555),
            (" NOTIFY=NEVER", 555),
            (" =x", 501),
        ] {
            assert_eq!(mail(text, &ALL, 5000).map_err(|r| r.code), Err(code), "{text}");
        }
        let long_envid = format!(" ENVID={}", "a".repeat(101));
        assert_eq!(mail(&long_envid, &ALL, 1).map_err(|r| r.code), Err(501));
    }

    #[test]
    fn disabled_extensions_make_parameters_unknown() {
        let none = Extensions::NONE;
        for text in [" SIZE=1", " BODY=7BIT", " SMTPUTF8", " RET=FULL", " ENVID=x"] {
            assert_eq!(mail(text, &none, 5000).map_err(|r| r.code), Err(555), "{text}");
        }
        assert_eq!(rcpt(" NOTIFY=NEVER", &none).map_err(|r| r.code), Err(555));
        let no_chunking = Extensions { chunking: false, ..ALL };
        assert_eq!(mail(" BODY=BINARYMIME", &no_chunking, 1).map_err(|r| r.code), Err(501));
    }

    #[test]
    fn auth_parameter_is_accepted_and_recorded_nowhere() {
        for text in [
            " AUTH=<>",
            " AUTH=alice@example.org",
            " auth=e+3Dmc2@example.com",
            " SIZE=10 AUTH=<> BODY=8BITMIME",
            format!(" AUTH={}", "a".repeat(494)).as_str(),
        ] {
            assert_eq!(mail_with_auth(text).map(|p| p.size.is_some()), Ok(text.contains("SIZE")), "{text}");
        }
        assert_eq!(
            mail_with_auth(" AUTH=<> RET=FULL").unwrap(),
            MailParams { ret: Some(DsnReturn::Full), ..Default::default() }
        );
    }

    #[test]
    fn auth_parameter_errors() {
        for (text, code) in [
            (" AUTH", 501),
            (" AUTH=", 501),
            (" AUTH=a+2", 501),
            (" AUTH=a+zz@b", 501),
            (" AUTH=a=b", 501),
            (" AUTH=\u{e9}@example.org", 501),
            (" AUTH=<> AUTH=<>", 501),
            (" AUTH=<> auth=alice@example.org", 501),
        ] {
            assert_eq!(mail_with_auth(text).map_err(|r| r.code), Err(code), "{text}");
        }
        assert_eq!(mail_with_auth(" AUTH=<> AUTH=<>"), Err(Reply::DUPLICATE_PARAMETER));
        // Not offered: an unknown parameter, whatever its value.
        for text in [" AUTH=<>", " AUTH=a+2", " AUTH"] {
            assert_eq!(mail(text, &ALL, 5000).map_err(|r| r.code), Err(555), "{text}");
        }
        assert_eq!(rcpt(" AUTH=<>", &ALL).map_err(|r| r.code), Err(555), "AUTH= is a MAIL parameter");
    }

    #[test]
    fn rcpt_parameters() {
        assert_eq!(
            rcpt(" NOTIFY=success,Delay ORCPT=rfc822;user+40example.org", &ALL),
            Ok(RcptParams {
                notify: Some("success,Delay".to_string()),
                orcpt: Some("rfc822;user+40example.org".to_string()),
            })
        );
        for text in [
            " NOTIFY=NEVER,SUCCESS",
            " NOTIFY=SUCCESS,SUCCESS",
            " NOTIFY=",
            " NOTIFY=SOMETIMES",
            " ORCPT=rfc822",
            " ORCPT=;user@example.org",
            " ORCPT=rfc822;",
            " ORCPT=rfc822;a+zz",
            " NOTIFY=NEVER NOTIFY=NEVER",
        ] {
            assert_eq!(rcpt(text, &ALL).map_err(|r| r.code), Err(501), "{text}");
        }
        assert_eq!(rcpt(" SIZE=1", &ALL).map_err(|r| r.code), Err(555));
    }
}
