"""Registered sites in Redis: each site's settings as JSON, an index of their ids, and the
deletion of every key of a site."""

from __future__ import annotations

import json
from typing import Any

from analytics.store.connection import Connection, text


class SiteStore:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def load(self, site_id: str) -> dict[str, Any] | None:
        with self._conn.call("load_site"):
            raw = self._conn.client.get(self._conn.keys.site_config(site_id))
        return None if raw is None else dict(json.loads(raw))

    def load_many(self, site_ids: list[str]) -> list[dict[str, Any] | None]:
        """The settings of each site of ``site_ids``, in one round trip."""
        keys = [self._conn.keys.site_config(site_id) for site_id in site_ids]
        with self._conn.call("load_site"):
            raws = self._conn.client.mget(keys) if keys else []
        return [None if raw is None else dict(json.loads(raw)) for raw in raws]

    def save(self, site: dict[str, Any]) -> None:
        site_id = site["id"]
        with self._conn.call("save_site"):
            self._conn.client.set(
                self._conn.keys.site_config(site_id), json.dumps(site, ensure_ascii=False)
            )
            self._conn.client.sadd(self._conn.keys.sites_index(), site_id)

    def ids(self) -> list[str]:
        with self._conn.call("site_ids"):
            members = self._conn.client.smembers(self._conn.keys.sites_index())
        return sorted(text(m) for m in members)

    def delete(self, site_id: str) -> int:
        """Deletes every key of a site (found with SCAN over its hash tag); returns how many."""
        client = self._conn.client
        deleted = 0
        with self._conn.call("delete_site"):
            batch: list[bytes | str] = []
            for key in client.scan_iter(match=self._conn.keys.site_pattern(site_id), count=500):
                batch.append(key)
                if len(batch) == 500:
                    deleted += int(client.delete(*batch))
                    batch = []
            if batch:
                deleted += int(client.delete(*batch))
            client.srem(self._conn.keys.sites_index(), site_id)
        return deleted
