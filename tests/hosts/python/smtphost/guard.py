"""Action validation: the host never trusts what a guest returns.

Every call's actions are checked against the contract before any of them
touches the socket or the disk. A violation is a guest fault, handled
exactly like a trap (421 and close). The rules are those of smtp-core's one
ordering checker (guest/core/src/contract.rs), plus what this host in
particular rules out (start-tls when it offers no TLS: the server never
does, the transcript runner does for `! starttls = yes`) and what it writes
into headers (envelope fields).
"""

from __future__ import annotations

import re

# The contract's reply bound (wit/session.wit, `session`): the `send` octets
# of one call are at most 64 per octet of input the call processes, plus
# 4096 (smtp_core::max_reply_octets).
REPLY_OCTETS_PER_INPUT_OCTET = 64
REPLY_OCTETS_PER_CALL = 4096
# Longest envelope string: the longest command line (smtp_core::LONGEST_COMMAND_LINE).
MAX_FIELD = 1180

# `call` values for ActionGuard.check besides `feed`'s input length.
ANSWER = "answer"
TLS_STARTED = "tls-started"


class GuestFault(Exception):
    """Anything the guest did that ends its connection."""


class ActionGuard:
    """Tracks the session state the actions imply."""

    def __init__(self, max_size: int, max_recipients: int, tls: bool = False):
        # Between `message-begin` and `ask(message-end)` / `message-abort`.
        self._open = False
        self._size = 0
        self._max_size = max_size
        self._max_recipients = max_recipients
        # A question waits for its answer.
        self._asking = False
        self._closed = False
        # Input of the `feed` that asked the pending question: the most the
        # `answer` calls after it may process.
        self._input_behind_question = 0
        # The host can complete TLS handshakes (STARTTLS or implicit TLS),
        # so `start-tls` and `tls-started` have a meaning.
        self._tls = tls
        # `start-tls` was returned and `tls-started` not yet called.
        self._awaiting_tls = False
        # No call was checked yet: `tls-started` now is implicit TLS.
        self._first = True

    @property
    def in_message(self) -> bool:
        """Whether the client is sending message content (the span of the data timeout)."""
        return self._open

    def check(self, actions, call=None) -> None:
        """Checks that the host may make `call` now, then one call's whole
        list before any of it is executed.

        `call` is the input length (octets) for `feed`, ANSWER for `answer`,
        TLS_STARTED for `tls-started`, and None for the calls without input
        (greeting, timeout).
        """
        fed = call if isinstance(call, int) else None
        # The host's own side of the question and TLS rules: breaking them
        # is a bug here, not the guest's fault.
        if self._closed:
            raise RuntimeError("a call after close")
        if fed is not None and self._asking:
            raise RuntimeError("feed while a question is pending")
        if fed is not None and self._awaiting_tls:
            raise RuntimeError("feed before tls-started")
        if call == ANSWER and not self._asking:
            raise RuntimeError("an answer without a question")
        if call == TLS_STARTED:
            if not self._tls:
                raise RuntimeError("tls-started, but this host offers no TLS")
            if not self._awaiting_tls and not self._first:
                raise RuntimeError("tls-started without start-tls")
            self._awaiting_tls = False
        else:
            # An answer settles the question; timeout drops it
            # (wit/session.wit). tls-started leaves it pending.
            self._asking = False
        self._first = False

        input_len = self._input_behind_question if call == ANSWER else (fed or 0)
        bound = input_len * REPLY_OCTETS_PER_INPUT_OCTET + REPLY_OCTETS_PER_CALL
        sent = 0
        ended = False
        for action in actions:
            if ended:
                _violation("actions after ask, start-tls or close")
            tag = action.tag
            if tag == "send":
                sent += len(action.value)
                if sent > bound:
                    _violation(f"{sent} octets of replies in one call, more than the {bound} its input allows")
            elif tag == "ask":
                message_end = action.value == "message-end"
                if message_end != self._open:
                    _violation(
                        "ask(message-end) without message-begin" if message_end
                        else "a question inside an open message"
                    )
                self._open = False
                self._asking = True
                if fed is not None:
                    self._input_behind_question = fed
                ended = True
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
            elif tag == "message-abort":
                if not self._open:
                    _violation("message-abort without message-begin")
                self._open = False
            elif tag == "start-tls":
                if not self._tls:
                    _violation("start-tls, but the host offered no TLS")
                if self._open:
                    _violation("start-tls inside an open message")
                self._awaiting_tls = True
                ended = True
            elif tag == "close":
                if self._open:
                    _violation("close with a message open (it is aborted first)")
                self._closed = True
                ended = True
            else:
                _violation(f"unknown action {tag!r}")


def _violation(what: str):
    raise GuestFault(f"contract violation: {what}")


def _check_envelope(e, max_recipients: int) -> None:
    if not e.recipients or len(e.recipients) > max_recipients:
        _violation("message-begin with no recipients or more than the limit")
    fields = [e.helo, e.reverse_path, e.protocol, e.dsn_envid, e.authenticated]
    if e.tls is not None:
        fields += [e.tls.version, e.tls.cipher]
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
