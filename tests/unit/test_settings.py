import json
import os
import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from analytics.errors import SettingsError
from analytics.settings import (
    BY_NAME,
    DECLARED,
    RENAMED,
    TABLE_END,
    TABLE_START,
    Declared,
    Settings,
    config_file_text,
    readme_section,
    usable_cpus,
)
from analytics.sites import read_sites_file

ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    s = Settings.load(environ={}, config_file=None)
    assert s.redis_url is None
    assert s.admin_token is None
    assert s.trusted_proxies == 0
    assert s.data_dir == Path("data")


def test_the_shipped_config_file_is_the_generated_one() -> None:
    shipped = ROOT / "config" / "analytics.toml"
    expected = config_file_text()
    assert shipped.read_text(encoding="utf-8") == expected, (
        "config/analytics.toml is not the one the declared settings give; write this there "
        "(`python -c 'from analytics.settings import config_file_text; "
        'print(config_file_text(), end="")\' > config/analytics.toml`):\n' + expected
    )
    assert Settings.load(environ={}, config_file=shipped) == Settings()


def test_the_config_file_sets_every_setting_to_its_default_or_comments_it_out(
    tmp_path: Path,
) -> None:
    text = config_file_text()
    written = set(tomllib.loads(text))
    commented = set(re.findall(r"^# (\w+) = ", text, flags=re.MULTILINE))
    assert written | commented == {f.name for f in fields(Settings)} - {"sources"}
    assert not written & commented
    # Unset or computed defaults, and log_format, whose default yields to a terminal.
    assert commented == {
        "redis_url",
        "admin_token",
        "sites_file",
        "workers",
        "metrics_token",
        "metrics_site_gauges",
        "log_format",
    }
    assert "\n# Log lines: one JSON object per line, or plain text.\n" in text
    assert "\n# Values: a whole number from 0 to 10. Default: `0`.\ntrusted_proxies = 0\n" in text
    # Each commented-out line, taken in, is the default too.
    uncommented = tmp_path / "analytics.toml"
    uncommented.write_text(re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE))
    assert set(tomllib.loads(uncommented.read_text())) == written | commented
    assert Settings.load(environ={}, config_file=uncommented) == Settings()


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "analytics.toml"
    config.write_text('trusted_proxies = 2\nkey_prefix = "x"\n')
    s = Settings.load(environ={"ANALYTICS_TRUSTED_PROXIES": "1"}, config_file=config)
    assert (s.trusted_proxies, s.key_prefix) == (1, "x")


def test_config_file_named_by_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text("threads = 3\n")
    assert Settings.load(environ={"ANALYTICS_CONFIG": str(config)}).threads == 3


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
    config.write_text("threads = 0\n")
    with pytest.raises(SettingsError, match=r"analytics.toml: threads: must be between"):
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


# -- every declared setting, from the environment and from the file -------------------------

TEXT_SAMPLES: dict[str, Any] = {
    "redis_url": "rediss://cache.example:6380/2",
    "data_dir": "/var/lib/visit-analytics",
    "admin_token": "an-admin-token-of-32-characters!",
    "sites_file": "<a file>",
    "key_prefix": "stats.v2",
    "bind": "0.0.0.0:9000",
    "metrics_token": "a-metrics-token-1234",
}
"""A value other than the default of each setting whose values a range or choices cannot give."""


def samples(declared: Declared, tmp_path: Path) -> list[Any]:
    """Valid values of a setting other than its default: both ends of a range, each choice."""
    if declared.name in TEXT_SAMPLES:
        sample = TEXT_SAMPLES[declared.name]
        if sample == "<a file>":
            sample = tmp_path / "sites.toml"
            sample.write_text("", encoding="utf-8")
        return [Path(sample) if declared.kind is Path else sample]
    if declared.kind is bool:
        return [not declared.default()]
    if declared.spec.choices:
        return [c for c in declared.spec.choices if c != declared.default()]
    low, high = declared.spec.low, declared.spec.high
    assert low is not None and high is not None, f"{declared.name}: no range and no sample"
    ends = [declared.kind(low), declared.kind(high)]
    return [v for v in ends if v != declared.default()]


