//! The header block written before each stored message: the envelope (which
//! would otherwise be lost, as Maildir has nowhere else to keep it), the
//! header fields decided once the content is complete, and the RFC 5321
//! section 4.4 trace.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{MessageMeta, StoredRecipient};

/// The whole header block, in this order, each field ending in CRLF:
/// `Return-Path`, one `X-Envelope-To` per recipient, `X-Envelope-Body` (the
/// envelope's flags), `end_headers` as given, then our `Received`.
///
/// `end_headers` are the fields decided at the end of the content
/// (`Authentication-Results`, `Received-SPF`), already checked by the caller
/// and each ending in CRLF; empty gives the block of a message without them.
/// They go above our `Received` because RFC 8601 section 5 and RFC 7208
/// section 9.1 want them above the trace field the receiver adds, where a
/// reader tells them from the same fields a message brought with it.
///
/// Values come from [`MessageMeta`], whose strings the host has already
/// checked for CR, LF and NUL.
pub fn trace_headers(meta: &MessageMeta, queue_id: &str, end_headers: &[u8]) -> Vec<u8> {
    copy_headers(meta, None, &meta.recipients, queue_id, end_headers)
}

/// The header block of one copy of a message: as [`trace_headers`], but
/// naming only `envelope` (the recipients this copy is for, in its
/// `X-Envelope-To` fields and its `Received` field's `for` clause), and
/// starting with `Delivered-To: {delivered_to}` when given (a local
/// mailbox's copy, as Postfix's local(8) and Dovecot's LDA write it).
///
/// Why only its own recipients: a copy is read by whoever owns the place
/// it is stored in, and naming the other envelope recipients there would
/// show every Bcc recipient to them.
pub(super) fn copy_headers(
    meta: &MessageMeta,
    delivered_to: Option<&str>,
    envelope: &[StoredRecipient],
    queue_id: &str,
    end_headers: &[u8],
) -> Vec<u8> {
    debug_assert!(end_headers.is_empty() || end_headers.ends_with(b"\r\n"), "end headers end in CRLF");
    // Writing into a Vec cannot fail, so the results are ignored.
    let mut h = Vec::with_capacity(512 + end_headers.len());
    if let Some(address) = delivered_to {
        let _ = write!(h, "Delivered-To: {address}\r\n");
    }
    let _ = write!(h, "Return-Path: <{}>\r\n", meta.reverse_path);
    for rcpt in envelope {
        let _ = write!(h, "X-Envelope-To: <{}>", rcpt.address);
        if let Some(notify) = &rcpt.notify {
            let _ = write!(h, " NOTIFY={notify}");
        }
        if let Some(orcpt) = &rcpt.orcpt {
            let _ = write!(h, " ORCPT={orcpt}");
        }
        h.extend_from_slice(b"\r\n");
    }
    let _ = write!(h, "X-Envelope-Body: {}", meta.body);
    if meta.smtputf8 {
        h.extend_from_slice(b" SMTPUTF8");
    }
    if let Some(ret) = meta.dsn_return {
        let _ = write!(h, " RET={ret}");
    }
    if let Some(envid) = &meta.dsn_envid {
        let _ = write!(h, " ENVID={envid}");
    }
    h.extend_from_slice(b"\r\n");
    h.extend_from_slice(end_headers);
    let _ = write!(h, "Received: from {helo} ([{ip}])", helo = meta.helo, ip = meta.client_ip);
    // Comments (RFC 5322 section 3.2.2) after the from clause, as Postfix
    // writes them: the TLS parameters, then the authenticated identity.
    if let Some(tls) = &meta.tls {
        let _ = write!(h, "\r\n\t(using {} with cipher {})", comment(&tls.version), comment(&tls.cipher));
    }
    if let Some(identity) = &meta.authenticated {
        let _ = write!(h, "\r\n\t(authenticated as {})", comment(identity));
    }
    let _ = write!(
        h,
        "\r\n\tby {host} (smtpcell, {by}) with {proto} id {queue_id}",
        host = meta.server_hostname,
        by = meta.handled_by,
        proto = meta.protocol,
    );
    if let [only] = envelope {
        let _ = write!(h, "\r\n\tfor <{}>", only.address);
    }
    let _ = write!(h, ";\r\n\t{}\r\n", rfc5322_date(meta.received_at));
    h
}

