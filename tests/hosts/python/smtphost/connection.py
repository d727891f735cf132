"""Drives one client connection the way host/src/server/connection.rs does.

Each read goes to the guest in one `feed` call, the guest's actions are
checked by the ActionGuard and executed in order, and every question is
answered by this host's policy: accept everything, and accept a message only
once it is durable (commit, then `answer` with the queue id).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from .component import Accept, Decision, Envelope, GuestConfig, GuestSession, LoadedComponent, Refuse
from .guard import ANSWER, ActionGuard, GuestFault
from .maildir import Maildir, Transaction, is_storage_full
from .trace_headers import TraceMeta

log = logging.getLogger("smtpcell-python")

# One read of client input; the whole read goes to the guest in one call.
READ_SIZE = 64 << 10
# RFC 5321 section 4.5.3.2: 5 minutes for a command, 3 for a block of data.
COMMAND_TIMEOUT = 300.0
DATA_TIMEOUT = 180.0


@dataclass
class ServerContext:
    component: LoadedComponent
    guest_config: GuestConfig
    maildir: Maildir
    hostname: str


async def serve_connection(ctx: ServerContext, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    host, port = writer.get_extra_info("peername")[:2]
    ip = ipaddress.ip_address(host)
    # An IPv4 client on a dual-stack socket is reported as ::ffff:a.b.c.d.
    ip = getattr(ip, "ipv4_mapped", None) or ip
    conn = _Connection(ctx, reader, writer, str(ip), port)
    try:
        await conn.drive()
    except GuestFault as fault:
        log.warning("%s:%s guest fault, ending this connection: %s", ip, port, fault)
        # The one reply the host writes itself: the guest that would have
        # written it is gone.
        writer.write(f"421 4.3.0 {ctx.hostname} Service unavailable, closing connection\r\n".encode())
        await _quietly(writer.drain())
    except (ConnectionError, OSError) as err:
        log.info("%s:%s client connection ended: %s", ip, port, err)
    finally:
        # Whatever did not reach commit must not stay in tmp/.
        conn.discard_pending()
        writer.close()
        await _quietly(writer.wait_closed())


class _Connection:
    def __init__(self, ctx: ServerContext, reader, writer, ip: str, port: int):
        self._ctx = ctx
        self._reader = reader
        self._writer = writer
        self._ip = ip
        self._port = port
        # A Transaction while a message is being stored, the OSError once
        # storage failed (the client still sends the rest and hears 451/452).
        self._pending: Transaction | OSError | None = None

    async def drive(self) -> None:
        config = self._ctx.guest_config
        session = GuestSession(self._ctx.component, config, self._ip, self._port)
        guard = ActionGuard(config.max_message_size, config.max_recipients)
        out = bytearray()
        actions = session.greeting()
        call = None  # what produced `actions`: see ActionGuard.check
        while True:
            guard.check(actions, call)
            question = None
            close = False
            for action in actions:
                if action.tag == "send":
                    out += action.value
                elif action.tag == "message-begin":
                    self._open(action.value)
                elif action.tag == "message-data":
                    self._write(action.value)
                elif action.tag == "message-abort":
                    self.discard_pending()
                elif action.tag == "ask":
                    question = action.value
                elif action.tag == "close":
                    close = True
            # Replies go out before a decision (storing a message takes
            # fsyncs) and before the next read, so at most one call's
            # replies are held.
            if out:
                self._writer.write(bytes(out))
                await self._writer.drain()
                out.clear()
            if question is not None:
                actions = session.answer(await self._decide(question))
                call = ANSWER
                continue
            if close:
                return
            wait = DATA_TIMEOUT if guard.in_message else COMMAND_TIMEOUT
            try:
                data = await asyncio.wait_for(self._reader.read(READ_SIZE), wait)
            except asyncio.TimeoutError:
                log.info("%s:%s client timed out", self._ip, self._port)
                actions = session.timeout()
                call = None
                continue
            if not data:
                if self._pending is not None:
                    log.info("client disconnected in the middle of a message; nothing stored")
                return
            actions = session.feed(data)
            call = len(data)

    async def _decide(self, question: str) -> Decision:
        """This host's policy, which accepts everything. Its configuration
        asks about no step and offers no AUTH, so only `message-end` comes;
        any other question gets a plain accept."""
        if question == "message-end":
            return await self._commit()
        return Accept()

    def _open(self, envelope: Envelope) -> None:
        meta = TraceMeta(
            server_hostname=self._ctx.hostname,
            client_ip=self._ip,
            handled_by=self._ctx.component.label,
            received_at=datetime.now(timezone.utc),
        )
        try:
            self._pending = self._ctx.maildir.begin(envelope, meta)
        except OSError as err:
            log.warning("cannot open storage for a message: %s", err)
            self._pending = err

    def _write(self, data: bytes) -> None:
        if not isinstance(self._pending, Transaction):
            return  # storage already failed: the client hears 451/452 at the end
        try:
            self._pending.write(data)
        except OSError as err:
            log.warning("cannot write message content: %s", err)
            self._pending = err  # write() removed the partial file

    async def _commit(self) -> Decision:
        """Makes the message durable (off the event loop: fsync blocks) and
        turns the outcome into the answer to `message-end`: accept with the
        queue id, or a temporary refusal."""
        pending, self._pending = self._pending, None

        def failure(err: OSError) -> Refuse:
            return Refuse("storage-full" if is_storage_full(err) else "local-error", permanent=False)

        if isinstance(pending, OSError):
            return failure(pending)
        if pending is None:
            return Refuse("local-error", permanent=False)  # the guard rules this out
        try:
            await asyncio.to_thread(pending.commit)
        except OSError as err:
            log.warning("cannot make the message durable: %s", err)
            return failure(err)
        log.info("message stored: %s", pending.queue_id)
        return Accept(pending.queue_id)

    def discard_pending(self) -> None:
        pending, self._pending = self._pending, None
        if isinstance(pending, Transaction):
            pending.discard()


async def _quietly(io) -> None:
    """Awaits a write or close whose failure only means the client is gone."""
    try:
        await io
    except (ConnectionError, OSError):
        pass
