"""Every Redis key, built in this one place: a prefix, then the site's hash tag ``{site}``.

All keys of one site hash to one Redis Cluster slot, so each hit and each read is
a single-slot operation.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.periods import Period


@dataclass(frozen=True)
class KeySpace:
    prefix: str = "va"

    def site(self, site_id: str) -> str:
        return f"{self.prefix}:{{{site_id}}}"

    def site_config(self, site_id: str) -> str:
        return f"{self.site(site_id)}:site"

    def sites_index(self) -> str:
        return f"{self.prefix}:sites"

    def counts(self, site_id: str, period: Period) -> str:
        """Hash of ``pageviews`` and ``visits`` for one period."""
        return f"{self.site(site_id)}:c:{period.grain}:{period.name}"

    def visitors(self, site_id: str, period: Period) -> str:
        """HyperLogLog of visitor ids for one period."""
        return f"{self.site(site_id)}:u:{period.grain}:{period.name}"

    def online(self, site_id: str) -> str:
        """Sorted set: visitor id -> last seen (ms)."""
        return f"{self.site(site_id)}:online"

    def reload_guard(self, site_id: str, visitor: str, page: str) -> str:
        return f"{self.site(site_id)}:dup:{visitor}:{page}"

    def visitor_rate(self, site_id: str, visitor: str, minute: int) -> str:
        return f"{self.site(site_id)}:rl:v:{visitor}:{minute}"

    def network_rate(self, site_id: str, network: str, minute: int) -> str:
        return f"{self.site(site_id)}:rl:ip:{network}:{minute}"

    def salt(self, day_name: str) -> str:
        return f"{self.prefix}:salt:{day_name}"
