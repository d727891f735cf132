"""Runs one transcript through a component instance, as
tests/transcripts/README.md ("How a driver runs a file") describes."""

from __future__ import annotations

from .component import GuestConfig, GuestSession, LoadedComponent
from .guard import COMPLETE, ActionGuard
from .transcript import Transcript, Verdict


def run(component: LoadedComponent, t: Transcript, chunks: list[bytes]) -> tuple[bytes, list[bytes]]:
    """Feeds `chunks` in order; returns the output and the ended messages."""
    c = t.config
    config = GuestConfig(c.hostname, c.max_message_size, c.max_recipients, c.max_line_length, tuple(c.disabled))
    session = GuestSession(component, config, c.peer_ip, 40000)
    # The server's guard checks every call here too: a sequence the corpus
    # accepts must never look like a contract violation to a host.
    guard = ActionGuard(c.max_message_size, c.max_recipients)
    verdicts = list(t.verdicts)
    output = bytearray()
    messages: list[bytes] = []
    current: bytearray | None = None
    feeds = iter(chunks)
    actions = session.greeting()
    call = None  # what produced `actions`: see ActionGuard.check
    while True:
        guard.check(actions, call)
        ended = False
        for action in actions:
            if action.tag == "send":
                output += action.value
            elif action.tag == "message-begin":
                current = bytearray()
            elif action.tag == "message-data":
                current += action.value
            elif action.tag == "message-end":
                messages.append(bytes(current))
                current = None
                ended = True
            elif action.tag == "message-abort":
                current = None
            elif action.tag == "close":
                return bytes(output), messages
        if ended:
            verdict = verdicts.pop(0) if verdicts else Verdict("accepted", f"Q{len(messages)}")
            actions = session.complete(verdict.kind, verdict.queue_id)
            call = COMPLETE
            continue
        chunk = next(feeds, None)
        if chunk is None:
            return bytes(output), messages
        actions = session.feed(chunk)
        call = len(chunk)


def check(t: Transcript, output: bytes, messages: list[bytes]) -> None:
    """Raises AssertionError with a readable difference on any mismatch."""
    if output != t.expected:
        raise AssertionError(
            "output differs\n--- expected\n"
            + t.expected.decode("utf-8", "replace")
            + "\n--- got\n"
            + output.decode("utf-8", "replace")
        )
    if messages != t.messages:
        raise AssertionError(f"stored messages differ\n--- expected {t.messages!r}\n--- got {messages!r}")
