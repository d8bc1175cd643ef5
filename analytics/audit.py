"""The audit log: every admin action and every failed authentication, each written with its log
line, and read back newest first."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from analytics.clock import Clock
from analytics.store import AuditStore

MAX_AUDIT_ENTRIES = 10_000
"""Entries kept in each of the two streams (admin actions, failed authentications)."""
FAILED_AUTH = "auth_failed"

log = logging.getLogger("analytics.admin")

Change = Mapping[str, Any]
"""What an action changed, as JSON: fields and values, or a before and an after."""


@dataclass(frozen=True)
class AuditEntry:
    time: str
    action: str
    site: str | None
    ip: str
    """Who acted: the client address of an API call, the user and host of a command."""
    change: Change | None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "action": self.action,
            "site": self.site,
            "ip": self.ip,
            "change": self.change,
        }


class AuditLog:
    def __init__(self, store: AuditStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    def record(
        self, action: str, site: str | None, actor: str, change: Change | None = None
    ) -> None:
        """Writes one entry, and its log line, which names the action and the site only: who
        acted is the audit's. Failed authentications go to a stream of their own, so that a
        flood of them cannot push the admin actions out."""
        log.info(
            "admin %s%s",
            action,
            f" on {site}" if site else "",
            extra={"event": "admin_action", "action": action, "site": site or None},
        )
        entry = {
            "time": self._clock().isoformat(timespec="seconds"),
            "action": action,
            "site": site or "",
            "ip": actor,
            "change": json.dumps(change, ensure_ascii=False, default=str),
        }
        self._store.append(entry, MAX_AUDIT_ENTRIES, failed_auth=action == FAILED_AUTH)

    def entries(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries of both streams, newest first."""
        return [
            AuditEntry(
                time=raw.get("time", ""),
                action=raw.get("action", ""),
                site=raw.get("site") or None,
                ip=raw.get("ip", ""),
                change=json.loads(raw.get("change") or "null"),
            )
            for raw in self._store.entries(limit)
        ]
