"""Action validation: the host never trusts what a guest returns.

Every call's actions are checked against the contract before any of them
touches the socket or the disk. A violation is a guest fault, handled
exactly like a trap (421 and close). The rules are those of
host/src/server/guard.rs.
"""

from __future__ import annotations

import re

# Bytes one call may ask the host to send (a reply is a few hundred bytes).
MAX_SEND_PER_CALL = 1 << 20
# Longest envelope string accepted (RFC 5321 paths are at most 256 octets).
MAX_FIELD = 1024


class GuestFault(Exception):
    """Anything the guest did that ends its connection."""


class ActionGuard:
    """Tracks the transaction state the actions imply."""

    def __init__(self, max_size: int, max_recipients: int):
        self._open = False
        self._size = 0
        self._max_size = max_size
        self._max_recipients = max_recipients

    @property
    def in_message(self) -> bool:
        return self._open

    def check(self, actions) -> None:
        """Checks one call's whole list before any of it is executed."""
        sent = 0
        for i, action in enumerate(actions):
            last = i + 1 == len(actions)
            tag = action.tag
            if tag == "send":
                sent += len(action.value)
                if sent > MAX_SEND_PER_CALL:
                    _violation("more than 1 MiB of replies in one call")
            elif tag == "message-begin":
                if self._open:
                    _violation("message-begin inside an open message")
                _check_envelope(action.value, self._max_recipients)
                self._open = True
                self._size = 0
            elif tag == "message-data":
                if not self._open:
                    _violation("message-data without message-begin")
                self._size += len(action.value)
                if self._size > self._max_size:
                    _violation("message-data beyond the configured size limit")
            elif tag == "message-end":
                if not self._open:
                    _violation("message-end without message-begin")
                if not last:
                    _violation("actions after message-end (they must wait for the verdict)")
                self._open = False
            elif tag == "message-abort":
                if not self._open:
                    _violation("message-abort without message-begin")
                self._open = False
            elif tag == "start-tls":
                _violation("start-tls, but the host offered no TLS")
            elif tag == "close":
                if not last:
                    _violation("actions after close")
            else:
                _violation(f"unknown action {tag!r}")


def _violation(what: str):
    raise GuestFault(f"contract violation: {what}")


def _check_envelope(e, max_recipients: int) -> None:
    if not e.recipients or len(e.recipients) > max_recipients:
        _violation("message-begin with no recipients or more than the limit")
    fields = [e.helo, e.reverse_path, e.protocol, e.dsn_envid]
    for r in e.recipients:
        fields += [r.address, r.notify, r.orcpt]
    for value in fields:
        if value is None:
            continue
        # Length in octets, as the header writer will emit them.
        if len(value.encode()) > MAX_FIELD or re.search("[\r\n\0]", value):
            _violation("envelope field with CR, LF, NUL or over 1024 octets")
    if not e.helo or not re.fullmatch("[A-Za-z0-9]+", e.protocol):
        _violation("envelope without HELO name or with a malformed protocol name")
