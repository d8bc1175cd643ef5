"""Bearer-token authentication, one implementation for the admin API and /metrics.

The token check takes constant time; the admin API adds a throttle on failed attempts per
client network, which never refuses the right token, and writes every failed attempt it checks
to the audit log.
"""

from __future__ import annotations

import hashlib
import hmac

from analytics.audit import FAILED_AUTH, AuditLog
from analytics.clock import Clock, epoch_ms
from analytics.errors import TooManyAttempts, Unauthorized
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
    """The admin API's gate: the token first, then, for a failure only, a throttle per network
    and an audit entry.

    The right token is never refused, whatever its network did: it is compared first, in
    constant time, and touches nothing. Each failure is counted and judged in one atomic call
    (``AuditStore.count_auth_failure``): the first ``MAX_FAILURES_PER_MINUTE`` of a network in
    any minute (a window sliding over two one-minute buckets) answer 401 and are audited, the
    rest answer 429. The network is kept as a keyed hash (``AuditLog.network``), never as its
    address.
    """

    def __init__(self, store: AuditStore, audit: AuditLog, clock: Clock) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock

    def require(self, authorization: str, expected: str, *, client: str, path: str) -> None:
        """Returns when ``authorization`` carries ``expected``; else raises: 401 on a missing
        or wrong token, written to the audit log, or 429 once the client's network has failed
        ``MAX_FAILURES_PER_MINUTE`` times in the last minute."""
        presented = bearer_token(authorization)
        if presented is not None and token_matches(presented, expected):
            return
        failures = self.store.count_auth_failure(self.audit.network(client), epoch_ms(self.clock()))
        if failures > MAX_FAILURES_PER_MINUTE:
            raise TooManyAttempts("too many failed authentications: try again in a minute")
        reason = "no token" if presented is None else "wrong token"
        # The path is the client's to choose: cut, so that an entry stays small.
        change = {"path": path[:MAX_AUDITED_PATH], "reason": reason}
        self.audit.record(FAILED_AUTH, None, client, change)
        raise Unauthorized("a valid admin bearer token is required")
