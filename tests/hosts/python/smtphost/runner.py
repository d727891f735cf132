"""Runs one transcript through a component instance, as
tests/transcripts/README.md ("How a driver runs a file") describes."""

from __future__ import annotations

from .component import Accept, Decision, GuestConfig, GuestSession, LoadedComponent
from .guard import ANSWER, ActionGuard
from .transcript import Answer, Transcript


def run(component: LoadedComponent, t: Transcript, chunks: list[bytes]) -> tuple[bytes, list[bytes]]:
    """Feeds `chunks` in order; returns the output and the ended messages."""
    c = t.config
    config = GuestConfig(
        c.hostname, c.max_message_size, c.max_recipients, c.max_line_length, tuple(c.disabled),
        tuple(c.ask), tuple(c.auth), c.auth_without_tls, c.require_tls,
    )
    session = GuestSession(component, config, c.peer_ip, 40000)
    # The server's guard checks every call here too: a sequence the corpus
    # accepts must never look like a contract violation to a host.
    guard = ActionGuard(c.max_message_size, c.max_recipients)
    answers = list(t.answers)
    output = bytearray()
    messages: list[bytes] = []
    current: bytearray | None = None
    feeds = iter(chunks)
    actions = session.greeting()
    call = None  # what produced `actions`: see ActionGuard.check
    while True:
        guard.check(actions, call)
        question = None
        for action in actions:
            if action.tag == "send":
                output += action.value
            elif action.tag == "message-begin":
                current = bytearray()
            elif action.tag == "message-data":
                current += action.value
            elif action.tag == "message-abort":
                current = None
            elif action.tag == "ask":
                question = action.value
                # The end-of-message question ends the message, whatever the answer.
                if question == "message-end":
                    messages.append(bytes(current))
                    current = None
            elif action.tag == "close":
                return _finished(output, messages, answers)
        if question is not None:
            actions = session.answer(_next_answer(answers, question, len(messages)))
            call = ANSWER
            continue
        chunk = next(feeds, None)
        if chunk is None:
            return _finished(output, messages, answers)
        actions = session.feed(chunk)
        call = len(chunk)


def _next_answer(answers: list[Answer], question: str, ended: int) -> Decision:
    """The decision of the next `A:` line, which must name the question
    asked; once they run out, accept: `message-end` with the queue id `Qn`
    (n counting the messages that reached their end), the others with no
    text."""
    if not answers:
        return Accept(f"Q{ended}" if question == "message-end" else None)
    answer = answers.pop(0)
    if answer.question != question:
        raise AssertionError(f"the session asked {question}, the next A: line answers {answer.question}")
    return answer.decision


def _finished(output: bytearray, messages: list[bytes], answers: list[Answer]) -> tuple[bytes, list[bytes]]:
    # An answer never asked for is a transcript that does not test what it says.
    if answers:
        raise AssertionError(f"{len(answers)} answers left over: the session asked fewer questions")
    return bytes(output), messages


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
