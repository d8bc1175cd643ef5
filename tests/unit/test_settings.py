import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from analytics.errors import SettingsError
from analytics.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = Settings.load(environ={}, config_file=None)
    assert s.redis_url is None
    assert s.admin_token is None
    assert s.trusted_proxies == 0
    assert s.data_dir == Path("data")


def test_the_shipped_config_file_documents_the_defaults() -> None:
    shipped = Settings.load(environ={}, config_file=ROOT / "config" / "analytics.toml")
    assert shipped == Settings()
    documented = tomllib.loads((ROOT / "config" / "analytics.toml").read_text())
    assert set(documented) == {f.name for f in fields(Settings)} - {"sources"}


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "analytics.toml"
    config.write_text('trusted_proxies = 2\nkey_prefix = "x"\n')
    s = Settings.load(environ={"ANALYTICS_TRUSTED_PROXIES": "1"}, config_file=config)
    assert (s.trusted_proxies, s.key_prefix) == (1, "x")


def test_config_file_named_by_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text("serve_threads = 3\n")
    assert Settings.load(environ={"ANALYTICS_CONFIG": str(config)}).serve_threads == 3


def test_empty_variables_mean_unset() -> None:
    s = Settings.load(environ={"ANALYTICS_REDIS_URL": "", "ANALYTICS_ADMIN_TOKEN": ""})
    assert s.redis_url is None and s.admin_token is None


@pytest.mark.parametrize(
    ("env", "named", "problem"),
    [
        ({"ANALYTICS_TRUSTED_PROXIES": "two"}, "ANALYTICS_TRUSTED_PROXIES", "whole number"),
        ({"ANALYTICS_TRUSTED_PROXIES": "-1"}, "ANALYTICS_TRUSTED_PROXIES", "between"),
        ({"ANALYTICS_REDIS_URL": "http://x"}, "ANALYTICS_REDIS_URL", "redis://"),
        ({"ANALYTICS_ADMIN_TOKEN": "short"}, "ANALYTICS_ADMIN_TOKEN", "at least 16 printable"),
        (
            {"ANALYTICS_ADMIN_TOKEN": "a token with spaces"},
            "ANALYTICS_ADMIN_TOKEN",
            "without spaces",
        ),
        ({"ANALYTICS_ADMIN_TOKEN": "jeton-d’administration"}, "ANALYTICS_ADMIN_TOKEN", "ASCII"),
        ({"ANALYTICS_SITES_FILE": "/nonexistent.toml"}, "ANALYTICS_SITES_FILE", "no such file"),
        ({"ANALYTICS_READ_CACHE_SECONDS": "5"}, "ANALYTICS_READ_CACHE_SECONDS", "between"),
        ({"ANALYTICS_CONFIG": "/nonexistent.toml"}, "ANALYTICS_CONFIG", "no such file"),
    ],
)
def test_a_bad_value_names_its_setting(env: dict[str, str], named: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ=env)
    assert caught.value.message.startswith(named + ":")
    assert problem in caught.value.message


def test_a_bad_value_in_the_file_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "analytics.toml"
    config.write_text("serve_threads = 0\n")
    with pytest.raises(SettingsError, match=r"analytics.toml: serve_threads: must be between"):
        Settings.load(environ={}, config_file=config)
    config.write_text("colour = 'blue'\n")
    with pytest.raises(SettingsError, match=r"colour: unknown setting"):
        Settings.load(environ={}, config_file=config)


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "rediss://h:6380",
        "unix:///run/redis.sock",
        "redis+cluster://h:7000",
    ],
)
def test_redis_urls(url: str) -> None:
    assert Settings.load(environ={"ANALYTICS_REDIS_URL": url}).redis_url == url
