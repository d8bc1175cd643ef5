"""Every Redis key, built in this one place: a prefix, then the site's hash tag ``{site}``.

All keys of one site hash to one Redis Cluster slot, so each hit and each read is
a single-slot operation.
"""

from __future__ import annotations

from dataclasses import dataclass

from analytics.periods import Grain, Period


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

    def pages(self, site_id: str, period: Period) -> str:
        """Sorted set of page paths -> pageviews for one period, capped (Space-Saving)."""
        return f"{self.site(site_id)}:pg:{period.grain}:{period.name}"

    def lists_beside(self, counts_key: str) -> tuple[str, str, str] | None:
        """The pages, referrers and page errors keys of the period whose counts hash is
        ``counts_key`` (as ``counts()`` names it); None for any other key."""
        head, tag, period = counts_key.rpartition("}:c:")
        if not tag or not head.startswith(f"{self.prefix}:{{"):
            return None
        return (f"{head}}}:pg:{period}", f"{head}}}:rf:{period}", f"{head}}}:pe:{period}")

    def page_errors(self, site_id: str, period: Period) -> str:
        """Hash of page path -> how much its count in the pages list may be over the true one:
        the count it inherited when it took an evicted page's place (Space-Saving's error)."""
        return f"{self.site(site_id)}:pe:{period.grain}:{period.name}"

    def referrers(self, site_id: str, period: Period) -> str:
        """Sorted set of referrer hosts -> pageviews for one period, capped (Space-Saving)."""
        return f"{self.site(site_id)}:rf:{period.grain}:{period.name}"

    def online(self, site_id: str) -> str:
        """Sorted set: visitor id -> last seen (ms)."""
        return f"{self.site(site_id)}:online"

    def reload_guard(self, site_id: str, visitor: str, page: str) -> str:
        return f"{self.site(site_id)}:dup:{visitor}:{page}"

    def network_limits(self, site_id: str, network: str) -> str:
        """Hash of what one network (a keyed hash of it) added to the site, per kind of hit and
        minute, for the limits' window."""
        return f"{self.site(site_id)}:lim:{network}"

    def network_online(self, site_id: str, network: str) -> str:
        """Sorted set of one network's visitors online on the site: visitor id -> last seen."""
        return f"{self.site(site_id)}:lon:{network}"

    def writer_mark(self, site_id: str, writer: str) -> str:
        """The last call of one hit writer counted for the site (store/lua/hit.lua)."""
        return f"{self.site(site_id)}:w:{writer}"

    def ready_probe(self) -> str:
        """What /readyz writes to learn whether Redis takes writes."""
        return f"{self.prefix}:ready"

    def closed(self, site_id: str) -> str:
        """Hash: per grain, the last period closed, and the first (where closing began)."""
        return f"{self.site(site_id)}:closed"

    def history(self, site_id: str, period: Period) -> str:
        """Hash of frozen counts: days by month, weeks by year, months all in one."""
        if period.start is None:
            raise ValueError("the total has no history")
        if period.grain is Grain.DAY:
            bucket = period.start.strftime("%Y-%m")
        elif period.grain is Grain.WEEK:
            bucket = period.start.strftime("%Y")
        else:
            bucket = "all"
        return f"{self.site(site_id)}:h:{period.grain}:{bucket}"

    def imported_days(self, site_id: str) -> str:
        """Hash of the days imported from an earlier counter: date -> "pageviews visits
        visitors"."""
        return f"{self.site(site_id)}:imp:d"

    def imported_total(self, site_id: str) -> str:
        """Hash of the sums of the imported days (``pageviews``, ``visits``, ``visitors``) and
        ``since``, the earliest day ever imported."""
        return f"{self.site(site_id)}:imp:t"

    def salt(self, day_name: str) -> str:
        return f"{self.prefix}:salt:{day_name}"

    def reset_record(self, site_id: str, reset_id: str) -> str:
        return f"{self.site(site_id)}:reset:{reset_id}"

    def set_aside(self, site_id: str, reset_id: str, key: str) -> str:
        """Where a reset keeps a key it removed: same slot, named after the reset."""
        return f"{self.site(site_id)}:reset:{reset_id}:{key.rsplit('}:', 1)[1]}"

    def site_pattern(self, site_id: str) -> str:
        """A SCAN pattern matching every key of a site, and no key of another."""
        return f"{self.site(site_id)}:*"

    def audit(self) -> str:
        """Stream of admin actions."""
        return f"{self.prefix}:audit"

    def auth_audit(self) -> str:
        """Stream of failed authentications, apart so that a flood of them cannot push the
        admin actions out of the capped stream."""
        return f"{self.prefix}:audit:auth"

    def auth_failures(self, network: str, minute: int) -> str:
        """Failed authentications of one network (a keyed hash of it, never its address) in one
        minute; the network is the hash tag, so that one call can read two of its minutes."""
        return f"{self.prefix}:authfail:{{{network}}}:{minute}"

    def lock(self, job: str) -> str:
        return f"{self.prefix}:lock:{job}"
