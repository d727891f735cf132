"""Loads the protocol component with wasmtime-py and runs sessions in it.

The component is compiled once; every session gets a fresh Store and
instance, as the contract asks, so a trap or a misbehaving guest can only
take its own connection down.

What the guest is granted: Rust's standard library makes it import wasi:cli,
wasi:io, wasi:clocks, wasi:random and wasi:filesystem, so the linker offers
WASI p2 (add_wasip2), with an empty WasiConfig per store: no arguments, no
environment variables, no preopened directories, stdin empty, stdout and
stderr discarded. Each store also caps linear memory and gives every call a
fuel budget, so a runaway loop or a memory bomb ends that session alone.

Every WIT variant crosses as `Variant(tag, payload)`. wasmtime-py guesses
per variant whether it should be passed tagged or as a bare payload, from
whether its cases' Python classes overlap. For `answer`
(`accept(option<string>)` or `refuse(refusal)`) it guesses bare, and then
every value is taken for `accept` (an option takes any object for none or
some) and a `refuse` cannot be passed at all (wasmtime-py 50.0.1). So this
module makes it treat every variant as tagged, which the contract's other
variants already are.
"""

from __future__ import annotations

from dataclasses import dataclass

import wasmtime
from wasmtime import Config, Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Record, Variant, VariantType

from .guard import GuestFault

RECEIVER = "smtp:session/receiver@3.0.0"
METHODS = ("greeting", "feed", "answer", "tls-started", "timeout")
# Linear memory per instance, as the native host's default (--guest-memory-mib).
MAX_MEMORY = 16 << 20
# Instructions (roughly) one call may execute: a 64 KiB feed of DATA needs
# about 1 million, and an endless loop is stopped within half a second.
FUEL_PER_CALL = 100_000_000

BODY_TYPES = {"seven-bit": "7BIT", "eight-bit-mime": "8BITMIME", "binary-mime": "BINARYMIME"}
DSN_RETURNS = {"full": "FULL", "headers": "HDRS"}

# See the module's doc: `refuse` cannot be passed otherwise.
VariantType._tagged = lambda self: True


@dataclass(frozen=True)
class Recipient:
    address: str
    notify: str | None
    orcpt: str | None


@dataclass(frozen=True)
class TlsInfo:
    version: str
    cipher: str


@dataclass(frozen=True)
class Envelope:
    """The guest's envelope, with the WIT's kebab-case names made Python."""

    helo: str
    reverse_path: str
    recipients: tuple[Recipient, ...]
    protocol: str
    body: str  # 7BIT, 8BITMIME or BINARYMIME
    smtputf8: bool
    declared_size: int | None
    dsn_return: str | None  # FULL or HDRS
    dsn_envid: str | None
    tls: TlsInfo | None
    authenticated: str | None


@dataclass(frozen=True)
class Action:
    """`tag` is the WIT case name; `value` is bytes, an Envelope, the name
    of the question asked (`message-end`, `rcpt`, ...: these hosts decide by
    the name alone) or None."""

    tag: str
    value: bytes | Envelope | str | None = None


@dataclass(frozen=True)
class Accept:
    """The WIT `accept`: `text` is the queue id at `message-end`, the
    identity at `auth`, ignored elsewhere."""

    text: str | None = None


@dataclass(frozen=True)
class Refuse:
    """The WIT `refuse`; `reason` is the WIT name (`storage-full`, ...)."""

    reason: str
    permanent: bool
    text: str | None = None
    # End the session with the refusal (421, then close).
    disconnect: bool = False


# The host's decision on the pending question (WIT `answer`).
Decision = Accept | Refuse


@dataclass(frozen=True)
class GuestConfig:
    hostname: str
    max_message_size: int
    max_recipients: int
    max_line_length: int
    # Transcript names of the extensions to switch off (`8bitmime`, ...).
    disabled: tuple[str, ...] = ()
    # Steps to ask about (`connect`, `helo`, `mail`, `rcpt`) and SASL
    # mechanisms to offer (`plain`, `login`): none by default, so the host
    # is asked nothing but the end of a message.
    ask: tuple[str, ...] = ()
    auth: tuple[str, ...] = ()
    auth_without_tls: bool = False
    require_tls: bool = False
    # Offer STARTTLS. Only the transcript runner sets it, standing in for
    # the handshake; the server cannot upgrade the stream.
    starttls: bool = False
    # Failed AUTH commands before the session ends: the core's default
    # (smtp_core::Config::DEFAULT_MAX_AUTH_FAILURES); 0 is no limit.
    max_auth_failures: int = 3

    def to_wit(self) -> Record:
        on = {
            "pipelining", "size", "eightbitmime", "enhancedstatuscodes", "smtputf8",
            "chunking", "binarymime", "dsn", "help",
        }
        on -= {"eightbitmime" if d == "8bitmime" else d for d in self.disabled}
        if self.starttls:
            on.add("starttls")
        return _record(
            hostname=self.hostname,
            max_message_size=self.max_message_size,
            max_recipients=self.max_recipients,
            max_line_length=self.max_line_length,
            extensions=on,
            questions=set(self.ask),
            auth_mechanisms=set(self.auth),
            auth_without_tls=self.auth_without_tls,
            require_tls=self.require_tls,
            max_auth_failures=self.max_auth_failures,
        )