/// `text` as comment content (RFC 5322 section 3.2.2 `ccontent`): the
/// characters that would end or nest the comment are quoted. Callers pass
/// strings already free of CR, LF and NUL.
fn comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '(' | ')' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An RFC 5322 date-time in UTC, e.g. `Sat, 28 Nov 2026 14:12:52 +0000`.
pub fn rfc5322_date(at: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day), after
/// Howard Hinnant's well-known `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::StoredRecipient;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn meta(recipients: &[&str]) -> MessageMeta {
        MessageMeta {
            server_hostname: "mx.example.org".into(),
            client_ip: Ipv4Addr::LOCALHOST.into(),
            helo: "client.example".into(),
            reverse_path: "alice@example.org".into(),
            recipients: recipients
                .iter()
                .map(|a| StoredRecipient {
                    address: a.to_string(),
                    notify: None,
                    orcpt: None,
                    destinations: vec![crate::spool::Destination::Inbox],
                })
                .collect(),
            protocol: "ESMTP".into(),
            body: "8BITMIME",
            smtputf8: false,
            dsn_return: None,
            dsn_envid: None,
            received_at: UNIX_EPOCH + Duration::from_secs(1_795_875_172),
            handled_by: "smtpcell-guest@0.1.0".into(),
            tls: None,
            authenticated: None,
        }
    }

    const ID: &str = "1795875172.M123456P4242Q0";

    #[test]
    fn without_end_headers_the_block_is_the_envelope_then_received() {
        // The layout of every message stored before end headers existed.
        let expected = "Return-Path: <alice@example.org>\r\n\
                        X-Envelope-To: <bob@example.org>\r\n\
                        X-Envelope-Body: 8BITMIME\r\n\
                        Received: from client.example ([127.0.0.1])\r\n\
                        \tby mx.example.org (smtpcell, smtpcell-guest@0.1.0) with ESMTP id 1795875172.M123456P4242Q0\r\n\
                        \tfor <bob@example.org>;\r\n\
                        \tSat, 28 Nov 2026 14:12:52 +0000\r\n";
        assert_eq!(String::from_utf8(trace_headers(&meta(&["bob@example.org"]), ID, b"")).unwrap(), expected);
    }

    #[test]
    fn end_headers_go_below_the_envelope_and_above_received() {
        let end = b"Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=example.org\r\n\
                    Received-SPF: pass (mx.example.org: 127.0.0.1 is allowed) client-ip=127.0.0.1\r\n";
        let two = meta(&["bob@example.org", "carol@example.net"]);
        let block = String::from_utf8(trace_headers(&two, ID, end)).unwrap();
        let without = String::from_utf8(trace_headers(&two, ID, b"")).unwrap();
        let at = without.find("Received: ").unwrap();
        assert_eq!(block, format!("{}{}{}", &without[..at], std::str::from_utf8(end).unwrap(), &without[at..]));
        assert!(without[..at].ends_with("X-Envelope-To: <carol@example.net>\r\nX-Envelope-Body: 8BITMIME\r\n"));
    }

    #[test]
    fn tls_and_the_authenticated_identity_are_comments_after_from() {
        let mut m = meta(&["bob@example.org"]);
        m.protocol = "ESMTPSA".into();
        m.tls = Some(smtp_core::TlsInfo { version: "TLSv1.3".into(), cipher: "TLS_AES_256_GCM_SHA384".into() });
        m.authenticated = Some("alice) (forged".into());
        let block = String::from_utf8(trace_headers(&m, ID, b"")).unwrap();
        assert!(
            block.contains(
                "Received: from client.example ([127.0.0.1])\r\n\
                 \t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n\
                 \t(authenticated as alice\\) \\(forged)\r\n\
                 \tby mx.example.org (smtpcell, smtpcell-guest@0.1.0) with ESMTPSA id "
            ),
            "{block}"
        );
    }

    #[test]
    fn formats_known_dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        // 2000-02-29 12:34:56 UTC, a leap day in a century leap year.
        assert_eq!(rfc5322_date(UNIX_EPOCH + Duration::from_secs(951_827_696)), "Tue, 29 Feb 2000 12:34:56 +0000");
        // 2026-11-28 14:12:52 UTC.
        assert_eq!(rfc5322_date(UNIX_EPOCH + Duration::from_secs(1_795_875_172)), "Sat, 28 Nov 2026 14:12:52 +0000");
    }
}
