"""Site: a registered website, its validation, and the registry that caches sites from the store."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from analytics.errors import InvalidInput, SettingsError, StoreUnavailable, UnknownSite
from analytics.periods import WeekStart
from analytics.settings import read_toml

if TYPE_CHECKING:
    from analytics.store import SiteStore

SITE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
METRICS = ("pageviews", "visits", "visitors")
MAX_COUNT = 10**15
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"


@dataclass(frozen=True)
class Offsets:
    """Counts of a counter migrated from elsewhere, added to the total window; each checked."""

    pageviews: int = 0
    visits: int = 0
    visitors: int = 0

    def __post_init__(self) -> None:
        for name in METRICS:
            _int_between(f"offsets.{name}", 0, MAX_COUNT)(getattr(self, name))


@dataclass(frozen=True)
class Site:
    id: str
    name: str = ""
    timezone: str = DEFAULT_TIMEZONE
    week_start: WeekStart = WeekStart.MONDAY
    origins: tuple[str, ...] = ()
    online_window_seconds: int = 300
    session_timeout_seconds: int = 1800
    box_metric: str = "visits"
    offsets: Offsets = field(default_factory=Offsets)
    honor_gpc: bool = False

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def online_keep_seconds(self) -> int:
        """How long a visitor stays in the online set: online, or able to continue a visit."""
        return max(self.session_timeout_seconds, self.online_window_seconds)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["week_start"] = str(self.week_start)
        data["origins"] = list(self.origins)
        return data

    def updated(self, changes: Mapping[str, Any]) -> Site:
        """A copy with ``changes`` (fields of the admin API) applied, each validated."""
        return SiteChanges.parse(changes).applied_to(self)

    @classmethod
    def create(cls, data: Mapping[str, Any]) -> Site:
        """A new site from fields of the admin API; ``id`` is required, the rest default."""
        if "id" not in data:
            raise InvalidInput("'id' is required", field="id")
        return cls(**_parse_fields(data, creating=True))

    @classmethod
    def new(cls, site_id: str, changes: SiteChanges | None = None) -> Site:
        """A new site ``site_id`` (validated) with ``changes`` made to the defaults."""
        site = cls(id=_parse_id(site_id))
        return site if changes is None else changes.applied_to(site)


@dataclass(frozen=True)
class SiteChanges:
    """Fields of a site to change; None keeps a field as it is.

    Each value given is validated and normalised (origins in canonical form, the name
    stripped) here, however the changes are made: from the admin API's fields with
    ``parse``, or field by field.
    """

    name: str | None = None
    timezone: str | None = None
    week_start: WeekStart | None = None
    origins: tuple[str, ...] | None = None
    online_window_seconds: int | None = None
    session_timeout_seconds: int | None = None
    box_metric: str | None = None
    offsets: Offsets | None = None
    honor_gpc: bool | None = None

    def __post_init__(self) -> None:
        for name, value in self.given().items():
            object.__setattr__(self, name, _FIELD_PARSERS[name](_as_field(value)))

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> SiteChanges:
        """Changes from fields of the admin API, checked in the order given; no ``id``."""
        return cls(**_parse_fields(data, creating=False))

    def given(self) -> dict[str, Any]:
        """The fields to change, by name."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    def applied_to(self, site: Site) -> Site:
        return replace(site, **self.given())


def _as_field(value: Any) -> Any:
    """A typed value as the admin API's field would carry it, for the field's parser."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Offsets):
        return asdict(value)
    return value


def valid_site_id(value: object) -> bool:
    return isinstance(value, str) and SITE_ID.fullmatch(value) is not None


def normalize_origin(text: str) -> str | None:
    """``scheme://host[:port]`` in canonical form, or None when ``text`` is not an origin."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.username or parts.password or parts.query or parts.fragment:
        return None
    if parts.path not in ("", "/"):
        return None
    host = _canonical_host(parts.hostname)
    if host is None or port == 0:
        return None
    default = 443 if parts.scheme == "https" else 80
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme}://{host}{suffix}"


HOST_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _canonical_host(hostname: str) -> str | None:
    """A host as browsers send it in ``Origin``: an IP address (IPv6 in brackets) or an ASCII
    name, an internationalized one in its xn-- form; None for anything else."""
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        pass
    else:
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    try:
        ascii_host = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(HOST_LABEL.fullmatch(label) for label in labels):
        return None
    return ascii_host


def origin_of_url(text: str) -> str | None:
    """The origin of an absolute URL (a Referer), or None."""
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return None
    return normalize_origin(f"{parts.scheme}://{parts.netloc}")


_ZONES: frozenset[str] | None = None


NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})
"""Files of the tz database that are not zones a site can be in."""
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _known_zone(name: str) -> bool:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(
            zone
            for zone in available_timezones()
            if zone not in NOT_ZONES and not zone.startswith(("posix/", "right/"))
        )
    if name not in _ZONES:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _parse_fields(data: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        parser = _FIELD_PARSERS.get(key)
        if parser is None:
            raise InvalidInput(f"unknown field '{key}'", field=key)
        if key == "id" and not creating:
            raise InvalidInput("'id' cannot be changed", field="id")
        out[key] = parser(value)
    return out


def _parse_id(value: Any) -> str:
    if not valid_site_id(value):
        raise InvalidInput("'id' must match ^[a-z0-9][a-z0-9-]{0,62}$", field="id")
    return str(value)


def _parse_name(value: Any) -> str:
    if (
        not isinstance(value, str)
        or len(value) > 200
        or any(unicodedata.category(c) == "Cc" or c in BIDI_CONTROLS for c in value)
    ):
        message = "'name' must be text of at most 200 characters, without control characters"
        raise InvalidInput(message, field="name")
    return value.strip()


def _parse_timezone(value: Any) -> str:
    if not isinstance(value, str) or not _known_zone(value):
        raise InvalidInput("'timezone' must be an IANA timezone name", field="timezone")
    return value


def _parse_week_start(value: Any) -> WeekStart:
    try:
        return WeekStart(value)
    except ValueError:
        message = "'week_start' must be 'monday' or 'sunday'"
        raise InvalidInput(message, field="week_start") from None


def _parse_origins(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > 100:
        raise InvalidInput("'origins' must be a list of at most 100 origins", field="origins")
    out: list[str] = []
    for item in value:
        origin = normalize_origin(item) if isinstance(item, str) else None
        if origin is None:
            raise InvalidInput(
                f"'origins' holds {item!r}, which is not scheme://host[:port]", field="origins"
            )
        if origin not in out:
            out.append(origin)
    return tuple(out)


def _int_between(name: str, low: int, high: int) -> Any:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(f"'{name}' must be a whole number from {low} to {high}", field=name)
        return value

    return parse


def _parse_box_metric(value: Any) -> str:
    if value not in METRICS:
        raise InvalidInput(f"'box_metric' must be one of {', '.join(METRICS)}", field="box_metric")
    return str(value)


def parse_offsets(value: Any) -> Offsets:
    if not isinstance(value, Mapping):
        raise InvalidInput("'offsets' must be an object", field="offsets")
    counts: dict[str, int] = {}
    for key, count in value.items():
        if key not in METRICS:
            raise InvalidInput(f"unknown field 'offsets.{key}'", field=f"offsets.{key}")
        counts[key] = _int_between(f"offsets.{key}", 0, MAX_COUNT)(count)
    return Offsets(**counts)


def _parse_bool(name: str) -> Any:
    def parse(value: Any) -> bool:
        if not isinstance(value, bool):
            raise InvalidInput(f"'{name}' must be true or false", field=name)
        return value

    return parse


_FIELD_PARSERS: dict[str, Any] = {
    "id": _parse_id,
    "name": _parse_name,
    "timezone": _parse_timezone,
    "week_start": _parse_week_start,
    "origins": _parse_origins,
    "online_window_seconds": _int_between("online_window_seconds", 10, 3600),
    "session_timeout_seconds": _int_between("session_timeout_seconds", 60, 86400),
    "box_metric": _parse_box_metric,
    "offsets": parse_offsets,
    "honor_gpc": _parse_bool("honor_gpc"),
}


class SiteRegistry:
    """Sites by id, cached for a few seconds so a hit needs no extra round trip."""

    MAX_UNKNOWN = 1024

    def __init__(self, store: SiteStore, cache_seconds: float = 5.0) -> None:
        self._store = store
        self._ttl = cache_seconds
        # Registered sites, as many as there are; and a bounded set of ids found unknown, kept
        # apart so that probing random ids can never push a real site out.
        self._known: dict[str, tuple[float, Site]] = {}
        self._unknown: dict[str, float] = {}
        self._lock = threading.Lock()

    def get(self, site_id: str) -> Site:
        """The site, or UnknownSite (for an id that is no valid id too); unknown ids are cached,
        so probing them is cheap."""
        if not valid_site_id(site_id):
            raise UnknownSite(site_id[:80])
        now = time.monotonic()
        with self._lock:
            known = self._known.get(site_id)
            unknown_until = self._unknown.get(site_id, 0.0)
        if known is not None and known[0] > now:
            return known[1]
        if unknown_until > now:
            raise UnknownSite(site_id)
        try:
            stored = self._store.load(site_id)
        except StoreUnavailable:
            if known is None:
                raise
            return known[1]  # what we knew is better than nothing while Redis is away
        with self._lock:
            if stored is None:
                self._known.pop(site_id, None)
                if len(self._unknown) >= self.MAX_UNKNOWN:
                    self._unknown.pop(next(iter(self._unknown)))  # the oldest
                self._unknown[site_id] = now + self._ttl
            else:
                site = Site.create(stored)
                self._known[site_id] = (now + self._ttl, site)
                self._unknown.pop(site_id, None)
        if stored is None:
            raise UnknownSite(site_id)
        return site

    def preload(self, at_most: int = 10_000) -> int:
        """Reads every registered site (up to ``at_most``) into the cache, as a web worker does
        at start: a site it has not served yet still counts (into the spool) if Redis goes
        away before its first hit. Returns how many."""
        ids = self._store.ids()[:at_most]
        now = time.monotonic()
        loaded = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for stored in self._store.load_many(chunk):
                if stored is not None:
                    site = Site.create(stored)
                    with self._lock:
                        self._known[site.id] = (now + self._ttl, site)
                    loaded += 1
        return loaded

    def known_sites(self) -> list[Site]:
        """The sites this process has read."""
        with self._lock:
            return [site for _, site in self._known.values()]

    def remember(self, sites: Iterable[Site]) -> None:
        """Knows ``sites`` as read long ago: served while Redis is away, read again once it is
        back (a process started during an outage, from the snapshot of one that was not)."""
        with self._lock:
            for site in sites:
                self._known.setdefault(site.id, (0.0, site))

    def save(self, site: Site) -> None:
        self._store.save(site.to_dict())
        # Known from now on, as if read: a hit for it while Redis is away still counts.
        with self._lock:
            self._known[site.id] = (time.monotonic() + self._ttl, site)
            self._unknown.pop(site.id, None)

    def forget(self, site_id: str) -> None:
        with self._lock:
            self._known.pop(site_id, None)
            self._unknown.pop(site_id, None)

    def ids(self) -> list[str]:
        """The ids of every registered site, read from the store."""
        return sorted(self._store.ids())

    def all(self) -> list[Site]:
        sites = []
        for site_id in sorted(self._store.ids()):
            stored = self._store.load(site_id)
            if stored is not None:
                sites.append(Site.create(stored))
        return sites

    def upsert(self, data: Mapping[str, Any]) -> Site:
        """Register a site, or update the fields given of one that exists."""
        site_id = _parse_id(data.get("id"))
        try:
            current = self.get(site_id)
        except UnknownSite:
            site = Site.create(data)
        else:
            site = current.updated({k: v for k, v in data.items() if k != "id"})
        self.save(site)
        return site


def read_sites_file(path: Path) -> list[dict[str, Any]]:
    """The ``[[site]]`` tables of a TOML sites file, checked field by field."""
    data = read_toml(path, "ANALYTICS_SITES_FILE")
    extra = set(data) - {"site"}
    tables = data.get("site", [])
    if extra or not isinstance(tables, list):
        raise SettingsError("ANALYTICS_SITES_FILE", "expects only [[site]] tables")
    for number, table in enumerate(tables, start=1):
        try:
            Site.create(table)
        except InvalidInput as err:
            raise SettingsError("ANALYTICS_SITES_FILE", f"site #{number}: {err.message}") from None
    return [dict(t) for t in tables]


DEMO_SITE: dict[str, Any] = {"id": "demo", "name": "Demo", "timezone": DEFAULT_TIMEZONE}


def seed_sites(
    registry: SiteRegistry,
    sites_file: Path | None,
    saving: Callable[[Site], None] | None = None,
    saved: Callable[[Site | None, Site], None] | None = None,
) -> list[Site]:
    """Register or update the sites of the sites file; without one, the demo site when no
    site is registered at all (so that a deleted demo stays deleted). A site registered already
    is handed to ``saving`` before it is saved; each site saved to ``saved`` after, with what it
    was before (None for a new one)."""
    entries = read_sites_file(sites_file) if sites_file is not None else []
    if sites_file is None and not registry.ids():
        entries = [DEMO_SITE]
    seeded = []
    for entry in entries:
        registry.forget(entry["id"])
        try:
            before: Site | None = registry.get(entry["id"])
        except UnknownSite:
            before = None
        if before is not None and saving is not None:
            saving(before)
        site = registry.upsert(entry)
        if saved is not None:
            saved(before, site)
        seeded.append(site)
    return seeded


SNAPSHOT_NAME = "sites.json"
"""The sites a web worker read at start, kept in the data directory for a worker that starts
while Redis is away."""


def save_snapshot(path: Path, sites: Iterable[Site]) -> None:
    """Writes ``sites`` to ``path`` whole or not at all (a file of this process's, renamed),
    readable by the service alone; a disk that refuses it is passed over."""
    data = json.dumps([site.to_dict() for site in sites], ensure_ascii=False).encode()
    making = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        fd = os.open(making, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(making, path)
    except OSError:
        with contextlib.suppress(OSError):
            making.unlink()


def load_snapshot(path: Path) -> list[Site]:
    """The sites of the snapshot at ``path``; none when there is none or it is unreadable."""
    try:
        entries = json.loads(path.read_bytes())
        return [Site.create(entry) for entry in entries]
    except (OSError, ValueError, TypeError, InvalidInput):
        return []
