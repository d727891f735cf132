"""Parser for the transcript files in tests/transcripts.

The format and the way a driver runs a file are specified in
tests/transcripts/README.md; this mirrors tests/harness/transcript.rs so that
every host reads the corpus the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .component import Accept, Decision, Refuse

# Extension names a transcript may disable (README.md, `disable`).
EXTENSION_NAMES = (
    "pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8",
    "chunking", "binarymime", "dsn", "help",
)
# Steps a transcript may `ask` about (wit/session.wit `questions`).
ASKABLE = ("connect", "helo", "mail", "rcpt")
# SASL mechanisms a transcript may offer with `auth` (wit/session.wit `auth-mechanisms`).
MECHANISMS = ("plain", "login")
# Every question an `A:` line may name: the askable steps plus the two always asked.
QUESTIONS = (*ASKABLE, "auth", "message-end")
# The WIT names of `reason`, as `A: ... refuse REASON` spells them.
REASONS = (
    "relay-denied", "no-such-user", "mailbox-full", "sender-refused", "policy", "greylisted",
    "rate-limited", "auth-failed", "auth-required", "encryption-required", "storage-full", "local-error",
)


@dataclass
class TranscriptConfig:
    hostname: str = "smtpcell.test"
    max_message_size: int = 10_240_000
    max_recipients: int = 100
    max_line_length: int = 1000
    disabled: list[str] = field(default_factory=list)
    peer_ip: str = "192.0.2.1"
    ask: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    auth_without_tls: bool = False
    require_tls: bool = False
    starttls: bool = False
    # smtp_core::Config::DEFAULT_MAX_AUTH_FAILURES; 0 is no limit.
    max_auth_failures: int = 3


@dataclass(frozen=True)
class Handshake:
    """A `T:` line: the TLS handshake completes at this point of the
    client's stream. `after` counts the `C` lines before it: 0 is implicit
    TLS (RFC 8314), before the greeting."""

    after: int
    version: str
    cipher: str
    # The line's number in the file, for error messages.
    line: int


@dataclass(frozen=True)
class Answer:
    """An `A:` line: the question it expects and the decision on it."""

    question: str
    decision: Decision


@dataclass
class Transcript:
    name: str
    config: TranscriptConfig = field(default_factory=TranscriptConfig)
    # Client input, one entry per `C` line.
    client: list[bytes] = field(default_factory=list)
    # The TLS handshakes (`T:` lines), in order.
    handshakes: list[Handshake] = field(default_factory=list)
    expected: bytes = b""
    answers: list[Answer] = field(default_factory=list)
    # Contents of the messages that end, in order.
    messages: list[bytes] = field(default_factory=list)

    def input(self) -> bytes:
        return b"".join(self.client)

    def implicit_tls(self) -> Handshake | None:
        """The implicit TLS handshake (a `T:` line before the first `C` line), if any."""
        first = self.handshakes[0] if self.handshakes else None
        return first if first is not None and first.after == 0 else None

    def starttls_handshakes(self) -> list[Handshake]:
        """The STARTTLS handshakes: the `T:` lines after some client input."""
        return [h for h in self.handshakes if h.after > 0]

    def segments(self) -> list[list[bytes]]:
        """The client lines cut into segments at the STARTTLS handshakes (a
        client sends nothing between its STARTTLS and the end of the
        handshake)."""
        out = []
        start = 0
        for h in self.starttls_handshakes():
            out.append(self.client[start:h.after])
            start = h.after
        out.append(self.client[start:])
        return out

    def feed_plans(self) -> list[tuple[str, list[list[bytes]]]]:
        """The ways the input is split into feed calls, each as the feed
        inputs of every segment; all must agree. Splits stay within a
        segment."""
        lines = self.segments()
        inputs = [b"".join(segment) for segment in lines]
        return [
            ("per-line", lines),
            ("all-at-once", [[data] if data else [] for data in inputs]),
            ("byte-by-byte", [[data[i:i + 1] for i in range(len(data))] for data in inputs]),
        ]


def parse(name: str, text: str) -> Transcript:
    """Parses one transcript; raises ValueError naming `file:line`."""
    t = Transcript(name)
    expected = bytearray()
    seen_exchange = False
    # Like Rust's str::lines: split on LF, drop one trailing CR.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        try:
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith("! "):
                if seen_exchange:
                    raise ValueError("configuration after the first C/S line")
                _set_config(t.config, line[2:])
                continue
            if not (len(line) == 2 or line[2] == " "):
                raise ValueError("expected a two-character tag and a space")
            tag, rest = line[:2], line[3:]
            if tag == "C:":
                seen_exchange = True
                t.client.append(rest.encode() + b"\r\n")
            elif tag == "C=":
                seen_exchange = True
                t.client.append(unescape(rest))
            elif tag == "S:":
                seen_exchange = True
                expected += rest.encode() + b"\r\n"
            elif tag == "T:":
                seen_exchange = True
                t.handshakes.append(_parse_handshake(t, rest, number))
            elif tag == "A:":
                t.answers.append(_parse_answer(rest))
            elif tag == "M=":
                t.messages.append(unescape(rest))
            else:
                raise ValueError(f"unknown tag {tag!r}")
        except ValueError as err:
            raise ValueError(f"{name}:{number}: {err}") from None
    t.expected = bytes(expected)
    return t


def load_corpus(directory: str | Path) -> list[Transcript]:
    """Every `*.txt` file of a directory, parsed, sorted by name."""
    paths = sorted(Path(directory).glob("*.txt"))
    return [parse(p.name, p.read_text(encoding="utf-8")) for p in paths]


def _set_config(config: TranscriptConfig, assignment: str) -> None:
    key, eq, value = assignment.partition("=")
    if not eq:
        raise ValueError("expected `key = value`")
    key, value = key.strip(), value.strip()
    if key == "hostname":
        config.hostname = value
    elif key == "max-message-size":
        config.max_message_size = _integer(value)
    elif key == "max-recipients":
        config.max_recipients = _integer(value)
    elif key == "max-line-length":
        config.max_line_length = _integer(value)
    elif key == "max-auth-failures":
        config.max_auth_failures = _integer(value)
    elif key == "disable":
        config.disabled = _names(value, EXTENSION_NAMES, "extension", key)
    elif key == "peer-ip":
        config.peer_ip = value
    elif key == "ask":
        config.ask = _names(value, ASKABLE, "step", key)
    elif key == "auth":
        config.auth = _names(value, MECHANISMS, "mechanism", key)
    elif key == "auth-without-tls":
        config.auth_without_tls = _yes_no(key, value)
    elif key == "require-tls":
        config.require_tls = _yes_no(key, value)
    elif key == "starttls":
        config.starttls = _yes_no(key, value)
    else:
        raise ValueError(f"unknown configuration key {key!r}")


def _parse_handshake(t: Transcript, text: str, line: int) -> Handshake:
    """`T: VERSION CIPHER`, two words, as host/src/transcript/parse.rs reads it."""
    after = len(t.client)
    if t.handshakes and t.handshakes[-1].after == after:
        raise ValueError("a second TLS handshake with no client line since the first")
    words = text.split(" ")
    if len(words) != 2 or "" in words:
        raise ValueError("expected `T: VERSION CIPHER`, two words")
    return Handshake(after, words[0], words[1], line)


def _yes_no(key: str, value: str) -> bool:
    if value not in ("yes", "no"):
        raise ValueError(f"`{key}` wants yes or no, not {value!r}")
    return value == "yes"


def _names(value: str, known: tuple[str, ...], what: str, key: str) -> list[str]:
    """A comma list of names, each one of `known` (empty entries are skipped)."""
    names = [name for name in (s.strip().lower() for s in value.split(",")) if name]
    # A typo would otherwise silently test the default configuration.
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r} in `{key}`")
    return names


def _integer(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise ValueError(f"not a number: {text!r}")
    return int(text)


def _parse_answer(line: str) -> Answer:
    """`QUESTION accept [TEXT]` or `QUESTION refuse REASON permanent|temporary|disconnect
    [TEXT]`, words split at single spaces and TEXT the rest of the line as is
    (a refusal's text may hold spaces), as host/src/transcript/parse.rs reads it."""
    question, verb, rest = _pad(line.split(" ", 2), 3)
    if question not in QUESTIONS:
        raise ValueError(f"unknown question {question!r}")
    if verb == "accept":
        return Answer(question, Accept(rest))
    if verb != "refuse" or rest is None:
        raise ValueError(
            "expected `accept [text]` or `refuse reason permanent|temporary|disconnect [text]` after the question"
        )
    reason, duration, text = _pad(rest.split(" ", 2), 3)
    if reason not in REASONS:
        raise ValueError(f"unknown refusal reason {reason!r}")
    if duration not in ("permanent", "temporary", "disconnect"):
        raise ValueError(f"expected permanent, temporary or disconnect, not {duration!r}")
    return Answer(question, Refuse(reason, duration == "permanent", text, duration == "disconnect"))


def _pad(parts: list[str], n: int) -> list[str | None]:
    """`parts` made `n` long with None for the missing ones."""
    return parts + [None] * (n - len(parts))


_SIMPLE_ESCAPES = {ord("r"): 13, ord("n"): 10, ord("t"): 9, ord("0"): 0, ord("\\"): 0x5C}


def unescape(text: str) -> bytes:
    """Decodes `\\r \\n \\t \\0 \\\\ \\xHH`; every other byte is literal."""
    src = text.encode()
    out = bytearray()
    i = 0
    while i < len(src):
        b = src[i]
        i += 1
        if b != 0x5C:
            out.append(b)
            continue
        e = src[i] if i < len(src) else None
        i += 1
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
        elif e == ord("x"):
            digits = src[i:i + 2].decode("latin-1")
            if not re.fullmatch(r"[0-9a-fA-F]{2}", digits):
                raise ValueError("\\x needs two hex digits")
            out.append(int(digits, 16))
            i += 2
        else:
            raise ValueError(f"unknown escape \\{chr(e) if e is not None else ' '}")
    return bytes(out)
