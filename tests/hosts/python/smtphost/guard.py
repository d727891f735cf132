"""Action validation: the host never trusts what a guest returns.

Every call's actions are checked against the contract before any of them
touches the socket or the disk. A violation is a guest fault, handled
exactly like a trap (421 and close). The rules are those of
host/src/server/guard.rs.
"""

from __future__ import annotations

import re

# The contract's reply bound (wit/session.wit, `feed` and `complete`): the
# `send` octets of one call are at most 64 per octet of input the call
# processes, plus 4096 (smtp_core::max_reply_octets).
REPLY_OCTETS_PER_INPUT_OCTET = 64
REPLY_OCTETS_PER_CALL = 4096
# Longest envelope string: the longest command line (smtp_core::LONGEST_COMMAND_LINE).
MAX_FIELD = 1048

# `call` values for ActionGuard.check besides `feed`'s input length.
COMPLETE = "complete"


class GuestFault(Exception):
    """Anything the guest did that ends its connection."""


class ActionGuard:
    """Tracks the transaction state the actions imply."""

    def __init__(self, max_size: int, max_recipients: int):
        self._open = False
        self._size = 0
        self._max_size = max_size
        self._max_recipients = max_recipients
        # Input of the `feed` whose actions ended with `message-end`: what
        # `complete` processes.
        self._input_behind_message = 0

    @property
    def in_message(self) -> bool:
        return self._open

    def check(self, actions, call=None) -> None:
        """Checks one call's whole list before any of it is executed.

        `call` is the input length (octets) for `feed`, COMPLETE for
        `complete`, and None for the calls without input.
        """
        fed = call if isinstance(call, int) else None
        input_len = self._input_behind_message if call == COMPLETE else (fed or 0)
        bound = input_len * REPLY_OCTETS_PER_INPUT_OCTET + REPLY_OCTETS_PER_CALL
        sent = 0
        for i, action in enumerate(actions):
            last = i + 1 == len(actions)
            tag = action.tag
            if tag == "send":
                sent += len(action.value)
                if sent > bound:
                    _violation(f"{sent} octets of replies in one call, more than the {bound} its input allows")
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
                if fed is not None:
                    self._input_behind_message = fed
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
            _violation("envelope field with CR, LF, NUL or longer than any command line")
    if not e.helo or not re.fullmatch("[A-Za-z0-9]+", e.protocol):
        _violation("envelope without HELO name or with a malformed protocol name")
