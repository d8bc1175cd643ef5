"""The audit log in Redis (admin actions, and failed authentications in a stream of their own)
and the count of failed authentications per network, kept under a keyed hash of the network."""

from __future__ import annotations

from typing import Any

from analytics.store.connection import Connection, text

BUCKET_KEPT_MS = 180_000
"""How long a minute's count of failed authentications is kept: its minute, the next one (in
whose window it still weighs), and a margin for clocks that differ between processes."""


class AuditStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._failure_script = conn.script("auth_failure")

    def append(self, entry: dict[str, str], max_entries: int, *, failed_auth: bool = False) -> None:
        """Appends to the admin actions' stream, or to the failed authentications' one."""
        stream = self._conn.keys.auth_audit() if failed_auth else self._conn.keys.audit()
        with self._conn.call("audit"):
            fields: dict[Any, Any] = dict(entry)
            self._conn.client.xadd(stream, fields, maxlen=max_entries, approximate=True)

    def entries(self, count: int) -> list[dict[str, str]]:
        """The newest ``count`` entries of both audit streams, newest first."""
        with self._conn.call("audit_entries"):
            pipe = self._conn.client.pipeline(transaction=False)
            pipe.xrevrange(self._conn.keys.audit(), count=count)
            pipe.xrevrange(self._conn.keys.auth_audit(), count=count)
            actions, failures = pipe.execute()
        rows = [*(actions or []), *(failures or [])]

        def stream_id(row: Any) -> tuple[int, int]:
            millis, _, seq = text(row[0]).partition("-")
            return int(millis), int(seq or 0)

        rows.sort(key=stream_id, reverse=True)
        return [{text(k): text(v) for k, v in (fields or {}).items()} for _, fields in rows[:count]]

    def count_auth_failure(self, network: str, now_ms: int) -> int:
        """Counts one failed authentication of ``network`` (a keyed hash of it) at ``now_ms``;
        returns the failures of the last minute, this one included (lua/auth_failure.lua)."""
        minute, into = divmod(now_ms, 60_000)
        keys = [
            self._conn.keys.auth_failures(network, minute),
            self._conn.keys.auth_failures(network, minute - 1),
        ]
        with self._conn.call("auth_failure"):
            within = self._failure_script(keys=keys, args=[60_000 - into, BUCKET_KEPT_MS])
        return int(within)
