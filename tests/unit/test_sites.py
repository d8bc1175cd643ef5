from pathlib import Path
from typing import Any

import pytest

from analytics.errors import InvalidInput, SettingsError
from analytics.periods import WeekStart
from analytics.sites import (
    Offsets,
    Site,
    SiteChanges,
    normalize_origin,
    read_sites_file,
    valid_site_id,
)


def test_defaults_of_api_md() -> None:
    site = Site.create({"id": "demo"})
    assert site.timezone == "Asia/Ho_Chi_Minh"
    assert site.week_start is WeekStart.MONDAY
    assert site.origins == ()
    assert (site.online_window_seconds, site.session_timeout_seconds) == (300, 1800)
    assert site.box_metric == "visits"
    assert site.offsets == Offsets(0, 0, 0)


def test_round_trip_through_the_stored_form() -> None:
    site = Site.create(
        {
            "id": "laocai",
            "name": "Cổng thông tin Lào Cai",
            "timezone": "Europe/Berlin",
            "week_start": "sunday",
            "origins": ["https://laocai.gov.vn/", "https://LAOCAI.gov.vn"],
            "offsets": {"pageviews": 5},
        }
    )
    assert site.origins == ("https://laocai.gov.vn",)
    assert Site.create(site.to_dict()) == site


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("demo", True),
        ("a", True),
        ("0-laocai-gov", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("-demo", False),
        ("Demo", False),
        ("de mo", False),
        ("{demo}", False),
        ("demo:x", False),
        ("", False),
        (5, False),
        ("đà-nẵng", False),
    ],
)
def test_site_ids(value: Any, ok: bool) -> None:
    assert valid_site_id(value) is ok


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"id": "x", "colour": "red"}, "colour"),
        ({"id": "x", "timezone": "Mars/Olympus"}, "timezone"),
        ({"id": "x", "timezone": "+07:00"}, "timezone"),
        ({"id": "x", "timezone": "localtime"}, "timezone"),
        ({"id": "x", "timezone": "Factory"}, "timezone"),
        ({"id": "x", "timezone": "posix/Asia/Ho_Chi_Minh"}, "timezone"),
        ({"id": "x", "name": "evil\u202egnp.exe"}, "name"),
        ({"id": "x", "name": "csi\u009b31m"}, "name"),
        ({"id": "x", "name": "line\nbreak"}, "name"),
        ({"id": "x", "week_start": "friday"}, "week_start"),
        ({"id": "x", "origins": "https://a.vn"}, "origins"),
        ({"id": "x", "origins": ["https://a.vn/path"]}, "origins"),
        ({"id": "x", "origins": ["ftp://a.vn"]}, "origins"),
        ({"id": "x", "online_window_seconds": 0}, "online_window_seconds"),
        ({"id": "x", "online_window_seconds": True}, "online_window_seconds"),
        ({"id": "x", "session_timeout_seconds": "1800"}, "session_timeout_seconds"),
        ({"id": "x", "box_metric": "hits"}, "box_metric"),
        ({"id": "x", "offsets": {"pageviews": -1}}, "offsets.pageviews"),
        ({"id": "x", "offsets": {"likes": 1}}, "offsets.likes"),
        ({"id": "x", "honor_gpc": "yes"}, "honor_gpc"),
        ({"id": "X"}, "id"),
        ({"name": "no id"}, "id"),
    ],
)
def test_invalid_fields_are_named(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Site.create(fields)
    assert caught.value.field == named


def test_the_id_cannot_change() -> None:
    with pytest.raises(InvalidInput):
        Site.create({"id": "a"}).updated({"id": "b"})


@pytest.mark.parametrize(
    ("text", "origin"),
    [
        ("https://Example.VN", "https://example.vn"),
        ("https://example.vn:443/", "https://example.vn"),
        ("http://example.vn:8080", "http://example.vn:8080"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("https://user@example.vn", None),
        ("https://example.vn/path", None),
        ("https://example.vn?q", None),
        ("example.vn", None),
        ("https://example.vn:99999", None),
        ("https://example.vn:0", None),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("https://xn--bcher-kva.example", "https://xn--bcher-kva.example"),
        ("http://192.0.2.1:8080", "http://192.0.2.1:8080"),
        ("http://[2001:DB8:0:0::1]", "http://[2001:db8::1]"),
        ("http://<img src=x onerror=alert(1)>", None),
        ("http://exa mple.com", None),
        ("http://-bad.example", None),
        ("http://a..example", None),
        ("http://" + "a" * 64 + ".example", None),
    ],
)
def test_origins(text: str, origin: str | None) -> None:
    assert normalize_origin(text) == origin


def test_sites_file(tmp_path: Path) -> None:
    path = tmp_path / "sites.toml"
    path.write_text(
        '[[site]]\nid = "laocai"\nname = "Cổng thông tin Lào Cai"\n'
        'origins = ["https://laocai.gov.vn"]\n\n[[site]]\nid = "hue"\ntimezone = "Asia/Bangkok"\n',
        encoding="utf-8",
    )
    assert [s["id"] for s in read_sites_file(path)] == ["laocai", "hue"]
    path.write_text('[[site]]\nid = "bad"\ntimezone = "Nowhere/City"\n')
    with pytest.raises(SettingsError, match=r"ANALYTICS_SITES_FILE: site #1: 'timezone'"):
        read_sites_file(path)


def test_site_changes_are_validated_and_normalised_however_they_are_made() -> None:
    typed = SiteChanges(
        name="  Tin tức ", origins=("https://A.vn/", "https://a.vn"), week_start=WeekStart.SUNDAY
    )
    parsed = SiteChanges.parse(
        {"name": "  Tin tức ", "origins": ["https://A.vn/", "https://a.vn"], "week_start": "sunday"}
    )
    assert typed == parsed
    assert typed.given() == {
        "name": "Tin tức",
        "week_start": WeekStart.SUNDAY,
        "origins": ("https://a.vn",),
    }
    site = Site.new("tin-tuc", typed)
    assert (site.id, site.name, site.origins) == ("tin-tuc", "Tin tức", ("https://a.vn",))
    assert site.timezone == Site(id="x").timezone  # not given: the default
    assert SiteChanges(origins=()).applied_to(site).origins == ()  # empty: any origin


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: SiteChanges(timezone="Mars/Olympus"), "timezone"),
        (lambda: SiteChanges(origins=("ftp://a.vn",)), "origins"),
        (lambda: SiteChanges(online_window_seconds=5), "online_window_seconds"),
        (lambda: SiteChanges(name="line\nbreak"), "name"),
        (lambda: SiteChanges(box_metric="hits"), "box_metric"),
        (lambda: Offsets(visits=-1), "offsets.visits"),
        (lambda: Site.new("Bad_Id"), "id"),
        (lambda: SiteChanges.parse({"id": "other"}), "id"),
    ],
)
def test_typed_values_refuse_what_the_api_refuses(make: Any, named: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        make()
    assert caught.value.field == named