class LoadedComponent:
    """A compiled component and the linker that instantiates it."""

    def __init__(self, path: str):
        config = Config()
        config.consume_fuel = True
        self._engine = Engine(config)
        self._component = Component.from_file(self._engine, path)
        self._linker = Linker(self._engine)
        self._linker.add_wasip2()
        receiver = self._component.get_export_index(RECEIVER)
        if receiver is None:
            raise ValueError(f"{path} does not export {RECEIVER}")
        index = lambda name: self._component.get_export_index(name, receiver)  # noqa: E731
        self._exports = {
            "info": index("info"),
            "constructor": index("[constructor]session"),
            **{m: index(f"[method]session.{m}") for m in METHODS},
        }
        missing = [name for name, i in self._exports.items() if i is None]
        if missing:
            raise ValueError(f"{path}: {RECEIVER} lacks {', '.join(missing)}")
        # A throw-away instance answers who the component is.
        store, instance = self.instantiate()
        info = _call(store, instance.get_func(store, self._exports["info"]))
        self.name, self.version, self.contract = info.name, info.version, info.contract

    @property
    def label(self) -> str:
        """`name@version`, for logs and trace headers."""
        return f"{self.name}@{self.version}"

    def instantiate(self) -> tuple[Store, wasmtime.component.Instance]:
        store = Store(self._engine)
        store.set_wasi(WasiConfig())
        store.set_limits(memory_size=MAX_MEMORY)
        # Instantiation runs the component's start code, which burns fuel too.
        store.set_fuel(FUEL_PER_CALL)
        try:
            return store, self._linker.instantiate(store, self._component)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as err:
            raise GuestFault(f"instantiation failed: {err}") from err

    def func(self, store: Store, instance, name: str):
        return instance.get_func(store, self._exports[name])


class GuestSession:
    """One session in its own instance. Any failure inside the guest raises
    GuestFault, after which the session must not be used again."""

    def __init__(self, component: LoadedComponent, config: GuestConfig, peer_ip: str, peer_port: int):
        self._store, instance = component.instantiate()
        self._funcs = {m: component.func(self._store, instance, m) for m in METHODS}
        constructor = component.func(self._store, instance, "constructor")
        self._session = _call(self._store, constructor, config.to_wit(), _record(ip=peer_ip, port=peer_port))
        self._poisoned = False

    def greeting(self) -> list[Action]:
        return self._call("greeting")

    def feed(self, data: bytes) -> list[Action]:
        return self._call("feed", bytes(data))

    def answer(self, decision: Decision) -> list[Action]:
        """The decision on the pending question."""
        if isinstance(decision, Accept):
            return self._call("answer", Variant("accept", decision.text))
        refusal = _record(
            reason=decision.reason, permanent=decision.permanent, text=decision.text, disconnect=decision.disconnect
        )
        return self._call("answer", Variant("refuse", refusal))

    def tls_started(self, version: str, cipher: str) -> list[Action]:
        """The TLS handshake is complete (after `start-tls`, or before the
        greeting for implicit TLS)."""
        return self._call("tls-started", _record(version=version, cipher=cipher))

    def timeout(self) -> list[Action]:
        return self._call("timeout")

    def _call(self, method: str, *args) -> list[Action]:
        if self._poisoned:
            raise GuestFault("the instance already faulted")
        try:
            raw = _call(self._store, self._funcs[method], self._session, *args)
            return [_action(v) for v in raw]
        except GuestFault:
            self._poisoned = True
            raise


def _call(store: Store, func, *args):
    """Calls a guest function with a fresh fuel budget; failures become GuestFault."""
    store.set_fuel(FUEL_PER_CALL)
    try:
        return func(store, *args)
    except (wasmtime.WasmtimeError, wasmtime.Trap) as err:
        # The last line is the cause; the wasm backtrace above it names
        # nothing but function indices.
        raise GuestFault(f"guest trapped: {str(err).strip().splitlines()[-1]}") from err
    except (TypeError, ValueError) as err:
        # A value that does not fit the contract's types.
        raise GuestFault(f"guest returned a malformed value: {err}") from err


def _record(**fields) -> Record:
    """A WIT record: wasmtime-py matches fields by their kebab-case names."""
    record = Record()
    for name, value in fields.items():
        setattr(record, name.replace("_", "-"), value)
    return record


def _action(v: Variant) -> Action:
    if v.tag == "message-begin":
        e = v.payload
        return Action(v.tag, Envelope(
            helo=e.helo,
            reverse_path=getattr(e, "reverse-path"),
            recipients=tuple(Recipient(r.address, r.notify, r.orcpt) for r in e.recipients),
            protocol=e.protocol,
            body=BODY_TYPES[e.body],
            smtputf8=e.smtputf8,
            declared_size=getattr(e, "declared-size"),
            dsn_return=None if getattr(e, "dsn-return") is None else DSN_RETURNS[getattr(e, "dsn-return")],
            dsn_envid=getattr(e, "dsn-envid"),
            tls=None if e.tls is None else TlsInfo(e.tls.version, e.tls.cipher),
            authenticated=e.authenticated,
        ))
    if v.tag == "ask":
        return Action(v.tag, v.payload.tag)
    return Action(v.tag, v.payload)
