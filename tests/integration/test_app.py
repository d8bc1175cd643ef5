"""The app factory: it wires, seeds the sites, and refuses to start without a Redis URL."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry

from analytics import create_app
from analytics.errors import SettingsError
from analytics.services import Services
from analytics.settings import Settings


def _services(settings: Settings) -> Services:
    found: Services = create_app(settings, registry=CollectorRegistry()).extensions["analytics"]
    return found


def test_the_demo_site_by_default(settings: Settings, redis_client: redis.Redis) -> None:
    sites = _services(settings).sites.all()
    assert [(s.id, s.timezone, s.origins) for s in sites] == [("demo", "Asia/Ho_Chi_Minh", ())]


def test_a_restart_keeps_changes_made_to_the_demo_site(
    settings: Settings, redis_client: redis.Redis
) -> None:
    _services(settings).sites.upsert({"id": "demo", "timezone": "Europe/Berlin"})
    assert _services(settings).sites.get("demo").timezone == "Europe/Berlin"


def test_the_sites_file_registers_and_updates_at_start(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "sites.toml"
    path.write_text(
        '[[site]]\nid = "laocai"\nname = "Cổng thông tin Lào Cai"\n'
        'origins = ["https://laocai.gov.vn", "https://www.laocai.gov.vn"]\n',
        encoding="utf-8",
    )
    services = _services(settings.replace(sites_file=path))
    services.sites.upsert({"id": "laocai", "offsets": {"pageviews": 7}})
    path.write_text('[[site]]\nid = "laocai"\nweek_start = "sunday"\n', encoding="utf-8")
    site = _services(settings.replace(sites_file=path)).sites.get("laocai")
    assert site.name == "Cổng thông tin Lào Cai"  # kept: the file no longer names it
    assert str(site.week_start) == "sunday"  # updated from the file
    assert site.offsets.pageviews == 7  # kept
    assert [s.id for s in services.sites.all()] == ["laocai"]  # no demo with a sites file


def test_no_redis_url_is_refused() -> None:
    with pytest.raises(SettingsError, match="ANALYTICS_REDIS_URL"):
        create_app(Settings(redis_url=None))
