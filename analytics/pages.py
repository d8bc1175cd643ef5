"""Pages and referrers: what a hit's page and referrer host are, and their lists read back (the
top of a window, one page in every window)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from analytics.clock import Clock
from analytics.errors import InvalidInput
from analytics.periods import WINDOWS, Period, local_date, windows_at
from analytics.sites import SiteRegistry
from analytics.store import ListStore

MAX_PATH = 256
"""Characters of a page's path kept: longer paths are cut, so that what clients send cannot
make an entry big."""
MAX_LIMIT = 100
HOST = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_-]{1,63})*")
REFERRER_SCHEMES = ("http", "https", "android-app")
"""Referrers whose host is counted: web pages, and Android apps (``android-app://PACKAGE/``)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_KEPT_ENCODED = re.compile(r"(%(?:25|2[Ff]|3[Ff]|23))")
"""Escapes left as they are: ``%``, ``/``, ``?`` and ``#`` decoded would read as something
else (a different path, a query, a fragment)."""
_LIKE_AN_ESCAPE = re.compile(r"%(?=[0-9A-Fa-f]{2})")
_DIGITS = re.compile(r"[0-9]{1,3}")


def normal_path(path: str) -> str:
    """A page's path as it is counted and looked up: percent-decoded where that gives readable
    text (so ``/tin-t%E1%BB%A9c`` and ``/tin-tức`` are one page), ``/`` when empty, at most
    ``MAX_PATH`` characters. Applied to its own result it changes nothing, so every path a list
    shows looks up its own count."""
    if not path:
        return "/"
    parts = _KEPT_ENCODED.split(path)
    try:
        decoded = "".join(
            part.upper() if n % 2 else _LIKE_AN_ESCAPE.sub("%25", unquote(part, errors="strict"))
            for n, part in enumerate(parts)
        )
    except UnicodeDecodeError:
        decoded = path
    if _CONTROL.search(decoded):
        decoded = path
    return decoded[:MAX_PATH]


def page_path(url: str) -> str:
    """The page of a hit's (validated, absolute) URL: its path, no query string, no fragment."""
    return normal_path(urlsplit(url).path)


def wanted_path(value: str | None) -> str:
    """The ``path`` a reader asks for: a path, or a page's whole URL (its path is taken)."""
    if not value:
        raise InvalidInput("'path' is required: a page's path, such as /tin-tuc/1", field="path")
    if len(value) > 2048:
        raise InvalidInput("'path' is longer than 2048 characters", field="path")
    if value.startswith(("http://", "https://")):
        try:
            value = urlsplit(value).path or "/"
        except ValueError:
            raise InvalidInput("'path' is not a valid URL", field="path") from None
    # A page is its path alone: a query string or fragment given with it is no part of it.
    value = value.split("#", 1)[0].split("?", 1)[0]
    if not value.startswith("/"):
        raise InvalidInput("'path' must start with /", field="path")
    return normal_path(value)


def host_of(url: str | None) -> str:
    """The host of a URL or an origin, lower case, without a leading ``www.``; "" if none."""
    if not url:
        return ""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return ""
    if parts.scheme.lower() not in REFERRER_SCHEMES:
        return ""
    host = host.rstrip(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return ""
    if host.startswith("www."):
        host = host[4:]
    return host if len(host) <= 253 and HOST.fullmatch(host) else ""


def referrer_host(referrer: str | None, own_hosts: Iterable[str]) -> str:
    """The host a pageview came from, as the referrers list counts it: "" for none, for one
    that is no web page or app, and for the site's own hosts (a reader moving between the
    site's pages)."""
    host = host_of(referrer)
    return "" if host in own_hosts else host


def check_limit(value: str | None) -> int:
    if value is None:
        return 10
    if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidInput(f"'limit' must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    return int(value)


def check_window(value: str | None) -> str:
    if value is None:
        return "today"
    if value not in WINDOWS:
        raise InvalidInput(f"'window' must be one of {', '.join(WINDOWS)}", field="window")
    return value


@dataclass(frozen=True)
class Listing:
    """The top of a window's pages or referrers list."""

    window: str
    start: str | None
    entries: list[tuple[str, int]]


class Pages:
    """The pages and referrers lists of the sites, read back; a page's counts come from a
    cache at most ``cache_seconds`` old, as the counters do."""

    MAX_CACHED = 10_000

    def __init__(
        self, store: ListStore, sites: SiteRegistry, clock: Clock, cache_seconds: float = 1.0
    ) -> None:
        self.store = store
        self.sites = sites
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _windows(self, site_id: str) -> dict[str, Period]:
        site = self.sites.get(site_id)
        return windows_at(local_date(self.clock(), site.zone), site.week_start)

    def top(self, kind: str, site_id: str, window: str, limit: int) -> Listing:
        """The ``limit`` most viewed entries of ``kind`` ("pages" or "referrers") in a window."""
        period = self._windows(site_id)[window]
        return Listing(window, period.start_text, self.store.top(kind, site_id, period, limit))

    def page(self, site_id: str, path: str) -> dict[str, Any]:
        """One page's pageviews in every window, as the API answers them."""
        now = self.clock().timestamp()
        with self._lock:
            cached = self._cache.get((site_id, path))
        if cached is not None and 0 <= now - cached[0] < self.cache_seconds:
            return cached[1]
        by_name = self._windows(site_id)
        views = self.store.page_views(site_id, path, [by_name[name] for name in WINDOWS])
        doc = {
            "site": site_id,
            "path": path,
            "windows": {name: {"pageviews": n} for name, n in zip(WINDOWS, views, strict=True)},
        }
        with self._lock:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            self._cache[(site_id, path)] = (now, doc)
        return doc