def in_env(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def in_toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


@pytest.mark.parametrize("declared", DECLARED, ids=lambda d: d.name)
def test_every_setting_round_trips_from_the_environment_and_the_file(
    declared: Declared, tmp_path: Path
) -> None:
    values = samples(declared, tmp_path)
    assert values, f"{declared.name}: no value to try other than the default"
    config = tmp_path / "analytics.toml"
    for value in values:
        from_env = Settings.load(environ={declared.variable: in_env(value)}, config_file=None)
        assert getattr(from_env, declared.name) == value
        assert from_env.sources[declared.name] == declared.variable
        config.write_text(f"{declared.name} = {in_toml(value)}\n", encoding="utf-8")
        from_file = Settings.load(environ={}, config_file=config)
        assert getattr(from_file, declared.name) == value
        assert type(getattr(from_file, declared.name)) is type(value)
        assert from_file.sources[declared.name] == f"{config}: {declared.name}"


@pytest.mark.parametrize(
    "declared", [d for d in DECLARED if d.spec.low is not None], ids=lambda d: d.name
)
def test_a_value_out_of_range_names_where_it_came_from(declared: Declared, tmp_path: Path) -> None:
    assert declared.spec.low is not None and declared.spec.high is not None
    config = tmp_path / "analytics.toml"
    for outside in (declared.spec.low - 1, declared.spec.high + 1):
        value = declared.kind(outside)
        with pytest.raises(SettingsError) as caught:
            Settings.load(environ={declared.variable: str(value)}, config_file=None)
        assert caught.value.message.startswith(f"{declared.variable}: must be between")
        config.write_text(f"{declared.name} = {in_toml(value)}\n", encoding="utf-8")
        with pytest.raises(SettingsError) as caught:
            Settings.load(environ={}, config_file=config)
        assert caught.value.message.startswith(f"{config}: {declared.name}: must be between")


@pytest.mark.parametrize(
    ("name", "env_value", "toml_value", "problem"),
    [
        ("threads", "4.5", "4.5", "must be a whole number, got"),
        ("threads", "eight", "true", "must be a whole number, got"),
        ("read_cache_seconds", "soon", "false", "must be a number, got"),
        ("access_log", "maybe", "1", "must be true or false, got"),
        ("access_log", "--", '"+"', "must be true or false, got"),
        ("threads", "-", '"-"', "must be a whole number, got"),
        ("log_format", "xml", '"xml"', "must be one of json, text"),
        ("key_prefix", "a b", '"a b"', "must be 1 to 32 of"),
        ("key_prefix", "", "7", "must be text, got 7"),
        ("metrics_token", "short", '"short"', "must be at least 16 printable"),
        ("data_dir", "", "12", "must be a path"),
    ],
)
def test_a_bad_value_names_its_variable_or_its_file_and_key(
    tmp_path: Path, name: str, env_value: str, toml_value: str, problem: str
) -> None:
    variable = "ANALYTICS_" + name.upper()
    if env_value:
        with pytest.raises(SettingsError) as caught:
            Settings.load(environ={variable: env_value}, config_file=None)
        assert caught.value.message.startswith(f"{variable}: {problem}")
    config = tmp_path / "analytics.toml"
    config.write_text(f"{name} = {toml_value}\n", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ={}, config_file=config)
    assert caught.value.message.startswith(f"{config}: {name}: {problem}")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("Yes", True), ("1", True), (" on ", True), ("false", False), ("off", False)],
)
def test_switches_from_the_environment(raw: str, expected: bool) -> None:
    assert Settings.load(environ={"ANALYTICS_ACCESS_LOG": raw}).access_log is expected


def test_access_log_takes_its_older_spelling_for_on(tmp_path: Path) -> None:
    """`-` (stdout) was the value that turned the access log on before it was a setting."""
    from_env = Settings.load(environ={"ANALYTICS_ACCESS_LOG": "-"}, config_file=None)
    assert from_env.access_log is True
    config = tmp_path / "analytics.toml"
    config.write_text('access_log = "-"\n', encoding="utf-8")
    assert Settings.load(environ={}, config_file=config).access_log is True
    row = next(line for line in readme_section().splitlines() if "`ANALYTICS_ACCESS_LOG`" in line)
    assert "`-`, an older spelling, means `true`" in row


@pytest.mark.parametrize("value", ["127.0.0.1:8000", "0.0.0.0:8000", ""])
def test_the_removed_bind_stops_the_start_and_says_what_to_give_instead(
    value: str, tmp_path: Path
) -> None:
    """`bind` was the address of the server the web tier ran under; `analytics web` and
    `analytics serve` take --host and --port. An old value, even an empty one, is not passed
    over in silence."""
    instead = "removed: give the address as `--host` and `--port` of `analytics web`"
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ={"ANALYTICS_BIND": value}, config_file=None)
    assert caught.value.message.startswith(f"ANALYTICS_BIND: {instead}")
    config = tmp_path / "analytics.toml"
    config.write_text(f'bind = "{value}"\n', encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ={}, config_file=config)
    assert caught.value.message.startswith(f"{config}: bind: {instead}")
    assert "Removed: `ANALYTICS_BIND` (`bind` in the file)" in readme_section()


def test_an_empty_value_means_the_default(tmp_path: Path) -> None:
    config = tmp_path / "analytics.toml"
    config.write_text('threads = 3\nworkers = ""\nadmin_token = "an-admin-token-of-32-chars"\n')
    s = Settings.load(
        environ={"ANALYTICS_THREADS": "", "ANALYTICS_ADMIN_TOKEN": "", "ANALYTICS_WORKERS": ""},
        config_file=config,
    )
    assert (s.threads, s.workers, s.admin_token) == (8, usable_cpus(), None)


