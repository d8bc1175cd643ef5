"""The audit log in Redis (admin actions, and failed authentications in a stream of their own)
and the per-network count of failed authentications."""

from __future__ import annotations

from typing import Any

from analytics.store.connection import Connection, text


class AuditStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

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

    def count_auth_failure(self, network: str, minute: int) -> int:
        """Counts one failed authentication of ``network`` in ``minute``; returns the count."""
        key = self._conn.keys.auth_failures(network, minute)
        with self._conn.call("auth_failure"):
            pipe = self._conn.client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = pipe.execute()
        return int(count)

    def auth_failures(self, network: str, minute: int) -> int:
        with self._conn.call("auth_failure"):
            return int(self._conn.client.get(self._conn.keys.auth_failures(network, minute)) or 0)
