"""Runs one transcript through a component instance, as
tests/transcripts/README.md ("How a driver runs a file") describes."""

from __future__ import annotations

from .component import Accept, Decision, GuestConfig, GuestSession, LoadedComponent
from .guard import ANSWER, TLS_STARTED, ActionGuard
from .transcript import Answer, Handshake, Transcript


def run(component: LoadedComponent, t: Transcript, segments: list[list[bytes]]) -> tuple[bytes, list[bytes]]:
    """Feeds each segment's chunks in order, executes the actions, answers
    the questions and completes the TLS handshakes (`T:` lines); returns
    the output and the ended messages. `segments` holds the feed inputs of
    each segment (see Transcript.feed_plans)."""
    handshakes = t.starttls_handshakes()
    if len(segments) != len(handshakes) + 1:
        raise ValueError(f"a feeding plan of {len(segments)} segments for a transcript of {len(handshakes) + 1}")
    c = t.config
    config = GuestConfig(
        c.hostname, c.max_message_size, c.max_recipients, c.max_line_length, tuple(c.disabled),
        tuple(c.ask), tuple(c.auth), c.auth_without_tls, c.require_tls, c.starttls, c.max_auth_failures,
    )
    session = GuestSession(component, config, c.peer_ip, 40000)
    # The server's guard checks every call here too: a sequence the corpus
    # accepts must never look like a contract violation to a host. It takes
    # start-tls and tls-started only where the transcript's host offers
    # TLS: STARTTLS switched on, or a handshake before the greeting.
    implicit = t.implicit_tls()
    guard = ActionGuard(c.max_message_size, c.max_recipients, tls=c.starttls or implicit is not None)
    answers = list(t.answers)
    output = bytearray()
    messages: list[bytes] = []
    current: bytearray | None = None
    segment = 0
    feeds = iter(segments[0])
    greeted = False
    question: str | None = None
    start_tls = False
    while True:
        if implicit is not None:
            # RFC 8314: the handshake comes before the first byte of SMTP.
            actions = session.tls_started(implicit.version, implicit.cipher)
            call = TLS_STARTED
            implicit = None
        elif not greeted:
            actions = session.greeting()
            call = None  # what produced `actions`: see ActionGuard.check
            greeted = True
        elif question is not None:
            # The end-of-message question ends the message, whatever the answer.
            if question == "message-end":
                messages.append(bytes(current))
                current = None
            actions = session.answer(_next_answer(answers, question, len(messages)))
            call = ANSWER
            question = None
        elif start_tls:
            start_tls = False
            if segment >= len(handshakes):
                raise AssertionError("the session emitted start-tls, but no T: line follows")
            handshake = handshakes[segment]
            # What is left of the segment is plaintext the client sent
            # behind its STARTTLS: the host discards what it read before the
            # handshake (RFC 3207 section 6), so it is never fed.
            segment += 1
            feeds = iter(segments[segment])
            actions = session.tls_started(handshake.version, handshake.cipher)
            call = TLS_STARTED
        else:
            chunk = next(feeds, None)
            if chunk is None:
                if segment < len(handshakes):
                    raise AssertionError(
                        f"line {handshakes[segment].line}: a TLS handshake, "
                        "but the session did not emit start-tls before it"
                    )
                return _finished(output, messages, answers, None)
            actions = session.feed(chunk)
            call = len(chunk)
        guard.check(actions, call)
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
            elif action.tag == "start-tls":
                start_tls = True
            elif action.tag == "close":
                return _finished(output, messages, answers, handshakes[segment] if segment < len(handshakes) else None)


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


def _finished(
    output: bytearray, messages: list[bytes], answers: list[Answer], handshake_left: Handshake | None
) -> tuple[bytes, list[bytes]]:
    # An answer never asked for, or a handshake never reached, is a
    # transcript that does not test what it says.
    if answers:
        raise AssertionError(f"{len(answers)} answers left over: the session asked fewer questions")
    if handshake_left is not None:
        raise AssertionError(f"line {handshake_left.line}: a TLS handshake the session closed before")
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