def test_sources_name_the_configured_settings_only(tmp_path: Path) -> None:
    config = tmp_path / "analytics.toml"
    config.write_text('log_format = "json"\nthreads = ""\nworkers = 3\n')
    s = Settings.load(
        environ={"ANALYTICS_WORKERS": "", "ANALYTICS_TRUSTED_PROXIES": "1"},
        config_file=config,
    )
    # An empty variable means the default, whatever the file says: workers has no source.
    assert s.sources == {
        "log_format": f"{config}: log_format",
        "trusted_proxies": "ANALYTICS_TRUSTED_PROXIES",
    }
    assert s.workers == usable_cpus()


def test_workers_default_to_the_cpus_this_process_may_use() -> None:
    assert Settings().workers == usable_cpus() >= 1
    assert usable_cpus() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000", "all"), ("150000 100000", 2), ("50000 100000", 1), (None, "all")],
)
def test_workers_follow_a_container_cpu_quota(
    tmp_path: Path, cpu_max: str | None, expected: object
) -> None:
    cgroup = tmp_path / "cpu.max"
    if cpu_max is not None:
        cgroup.write_text(cpu_max + "\n")
    cpus = len(os.sched_getaffinity(0))
    want = cpus if expected == "all" else min(cpus, int(str(expected)))
    assert usable_cpus(cgroup) == want


# -- unknown names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "suggested"),
    [
        ("ANALYTICS_SERVE_THREAD", "ANALYTICS_THREADS"),
        ("ANALYTICS_WORKER", "ANALYTICS_WORKERS"),
        ("ANALYTICS_TRUSTED_PROXY", "ANALYTICS_TRUSTED_PROXIES"),
        ("ANALYTICS_threads", "ANALYTICS_THREADS"),
        ("ANALYTICS_COLOUR", None),
    ],
)
def test_an_unknown_variable_stops_the_start_and_names_it(
    variable: str, suggested: str | None
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ={variable: "4", "ANALYTICS_THREADS": "4"}, config_file=None)
    message = caught.value.message
    if suggested is None:
        assert message == f"{variable}: unknown setting"
    else:
        assert message == f"{variable}: unknown setting; did you mean {suggested}?"


@pytest.mark.parametrize("variable", ["ANALYTICS_SERVE_THREADS", "ANALYTICS_serve_threads"])
def test_a_renamed_variable_says_what_to_use_instead(variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ={variable: "4"}, config_file=None)
    assert caught.value.message == f"{variable}: renamed: use ANALYTICS_THREADS instead"


def test_every_renamed_setting_is_a_setting_now_and_the_readme_says_so() -> None:
    assert RENAMED
    for old, new in RENAMED.items():
        assert old not in BY_NAME and new in BY_NAME
        assert (
            f"`ANALYTICS_{old.upper()}` (`{old}` in the file) is now `ANALYTICS_{new.upper()}`"
            in (readme_section())
        )


KUBERNETES_SERVICE = {
    "ANALYTICS_SERVICE_HOST": "10.96.12.34",
    "ANALYTICS_SERVICE_PORT": "8000",
    "ANALYTICS_SERVICE_PORT_HTTP": "8000",
    "ANALYTICS_SERVICE_PORT_METRICS_2": "9101",
    "ANALYTICS_PORT": "tcp://10.96.12.34:8000",
    "ANALYTICS_PORT_8000_TCP": "tcp://10.96.12.34:8000",
    "ANALYTICS_PORT_8000_TCP_PROTO": "tcp",
    "ANALYTICS_PORT_8000_TCP_PORT": "8000",
    "ANALYTICS_PORT_8000_TCP_ADDR": "10.96.12.34",
    "ANALYTICS_PORT_53_UDP": "udp://10.96.12.34:53",
}
"""What Kubernetes puts in every pod of a namespace with a Service named `analytics`."""
DOCKER_LINK = {
    "ANALYTICS_PORT": "tcp://172.17.0.5:8000",
    "ANALYTICS_PORT_8000_TCP": "tcp://172.17.0.5:8000",
    "ANALYTICS_PORT_8000_TCP_ADDR": "172.17.0.5",
    "ANALYTICS_NAME": "/web/analytics",
    "ANALYTICS_ENV_ANALYTICS_REDIS_URL": "redis://redis:6379/0",
    "ANALYTICS_ENV_PATH": "/usr/local/bin:/usr/bin",
}
"""What `docker run --link analytics:analytics` puts in the linking container."""


