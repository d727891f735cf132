//! The header block written before each stored message: the envelope (which
//! would otherwise be lost, as Maildir has nowhere else to keep it) and the
//! RFC 5321 section 4.4 trace.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::MessageMeta;

/// `Return-Path`, one `X-Envelope-To` per recipient, the envelope flags, and
/// `Received`, each ending in CRLF. Values come from [`MessageMeta`], whose
/// strings the host has already checked for CR, LF and NUL.
pub fn trace_headers(meta: &MessageMeta, queue_id: &str) -> Vec<u8> {
    let mut h = String::with_capacity(512);
    let _ = write!(h, "Return-Path: <{}>\r\n", meta.reverse_path);
    for rcpt in &meta.recipients {
        let _ = write!(h, "X-Envelope-To: <{}>", rcpt.address);
        if let Some(notify) = &rcpt.notify {
            let _ = write!(h, " NOTIFY={notify}");
        }
        if let Some(orcpt) = &rcpt.orcpt {
            let _ = write!(h, " ORCPT={orcpt}");
        }
        h.push_str("\r\n");
    }
    let _ = write!(h, "X-Envelope-Body: {}", meta.body);
    if meta.smtputf8 {
        h.push_str(" SMTPUTF8");
    }
    if let Some(ret) = meta.dsn_return {
        let _ = write!(h, " RET={ret}");
    }
    if let Some(envid) = &meta.dsn_envid {
        let _ = write!(h, " ENVID={envid}");
    }
    h.push_str("\r\n");
    let _ = write!(
        h,
        "Received: from {helo} ([{ip}])\r\n\tby {host} (smtpcell, {by}) with {proto} id {queue_id}",
        helo = meta.helo,
        ip = meta.client_ip,
        host = meta.server_hostname,
        by = meta.handled_by,
        proto = meta.protocol,
    );
    if let [only] = meta.recipients.as_slice() {
        let _ = write!(h, "\r\n\tfor <{}>", only.address);
    }
    let _ = write!(h, ";\r\n\t{}\r\n", rfc5322_date(meta.received_at));
    h.into_bytes()
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
    use std::time::Duration;

    #[test]
    fn formats_known_dates() {
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        // 2000-02-29 12:34:56 UTC, a leap day in a century leap year.
        assert_eq!(rfc5322_date(UNIX_EPOCH + Duration::from_secs(951_827_696)), "Tue, 29 Feb 2000 12:34:56 +0000");
        // 2026-11-28 14:12:52 UTC.
        assert_eq!(rfc5322_date(UNIX_EPOCH + Duration::from_secs(1_795_875_172)), "Sat, 28 Nov 2026 14:12:52 +0000");
    }
}
