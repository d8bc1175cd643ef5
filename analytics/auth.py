"""Bearer-token authentication, one implementation for the admin API and /metrics.

The token check takes constant time; the admin API adds a throttle on failed attempts per
client network and writes every failed attempt to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac

from analytics.audit import FAILED_AUTH, AuditLog
from analytics.clock import Clock, epoch_ms
from analytics.errors import TooManyAttempts, Unauthorized
from analytics.identity import network_of
from analytics.store import AuditStore

MAX_FAILURES_PER_MINUTE = 10
MAX_AUDITED_PATH = 200


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_matches(presented: str, expected: str) -> bool:
    """Constant time: compare_digest of the two SHA-256 digests takes as long wherever the
    first difference is, and whatever the presented token's length."""
    return hmac.compare_digest(
        hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest(),
        hashlib.sha256(expected.encode("utf-8")).digest(),
    )


def bearer_matches(authorization: str, expected: str) -> bool:
    """Whether the header carries the ``expected`` bearer token."""
    presented = bearer_token(authorization)
    return presented is not None and token_matches(presented, expected)


class Authenticator:
    """The admin API's gate: the token, a throttle per network, an audit entry per failure."""

    def __init__(self, store: AuditStore, audit: AuditLog, clock: Clock) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock

    def require(self, authorization: str, expected: str, *, client: str, path: str) -> None:
        """Returns when ``authorization`` carries ``expected``; else raises.

        429 once a network has failed ``MAX_FAILURES_PER_MINUTE`` times this minute, 401 on a
        missing or wrong token, each such failure counted and written to the audit log.
        """
        network = network_of(client)
        minute = epoch_ms(self.clock()) // 60_000
        if self.store.auth_failures(network, minute) >= MAX_FAILURES_PER_MINUTE:
            raise TooManyAttempts("too many failed authentications: try again in a minute")
        presented = bearer_token(authorization)
        if presented is None or not token_matches(presented, expected):
            self.store.count_auth_failure(network, minute)
            reason = "no token" if presented is None else "wrong token"
            # The path is the client's to choose: cut, so that an entry stays small.
            change = {"path": path[:MAX_AUDITED_PATH], "reason": reason}
            self.audit.record(FAILED_AUTH, None, client, change)
            raise Unauthorized("a valid admin bearer token is required")
