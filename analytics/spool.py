"""The spool: hits Redis could not take, kept on local disk until they are counted.

Each process appends to a file of its own under ``<data_dir>/spool/``, holding an exclusive lock
on it while it lives; a file whose lock is free belongs to a process that has gone, and the next
process to look takes it over and replays it. A record is one call of the hit script exactly as
it was (or would have been) sent, with its writer's sequence number, so replaying a record
twice counts it once. It holds what the counters need (site, time, hashed visitor, network and
page ids), never an address or a user agent.

A record is a line: the CRC-32 of its JSON in hex, a space, the JSON. A line cut short by a
crash fails its check and is dropped: it was never synced, so its hits were never answered.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from analytics.store import HitCall

log = logging.getLogger(__name__)

SUFFIX = ".spool"
MAKING_SUFFIX = ".new"
"""A spool file being made: renamed to ``SUFFIX`` once its process holds its lock."""
DONE_SUFFIX = ".done"
READ_CHUNK = 1 << 20
"""Bytes read from a spool file at a time while replaying it."""


class SpoolError(Exception):
    """The spool cannot keep a record: the disk refused it, or the spool is full."""


def encode(call: HitCall) -> bytes:
    body = json.dumps(
        {
            "w": call.writer,
            "n": call.seq,
            "s": call.site_id,
            "h": call.hits,
            "t": call.first_ms,
            "k": call.keys,
            "a": call.args,
        },
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode("ascii")
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode(line: bytes) -> HitCall | None:
    """The call of a spool line, or None for a line that fails its check."""
    crc, _, body = line.rstrip(b"\n").partition(b" ")
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
        data = json.loads(body)
        return HitCall(
            site_id=str(data["s"]),
            writer=str(data["w"]),
            seq=int(data["n"]),
            hits=int(data["h"]),
            first_ms=int(data["t"]),
            keys=tuple(str(k) for k in data["k"]),
            args=tuple(a if isinstance(a, int) else str(a) for a in data["a"]),
        )
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class _Source:
    """One spool file being replayed: what is read of it and not counted yet."""

    path: Path
    handle: IO[bytes]
    own: bool
    offset: int = 0
    """Where the next unread line starts."""
    waiting: deque[tuple[HitCall, int]] = field(default_factory=deque)
    """Records read and not yet counted, each with the offset just past it."""
    hits: int = 0
    """Hits in the file from the last counted record on: read or not."""

    @property
    def done_path(self) -> Path:
        return self.path.with_suffix(DONE_SUFFIX)


class Spool:
    """The spool of one process: its own file, and the files it took over from processes gone.

    Not thread-safe: one thread (the hit writer's) appends, replays and takes over.
    """

    def __init__(self, directory: Path, max_bytes: int, writer: str) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.writer = writer
        self._sources: list[_Source] = []
        self._own: _Source | None = None
        self._episode = 0
        self._others_bytes = 0
        self._own_bytes = 0

    # -- appending ------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether this process's own file holds hits not yet counted: while it does, new hits
        go behind them, so that each site's hits are counted in the order they came."""
        return self._own is not None

    def append(self, calls: Sequence[HitCall]) -> None:
        """Writes ``calls`` to this process's file and syncs it to disk before returning.

        Raises SpoolError, keeping nothing, when they would take the spool past its limit or
        the disk refuses them."""
        data = b"".join(encode(call) for call in calls)
        if self.bytes + len(data) > self.max_bytes * 0.9:
            self._others_bytes = self._size_of_others()  # near the limit: exact, not 5 s old
        if self.bytes + len(data) > self.max_bytes:
            raise SpoolError(f"the spool is full ({self.max_bytes} bytes)")
        own = self._own or self._open_own()
        fd = own.handle.fileno()
        kept = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written <= 0:
                    raise OSError(errno.EIO, "nothing written")
                view = view[written:]
            os.fdatasync(fd)
        except OSError as err:
            # Nothing half written stays behind: the next record starts on a line of its own.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, kept)
            raise SpoolError(f"the spool cannot be written: {err.strerror}") from err
        self._own_bytes = kept + len(data)
        own.hits += sum(call.hits for call in calls)

    def _open_own(self) -> _Source:
        self._episode += 1
        path = self.directory / f"{self.writer}-{self._episode}{SUFFIX}"
        # Made and locked under another name, then renamed: no other process can take over a
        # file of ours before we hold its lock.
        making = path.with_suffix(MAKING_SUFFIX)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)
        except OSError as err:
            raise SpoolError(f"the spool cannot be written: {err.strerror}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(making, path)
            _sync_directory(self.directory)
        except OSError as err:
            os.close(fd)
            with contextlib.suppress(OSError):
                making.unlink()
            raise SpoolError(f"the spool cannot be written: {err.strerror}") from err
        source = _Source(path, os.fdopen(fd, "rb", buffering=0), own=True)
        self._own = source
        self._own_bytes = 0
        self._sources.append(source)
        return source

    def _size_of_others(self) -> int:
        mine = {source.path.name for source in self._sources}
        total = 0
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.directory):
                if entry.name.endswith(SUFFIX) and entry.name not in mine:
                    with contextlib.suppress(OSError):
                        total += entry.stat().st_size
        return total

    # -- taking over ----------------------------------------------------------------------------

    def take_over(self) -> int:
        """Takes over the spool files of processes gone (their locks free); returns how many.
        Also learns how much the other processes' files hold, for the limit."""
        taken = 0
        others = 0
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            self._others_bytes = 0
            return 0
        mine = {source.path.name for source in self._sources}
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.endswith(MAKING_SUFFIX):
                self._remove_if_abandoned(Path(entry.path))
                continue
            if not entry.name.endswith(SUFFIX) or entry.name in mine:
                continue
            source = self._try_take(Path(entry.path))
            if source is not None:
                self._sources.insert(sum(1 for s in self._sources if not s.own), source)
                taken += 1
            else:  # another live process's
                with contextlib.suppress(OSError):
                    others += entry.stat().st_size
        self._others_bytes = others
        return taken

    @staticmethod
    def _remove_if_abandoned(path: Path) -> None:
        """Removes a file a process died making (it held no record yet): one a minute old
        whose lock is free."""
        try:
            if time.time() - path.stat().st_mtime < 60:
                return
            with path.open("rb") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()
        except OSError:  # being made right now, or gone
            return

    def _try_take(self, path: Path) -> _Source | None:
        try:
            handle = path.open("rb", buffering=0)
        except OSError:
            return None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its process lives
            handle.close()
            return None
        if not path.exists():  # replayed and removed while we opened it
            handle.close()
            return None
        source = _Source(path, handle, own=False)
        with contextlib.suppress(OSError, ValueError):
            source.offset = int(source.done_path.read_text().strip() or 0)
        if source.offset > os.fstat(handle.fileno()).st_size:
            source.offset = 0
        source.hits = self._count_hits(source)
        log.info(
            "taking over a spool file of a process gone",
            extra={"event": "spool_taken_over", "file": path.name, "hits": source.hits},
        )
        return source

    @staticmethod
    def _count_hits(source: _Source) -> int:
        hits = 0
        source.handle.seek(source.offset)
        for line in source.handle:
            call = decode(line)
            if call is not None:
                hits += call.hits
        return hits

    # -- replaying ------------------------------------------------------------------------------

    def next_calls(self, max_hits: int) -> list[HitCall]:
        """The next records to replay, in order, from the first file that has any: up to
        ``max_hits`` hits (at least one record)."""
        for source in list(self._sources):
            self._read(source, max_hits)
            if not source.waiting and not source.own and not self._unread(source):
                self._finish(source)  # nothing left in it (every record cut short)
                continue
            if source.waiting:
                calls: list[HitCall] = []
                hits = 0
                for call, _ in source.waiting:
                    if calls and hits + call.hits > max_hits:
                        break
                    calls.append(call)
                    hits += call.hits
                return calls
        return []

    def _read(self, source: _Source, max_hits: int) -> None:
        waiting = sum(call.hits for call, _ in source.waiting)
        while waiting < max_hits:
            source.handle.seek(source.offset)
            chunk = source.handle.read(READ_CHUNK)
            if not chunk:
                return
            end = chunk.rfind(b"\n")
            if end < 0:
                if len(chunk) < READ_CHUNK and source.own:
                    return  # a line being written
                # A line cut short by the crash of the process that wrote it (never synced,
                # so never answered), or too long for any record: skipped.
                end = len(chunk) - 1
            position = source.offset
            for line in chunk[: end + 1].splitlines(keepends=True):
                position += len(line)
                call = decode(line)
                if call is None:
                    log.error(
                        "a spool record fails its check; skipped",
                        extra={"event": "spool_bad_record", "file": source.path.name},
                    )
                    continue
                source.waiting.append((call, position))
                waiting += call.hits
            source.offset = position

    def counted(self, calls: int) -> None:
        """Marks the first ``calls`` records that ``next_calls`` gave as counted."""
        source = next(s for s in self._sources if s.waiting)
        done_at = 0
        for _ in range(calls):
            call, done_at = source.waiting.popleft()
            source.hits -= call.hits
        if source.waiting or self._unread(source):
            # Where a process that takes the file over starts; a record counted again there
            # counts nothing, so this need not reach the disk first.
            with contextlib.suppress(OSError):
                source.done_path.write_text(str(done_at))
            return
        self._finish(source)

    def _unread(self, source: _Source) -> bool:
        return os.fstat(source.handle.fileno()).st_size > source.offset

    def _finish(self, source: _Source) -> None:
        """Removes a file whose every record is counted."""
        with contextlib.suppress(OSError):
            source.path.unlink()
        with contextlib.suppress(OSError):
            source.done_path.unlink()
        source.handle.close()
        self._sources.remove(source)
        if source.own:
            self._own = None
            self._own_bytes = 0

    # -- state ----------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Hits waiting in the files of this process."""
        return sum(source.hits for source in self._sources)

    @property
    def bytes(self) -> int:
        """Bytes held in the spool directory, this process's and the others'."""
        return (
            self._own_bytes
            + self._others_bytes
            + sum(_size(s.path) for s in self._sources if not s.own)
        )

    def oldest_ms(self) -> int | None:
        """When the oldest hit waiting here arrived (ms since the epoch), if any waits."""
        for source in self._sources:
            self._read(source, 1)
            if source.waiting:
                return source.waiting[0][0].first_ms
        return None

    @property
    def pending(self) -> bool:
        return any(source.hits for source in self._sources) or any(
            source.waiting or self._unread(source) for source in self._sources
        )

    def close(self) -> None:
        """Lets go of every file: counted ones are gone already; the rest wait for the next
        process to take them over."""
        for source in list(self._sources):
            if not source.waiting and not self._unread(source):
                self._finish(source)
            else:
                source.handle.close()
        self._sources.clear()
        self._own = None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _sync_directory(directory: Path) -> None:
    """Makes a new file's name durable, as fsync of the file alone does not."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
