"""Visitor ids: keyed hashes of site, client IP and user agent under a salt that rotates daily.

The salt for a local date is random, shared by every process through the store,
and expires two days after that date began anywhere on Earth, so an id can be
recomputed only while it is in use. Neither the IP nor the user agent is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from threading import Lock
from time import monotonic

from analytics.clock import Clock
from analytics.errors import StoreUnavailable

SALT_BYTES = 32

SaltSource = Callable[[date, bytes, int], bytes]
"""Given a day, a fresh candidate salt and its lifetime in seconds, returns the shared salt."""


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_BYTES)


def salt_expiry(day: date) -> datetime:
    """When the salt for local ``day`` can go: the day has ended in every timezone (UTC-12)."""
    return datetime.combine(day + timedelta(days=2), time(0), tzinfo=UTC)


def _keyed(salt: bytes, *parts: str) -> str:
    message = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(salt, message, hashlib.sha256).hexdigest()[:32]


def visitor_id(salt: bytes, site_id: str, client_ip: str, user_agent: str) -> str:
    """128 bits of HMAC-SHA256: distinct per person per site per salt, and not reversible."""
    return _keyed(salt, "visitor", site_id, client_ip, user_agent)


@lru_cache(maxsize=65536)
def network_of(client_ip: str) -> str:
    """The unit one client controls: an IPv4 address, or the /64 of an IPv6 one."""
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def network_id(salt: bytes, site_id: str, client_ip: str) -> str:
    """The client's network (``network_of``) as a keyed hash, for the per-network rate limit."""
    return _keyed(salt, "ip", site_id, network_of(client_ip))


def page_id(url: str) -> str:
    """A short digest of a page URL, for refresh detection; the URL itself is never stored."""
    return hashlib.blake2b(url.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


class Salts:
    """The salt of each local day, fetched once per process per day from a shared source, and
    the next day's with it, so that a store away at midnight does not split visitors in two.

    While the store is away and the day's salt was never fetched (a process started during the
    outage), a salt of this process's own stands in for it, so that hits still count (in the
    spool); a visitor seen under both is then counted twice that day. The store is asked again
    every ``RETRY_SECONDS``.
    """

    RETRY_SECONDS = 5.0

    def __init__(self, fetch: SaltSource, clock: Clock) -> None:
        self._fetch = fetch
        self._clock = clock
        self._cache: dict[date, bytes] = {}
        self._standing_in: dict[date, bytes] = {}
        self._asked: dict[date, float] = {}
        """When the store last failed to give a day's salt."""
        self._lock = Lock()

    def for_day(self, day: date) -> bytes:
        salt = self._salt(day)
        ahead = day + timedelta(days=1)
        with self._lock:
            fetch_ahead = ahead not in self._cache and not self._waiting(ahead)
        if fetch_ahead:
            try:
                self._shared(ahead)
            except StoreUnavailable:
                with self._lock:
                    self._asked[ahead] = monotonic()
        return salt

    def _salt(self, day: date) -> bytes:
        with self._lock:
            salt = self._cache.get(day)
            stand_in = self._standing_in.get(day)
            waiting = self._waiting(day)
        if salt is not None:
            return salt
        if stand_in is not None and waiting:
            return stand_in
        try:
            return self._shared(day)
        except StoreUnavailable:
            with self._lock:
                own = self._standing_in.setdefault(day, new_salt())
                self._asked[day] = monotonic()
            return own

    def _waiting(self, day: date) -> bool:
        """Whether the store failed to give ``day``'s salt less than RETRY_SECONDS ago."""
        asked = self._asked.get(day)
        return asked is not None and asked + self.RETRY_SECONDS > monotonic()

    def _shared(self, day: date) -> bytes:
        # The lifetime is measured on the service's clock, never on Redis's.
        lifetime = int((salt_expiry(day) - self._clock()).total_seconds())
        salt = self._fetch(day, new_salt(), max(lifetime, 3600))
        with self._lock:
            for old in [d for d in self._cache if d < day - timedelta(days=2)]:
                del self._cache[old]
            for stale in [d for d in self._asked if d < day - timedelta(days=2)]:
                del self._asked[stale]
                self._standing_in.pop(stale, None)
            self._cache[day] = salt
            self._standing_in.pop(day, None)
            self._asked.pop(day, None)
        return salt
