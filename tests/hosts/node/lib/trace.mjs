// The header block written before each stored message, byte for byte in the
// shape of host/src/spool/trace.rs: the envelope (Maildir has nowhere else
// to keep it) and the RFC 5321 section 4.4 Received trace. The Received
// header ends with `;CRLF TAB date CRLF`, which is how readers (and the
// tests) find where the client's content starts.

const BODY = { "seven-bit": "7BIT", "eight-bit-mime": "8BITMIME", "binary-mime": "BINARYMIME" };
const RET = { full: "FULL", headers: "HDRS" };

/**
 * @param envelope the guest's envelope (already checked by the ActionGuard:
 *   no CR, LF or NUL anywhere, so nothing here can inject a header)
 * @param meta {serverHostname, clientIp, handledBy, receivedAt: Date}
 */
export function traceHeaders(envelope, meta, queueId) {
  let h = `Return-Path: <${envelope.reversePath}>\r\n`;
  for (const r of envelope.recipients) {
    h += `X-Envelope-To: <${r.address}>`;
    if (r.notify != null) h += ` NOTIFY=${r.notify}`;
    if (r.orcpt != null) h += ` ORCPT=${r.orcpt}`;
    h += "\r\n";
  }
  h += `X-Envelope-Body: ${BODY[envelope.body]}`;
  if (envelope.smtputf8) h += " SMTPUTF8";
  if (envelope.dsnReturn != null) h += ` RET=${RET[envelope.dsnReturn]}`;
  if (envelope.dsnEnvid != null) h += ` ENVID=${envelope.dsnEnvid}`;
  h += "\r\n";
  h += `Received: from ${envelope.helo} ([${meta.clientIp}])\r\n`;
  h += `\tby ${meta.serverHostname} (smtpcell node host, ${meta.handledBy}) with ${envelope.protocol} id ${queueId}`;
  if (envelope.recipients.length === 1) h += `\r\n\tfor <${envelope.recipients[0].address}>`;
  h += `;\r\n\t${rfc5322Date(meta.receivedAt)}\r\n`;
  return Buffer.from(h);
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** An RFC 5322 date-time in UTC, e.g. `Sat, 28 Nov 2026 14:12:52 +0000`. */
export function rfc5322Date(date) {
  const two = (n) => String(n).padStart(2, "0");
  return `${DAYS[date.getUTCDay()]}, ${two(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()} `
    + `${two(date.getUTCHours())}:${two(date.getUTCMinutes())}:${two(date.getUTCSeconds())} +0000`;
}
