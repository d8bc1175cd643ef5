"""The pages and referrers lists in Redis, read back: the top of a period's list, and one
entry's views in several periods. The hit script (store/lua/hit.lua) writes them."""

from __future__ import annotations

from collections.abc import Sequence

from analytics.periods import Period
from analytics.store.connection import Connection, text


class ListStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._top = conn.script("top")
        self._page = conn.script("page")

    def _key(self, kind: str, site_id: str, period: Period) -> str:
        keys = self._conn.keys
        return keys.pages(site_id, period) if kind == "pages" else keys.referrers(site_id, period)

    def top(self, kind: str, site_id: str, period: Period, limit: int) -> list[tuple[str, int]]:
        """The ``limit`` most viewed entries of a period's ``kind`` list ("pages" or
        "referrers"), most viewed first, ties by name."""
        with self._conn.call("read_list"):
            raw = self._top(keys=[self._key(kind, site_id, period)], args=[limit])
        entries = [(text(raw[i]), int(float(raw[i + 1]))) for i in range(0, len(raw), 2)]
        entries.sort(key=lambda entry: (-entry[1], entry[0]))
        return entries

    def page_views(self, site_id: str, path: str, periods: Sequence[Period]) -> list[int]:
        """One page's own views in each of ``periods``, in one atomic round trip: its count
        less what it inherited on entering a full list (so, since it entered; exact for a page
        that entered the list with its first view); 0 where it is not listed."""
        keys = self._conn.keys
        pairs = [
            key for p in periods for key in (keys.pages(site_id, p), keys.page_errors(site_id, p))
        ]
        with self._conn.call("read_list"):
            views = self._page(keys=pairs, args=[path])
        return [int(v) for v in views]
