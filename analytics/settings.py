"""One frozen Settings, read once at start from config/analytics.toml and ANALYTICS_* variables."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from analytics.errors import SettingsError

ENV_PREFIX = "ANALYTICS_"
KEY_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,32}")
TOKEN = re.compile(r"[\x21-\x7e]{16,512}")
"""A bearer token: what an HTTP header carries unchanged (printable ASCII, no spaces)."""
CONFIG_ENV = "ANALYTICS_CONFIG"
DEFAULT_CONFIG_FILE = Path("config") / "analytics.toml"
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")


@dataclass(frozen=True)
class Settings:
    """Every setting; each one ``name`` is overridden by the variable ``ANALYTICS_NAME``."""

    redis_url: str | None = None
    data_dir: Path = Path("data")
    admin_token: str | None = None
    trusted_proxies: int = 0
    sites_file: Path | None = None
    key_prefix: str = "va"
    rate_limit_visitor_per_minute: int = 300
    rate_limit_ip_per_minute: int = 1200
    duplicate_window_seconds: int = 10
    read_cache_seconds: float = 1.0
    site_cache_seconds: float = 5.0
    serve_threads: int = 8
    period_retention_days: int = 62
    housekeeping_interval_seconds: float = 60.0
    close_grace_seconds: int = 300
    metrics_token: str | None = None
    metrics_max_sites: int = 100
    log_format: str = "json"
    # Not a setting: where the values came from, for error messages.
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        config_file: Path | None = None,
    ) -> Settings:
        """Defaults, then the config file, then the environment; validated before returning."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        path = config_file or _config_path(env)
        if path is not None:
            for name, value in _read_config(path).items():
                values[name] = value
                sources[name] = f"{path}: {name}"
        for f in fields(cls):
            if f.name == "sources":
                continue
            var = ENV_PREFIX + f.name.upper()
            if var in env:
                values[f.name] = env[var]
                sources[f.name] = var
        coerced = {name: _coerce(name, raw, sources[name]) for name, raw in values.items()}
        try:
            return cls(**coerced, sources=sources)
        except SettingsError as err:
            raise SettingsError(sources.get(err.setting, err.setting), _problem(err)) from None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _problem(err: SettingsError) -> str:
    return err.message.split(": ", 1)[1]


def _config_path(env: Mapping[str, str]) -> Path | None:
    if env.get(CONFIG_ENV):
        path = Path(env[CONFIG_ENV])
        if not path.is_file():
            raise SettingsError(CONFIG_ENV, f"no such file {str(path)!r}")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise SettingsError(str(path), f"cannot read: {err}") from None
    known = {f.name for f in fields(Settings)} - {"sources"}
    for name in data:
        if name not in known:
            raise SettingsError(f"{path}: {name}", "unknown setting")
    return data


_TYPES: dict[str, type] = {
    "trusted_proxies": int,
    "rate_limit_visitor_per_minute": int,
    "rate_limit_ip_per_minute": int,
    "duplicate_window_seconds": int,
    "serve_threads": int,
    "period_retention_days": int,
    "close_grace_seconds": int,
    "metrics_max_sites": int,
    "housekeeping_interval_seconds": float,
    "read_cache_seconds": float,
    "site_cache_seconds": float,
}
_OPTIONAL = {"redis_url", "admin_token", "sites_file", "metrics_token"}
LOG_FORMATS = ("json", "text")


def _coerce(name: str, raw: Any, source: str) -> Any:
    if name in _OPTIONAL and (raw is None or raw == ""):
        return None
    if name in ("data_dir", "sites_file"):
        return Path(str(raw))
    kind = _TYPES.get(name)
    if kind is None:
        return str(raw)
    if isinstance(raw, bool) or (kind is int and isinstance(raw, float)):
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(source, f"must be {what}, got {raw!r}")
    try:
        return kind(str(raw).strip()) if isinstance(raw, str) else kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise SettingsError(source, f"must be {what}, got {raw!r}") from None


def _validate(s: Settings) -> None:
    if s.redis_url is not None:
        scheme = s.redis_url.split("://", 1)[0] if "://" in s.redis_url else ""
        if scheme not in REDIS_SCHEMES:
            raise SettingsError(
                "redis_url",
                f"must start with one of {', '.join(x + '://' for x in REDIS_SCHEMES)}; "
                f"got {s.redis_url!r}",
            )
    for name in ("admin_token", "metrics_token"):
        token = getattr(s, name)
        if token is not None and not TOKEN.fullmatch(token):
            raise SettingsError(
                name, "must be at least 16 printable ASCII characters, without spaces"
            )
    if s.log_format not in LOG_FORMATS:
        raise SettingsError("log_format", f"must be one of {', '.join(LOG_FORMATS)}")
    _bounded(s, "metrics_max_sites", 0, 10_000)
    _bounded(s, "trusted_proxies", 0, 10)
    _bounded(s, "rate_limit_visitor_per_minute", 1, 1_000_000)
    _bounded(s, "rate_limit_ip_per_minute", 1, 10_000_000)
    _bounded(s, "duplicate_window_seconds", 0, 3600)
    _bounded(s, "read_cache_seconds", 0, 2)
    _bounded(s, "site_cache_seconds", 0, 300)
    _bounded(s, "serve_threads", 1, 256)
    # 62 days keep last_month whole on its last day.
    _bounded(s, "period_retention_days", 62, 36500)
    _bounded(s, "housekeeping_interval_seconds", 1, 3600)
    _bounded(s, "close_grace_seconds", 0, 3600)
    if s.sites_file is not None and not s.sites_file.is_file():
        raise SettingsError("sites_file", f"no such file {str(s.sites_file)!r}")
    if not KEY_PREFIX.fullmatch(s.key_prefix):
        raise SettingsError("key_prefix", "must be 1 to 32 of A-Z a-z 0-9 _ . -")


def _bounded(s: Settings, name: str, low: float, high: float) -> None:
    value = getattr(s, name)
    if not low <= value <= high:
        raise SettingsError(name, f"must be between {low} and {high}, got {value}")