@pytest.mark.parametrize("injected", [KUBERNETES_SERVICE, DOCKER_LINK], ids=["k8s", "docker"])
def test_variables_of_a_service_or_link_named_analytics_are_passed_over(
    injected: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "analytics.toml"
    empty.write_text("", encoding="utf-8")
    s = Settings.load(environ={**injected, "ANALYTICS_THREADS": "4"}, config_file=empty)
    assert s.threads == 4
    assert s.sources == {"threads": "ANALYTICS_THREADS"}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ANALYTICS_PORT", "9000", "ANALYTICS_PORT: unknown setting"),
        ("ANALYTICS_PORT", "tcp://10.0.0.1", "ANALYTICS_PORT: unknown setting"),
        ("ANALYTICS_NAME", "laocai", "ANALYTICS_NAME: unknown setting"),
        ("ANALYTICS_HOST", "0.0.0.0", "ANALYTICS_HOST: unknown setting"),
        ("ANALYTICS_SERVICE_HOSTS", "10.0.0.1", "ANALYTICS_SERVICE_HOSTS: unknown setting"),
        ("ANALYTICS_PORT_8000", "tcp://10.0.0.1:8000", "ANALYTICS_PORT_8000: unknown setting"),
        ("ANALYTICS_PORT_8000_TCP_HOST", "10.0.0.1", "ANALYTICS_PORT_8000_TCP_HOST: unknown"),
        ("ANALYTICS_PORT_8000_HTTP", "x", "ANALYTICS_PORT_8000_HTTP: unknown setting"),
        ("ANALYTICS_ENV", "x", "ANALYTICS_ENV: unknown setting"),
        ("ANALYTICS_service_host", "10.0.0.1", "ANALYTICS_service_host: unknown setting"),
        ("ANALYTICS_SERVICE_THREADS", "4", "ANALYTICS_SERVICE_THREADS: unknown setting; did you"),
    ],
)
def test_only_service_link_variables_are_passed_over(
    variable: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ={**KUBERNETES_SERVICE, variable: value}, config_file=None)
    assert caught.value.message.startswith(message)


def test_other_variables_are_not_settings(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text("threads = 2\n")
    env = {"ANALYTICS_CONFIG": str(config), "ANALYTICS": "x", "PATH": "/bin", "analytics_x": "y"}
    assert Settings.load(environ=env).threads == 2


def test_an_unknown_key_of_the_file_is_named_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "analytics.toml"
    config.write_text("thread = 4\n")
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ={}, config_file=config)
    assert caught.value.message == f"{config}: thread: unknown setting; did you mean threads?"


def test_a_renamed_key_of_the_file_says_what_to_use_instead(tmp_path: Path) -> None:
    config = tmp_path / "analytics.toml"
    config.write_text("serve_threads = 4\n")
    with pytest.raises(SettingsError) as caught:
        Settings.load(environ={}, config_file=config)
    assert caught.value.message == f"{config}: serve_threads: renamed: use threads instead"


# -- one TOML reader -------------------------------------------------------------------------


def test_an_unreadable_file_is_named_by_the_setting_that_names_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("threads = \n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"^ANALYTICS_CONFIG: cannot read '.*broken.toml': "):
        Settings.load(environ={"ANALYTICS_CONFIG": str(broken)})
    with pytest.raises(SettingsError, match=r"^config file: cannot read '.*broken.toml': "):
        Settings.load(environ={}, config_file=broken)
    with pytest.raises(SettingsError, match=r"^ANALYTICS_SITES_FILE: cannot read '.*broken"):
        read_sites_file(broken)


# -- the README ------------------------------------------------------------------------------


def test_the_readme_table_is_the_declared_settings() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.count(TABLE_START) == 1 and readme.count(TABLE_END) == 1
    start = readme.index(TABLE_START)
    written = readme[start : readme.index(TABLE_END, start) + len(TABLE_END)]
    assert written == readme_section(), (
        "README.md's table of settings is not the declared one; put this between its markers "
        "(`from analytics.settings import readme_section; print(readme_section())`):\n"
        + readme_section()
    )


def test_the_table_has_a_row_per_setting_with_its_range_and_default() -> None:
    rows = [line for line in readme_section().splitlines() if line.startswith("| `ANALYTICS_")]
    assert [row.split("`")[1] for row in rows] == [d.variable for d in DECLARED]
    by_variable = {row.split("`")[1]: row for row in rows}
    assert by_variable["ANALYTICS_TRUSTED_PROXIES"].endswith(
        "| a whole number from 0 to 10 | `0` |"
    )
    assert by_variable["ANALYTICS_LOG_FORMAT"].endswith("| `json` or `text` | `json` |")
    assert by_variable["ANALYTICS_ACCESS_LOG"].endswith("| `true` or `false` | `false` |")
    assert by_variable["ANALYTICS_REDIS_URL"].endswith("| unset: embedded Redis |")
    assert "one per CPU" in by_variable["ANALYTICS_WORKERS"]
