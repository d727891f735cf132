"""The header block written before each stored message.

Byte for byte in the shape of host/src/spool/trace.rs: the envelope (Maildir
has nowhere else to keep it) and the RFC 5321 section 4.4 Received trace.
The Received header ends with `;CRLF TAB date CRLF`, which is how readers
(and the tests) find where the client's content starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime

from .component import Envelope


@dataclass(frozen=True)
class TraceMeta:
    server_hostname: str
    client_ip: str
    # The component version that handled the session (`name@version`).
    handled_by: str
    received_at: datetime


def trace_headers(e: Envelope, meta: TraceMeta, queue_id: str) -> bytes:
    """Every value comes from an envelope the ActionGuard checked for CR, LF
    and NUL, so nothing written here can inject a header."""
    h = [f"Return-Path: <{e.reverse_path}>\r\n"]
    for r in e.recipients:
        h.append(f"X-Envelope-To: <{r.address}>")
        if r.notify is not None:
            h.append(f" NOTIFY={r.notify}")
        if r.orcpt is not None:
            h.append(f" ORCPT={r.orcpt}")
        h.append("\r\n")
    h.append(f"X-Envelope-Body: {e.body}")
    if e.smtputf8:
        h.append(" SMTPUTF8")
    if e.dsn_return is not None:
        h.append(f" RET={e.dsn_return}")
    if e.dsn_envid is not None:
        h.append(f" ENVID={e.dsn_envid}")
    h.append("\r\n")
    h.append(f"Received: from {e.helo} ([{meta.client_ip}])\r\n")
    h.append(f"\tby {meta.server_hostname} (smtpcell python host, {meta.handled_by}) with {e.protocol} id {queue_id}")
    if len(e.recipients) == 1:
        h.append(f"\r\n\tfor <{e.recipients[0].address}>")
    h.append(f";\r\n\t{rfc5322_date(meta.received_at)}\r\n")
    return "".join(h).encode()


def rfc5322_date(at: datetime) -> str:
    """An RFC 5322 date-time in UTC, e.g. `Sat, 28 Nov 2026 14:12:52 +0000`."""
    # usegmt=False keeps the numeric zone smtpcell writes (`+0000`, not `GMT`).
    return format_datetime(at.astimezone(timezone.utc).replace(microsecond=0))
