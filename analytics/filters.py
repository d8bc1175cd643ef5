"""Pure decisions about whether a hit may count: bots, origins, Global Privacy Control.

Reload and rate decisions need shared state, so the hit script makes them in the same
atomic call that counts (store/lua/hit.lua); their limits are settings, passed down by
counting.Policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from crawlerdetect import CrawlerDetect

from analytics.sites import normalize_origin, origin_of_url

_DETECTOR = CrawlerDetect()
MAX_USER_AGENT = 512
"""Browsers send 100 to 300 characters. The detector's cost grows with the length, so a
longer agent is taken for what it is, a tool's, without running the patterns."""


def is_bot(user_agent: str) -> bool:
    """Crawlers, spiders, HTTP libraries and headless browsers; an empty agent is no browser."""
    if not user_agent.strip() or len(user_agent) > MAX_USER_AGENT:
        return True
    return _matches_crawler(user_agent)


@lru_cache(maxsize=8192)
def _matches_crawler(user_agent: str) -> bool:
    return bool(_DETECTOR.isCrawler(user_agent))


def request_origin(origin_header: str | None, referer_header: str | None) -> str | None:
    """Where a hit comes from: its ``Origin`` header, else the origin of its ``Referer``."""
    if origin_header and origin_header != "null":
        return normalize_origin(origin_header)
    if referer_header:
        return origin_of_url(referer_header)
    return None


def origin_allowed(
    allowed: Sequence[str], origin_header: str | None, referer_header: str | None
) -> bool:
    """A site that lists no origins accepts any; otherwise the hit's origin must be listed."""
    if not allowed:
        return True
    origin = request_origin(origin_header, referer_header)
    return origin is not None and origin in allowed


def opted_out(honor_gpc: bool, sec_gpc: str | None) -> bool:
    return honor_gpc and (sec_gpc or "").strip() == "1"
