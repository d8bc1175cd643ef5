"""The audit log: every admin action and every failed authentication, each written with its log
line, and read back newest first.

Who acted is a command line's ``cli:user@host``, or for an API call a short tag of the client's
network (``net:`` and 12 hex digits), never its address: a keyed hash under the salt of the UTC
day, so that an admin can tell repeated sources apart within a day, and nobody can turn a tag
back into an address once that salt is deleted (two days later).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from analytics.clock import Clock
from analytics.identity import Salts, network_of
from analytics.store import AuditStore

MAX_AUDIT_ENTRIES = 10_000
"""Entries kept in each of the two streams (admin actions, failed authentications)."""
FAILED_AUTH = "auth_failed"
CLI_ACTOR = "cli:"
"""How the command line's actor begins (``cli:user@host``); any other actor is a client address."""
TAG_DIGITS = 12


log = logging.getLogger("analytics.admin")

Change = Mapping[str, Any]
"""What an action changed, as JSON: fields and values, or a before and an after."""


@dataclass(frozen=True)
class AuditEntry:
    time: str
    action: str
    site: str | None
    ip: str
    """Who acted: the tag of an API call's network (``net:…``), the user and host of a command."""
    change: Change | None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "action": self.action,
            "site": self.site,
            "ip": self.ip,
            "change": self.change,
        }


def network_hash(salt: bytes, client: str) -> str:
    """The client's network (``network_of``: an IPv4 address, an IPv6 /64) as 128 bits of
    HMAC-SHA256 under ``salt``: what the service keeps instead of an address."""
    message = f"admin\x00{network_of(client)}".encode("utf-8", "surrogatepass")
    return hmac.new(salt, message, hashlib.sha256).hexdigest()[:32]


class AuditLog:
    def __init__(self, store: AuditStore, clock: Clock, salts: Salts) -> None:
        self._store = store
        self._clock = clock
        self._salts = salts

    def network(self, client: str) -> str:
        """The keyed hash of ``client``'s network under the salt of the current UTC day."""
        return network_hash(self._salts.for_day(self._clock().astimezone(UTC).date()), client)

    def actor(self, client: str) -> str:
        """What the audit keeps of who acted: a command line's ``cli:user@host`` as it is, a
        client address as the tag of its network."""
        if client.startswith(CLI_ACTOR):
            return client
        return f"net:{self.network(client)[:TAG_DIGITS]}"

    def record(
        self, action: str, site: str | None, actor: str, change: Change | None = None
    ) -> None:
        """Writes one entry, and its log line, which names the action and the site only: who
        acted is the audit's, and the audit keeps a tag of a client's network, never its address
        (``actor``). Failed authentications go to a stream of their own, so that a
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
            "ip": self.actor(actor),
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
