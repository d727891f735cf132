"""Maildir delivery with the durability rules of host/src/spool/maildir.rs.

A message is written under tmp/, the file is fsynced, renamed into new/, and
new/ itself is fsynced; only then does the guest hear the answer. A reader
never sees a partial file, a crash after the 250 cannot lose the message,
and whatever does not reach commit is removed from tmp/.
"""

from __future__ import annotations

import errno
import itertools
import os
import time
from pathlib import Path

from .component import Envelope
from .trace_headers import TraceMeta, trace_headers


class Maildir:
    def __init__(self, root: str | Path, hostname: str):
        self.root = Path(root)
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # Kept open so each commit can fsync new/ without reopening it.
        self._new_dir = os.open(self.root / "new", os.O_RDONLY | os.O_DIRECTORY)
        # The Maildir convention escapes `/` and `:` in the host part of names.
        self._host_part = hostname.replace("/", "\\057").replace(":", "\\072")
        self._counter = itertools.count()

    def _unique(self) -> str:
        """Unique across processes and restarts: seconds and microseconds of
        the clock, the process id and a per-process counter. O_EXCL turns
        any residual collision into a retry."""
        micros = time.time_ns() // 1000
        return f"{micros // 1_000_000}.M{micros % 1_000_000}P{os.getpid()}Q{next(self._counter)}"

    def begin(self, envelope: Envelope, meta: TraceMeta) -> Transaction:
        """Opens storage for one message and writes its trace headers."""
        while True:
            queue_id = self._unique()
            name = f"{queue_id}.{self._host_part}"
            tmp_path = self.root / "tmp" / name
            try:
                fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            txn = Transaction(fd, tmp_path, self.root / "new" / name, self._new_dir, queue_id)
            txn.write(trace_headers(envelope, meta, queue_id))
            return txn


class Transaction:
    """One message being written; discard() unless commit() succeeded."""

    def __init__(self, fd: int, tmp_path: Path, new_path: Path, new_dir: int, queue_id: str):
        self._file = os.fdopen(fd, "wb", buffering=64 << 10)
        self._tmp_path = tmp_path
        self._new_path = new_path
        self._new_dir = new_dir
        self.queue_id = queue_id

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError:
            self.discard()
            raise

    def commit(self) -> None:
        """Makes the message durable and visible. Blocks on fsync: call it
        off the event loop. Returns only once the message survives a crash."""
        file, self._file = self._file, None
        try:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            os.rename(self._tmp_path, self._new_path)
            os.fsync(self._new_dir)
        except OSError:
            # The client is about to hear 4xx and will send it again: the
            # message must not stay half-visible.
            _quietly(file.close)
            _quietly(self._tmp_path.unlink)
            _quietly(self._new_path.unlink)
            raise

    def discard(self) -> None:
        """Removes everything written (abort, disconnect, guest fault, write error)."""
        if self._file is None:
            return
        file, self._file = self._file, None
        _quietly(file.close)
        _quietly(self._tmp_path.unlink)


def is_storage_full(err: OSError) -> bool:
    """Whether an I/O error means "out of space" (452) rather than a generic 451."""
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


def _quietly(f) -> None:
    try:
        f()
    except OSError:
        pass
