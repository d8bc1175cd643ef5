"""A warning when ``ANALYTICS_TRUSTED_PROXIES`` says proxies are in front, but requests come
without the ``X-Forwarded-For`` they would have set.

Then either no proxy is in front, or one does not set the header, or fewer are in front than
said: a client can then choose its own address by sending the header itself, and with it
every limit. Only requests whose address the service uses are looked at (the beacon and the
admin API): a health check or a scrape sent straight to the service has no proxy in front.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from analytics.clock import Clock, system_clock
from analytics.web.beacon import GIF_PATH, HIT_PATH

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

WARN_EVERY = timedelta(minutes=10)
"""A process says it at most once in this long, however many requests lack the header."""
ADMIN_PREFIX = "/api/v1/admin/"
ADDRESS_PATHS = frozenset({HIT_PATH, GIF_PATH})


def uses_address(path: str) -> bool:
    """Whether the service uses the client's address on ``path``: limits, admin throttling."""
    return path in ADDRESS_PATHS or path.startswith(ADMIN_PREFIX)


def forwarded_count(value: str) -> int:
    """How many addresses an ``X-Forwarded-For`` value lists."""
    return sum(1 for part in value.split(",") if part.strip())


class ForwardedForCheck:
    """WSGI middleware around ``app``: passes every request on unchanged, and logs a warning,
    at most once per ``WARN_EVERY``, when one that uses the client's address comes with fewer
    ``X-Forwarded-For`` addresses than the ``trusted`` proxies would have added."""

    def __init__(self, app: WSGIApplication, trusted: int, *, clock: Clock = system_clock) -> None:
        self.app = app
        self.trusted = trusted
        self._clock = clock
        self._lock = threading.Lock()
        self._next: datetime | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if (
            uses_address(environ.get("PATH_INFO", ""))
            and forwarded_count(environ.get("HTTP_X_FORWARDED_FOR", "")) < self.trusted
        ):
            self._warn()
        return self.app(environ, start_response)

    def _warn(self) -> None:
        now = self._clock()
        with self._lock:
            if self._next is not None and now < self._next:
                return
            self._next = now + WARN_EVERY
        minutes = int(WARN_EVERY.total_seconds() // 60)
        log.warning(
            "ANALYTICS_TRUSTED_PROXIES is %d, but a request came with fewer X-Forwarded-For "
            "addresses than that (or none): no proxy is in front, or one does not set the "
            "header, or fewer proxies are in front than said. A client can then choose its own "
            "address by sending the header, and with it every limit: set "
            "ANALYTICS_TRUSTED_PROXIES to the number of proxies in front that set "
            "X-Forwarded-For (0 for none). Said at most once every %d minutes.",
            self.trusted,
            minutes,
        )
