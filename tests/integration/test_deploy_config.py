"""The deployment files agree with the code and with one another.

docker-compose.yml, the Dockerfile, .env.example and the files of config/ (Redis, Prometheus,
the alert rules and their unit tests, Alertmanager, the Grafana dashboard) are checked against
what the service really is: its console script and click options, a real `analytics web`, its
Flask routes, the metric families that a real scrape exposes, a real redis-server, promtool and
(when installed) amtool.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import click
import pytest
import redis
import yaml
from flask import Flask
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from analytics import create_app
from analytics.cli import cli
from analytics.clock import FixedClock
from analytics.embedded import free_port, redis_server_binary
from analytics.services import Services
from analytics.settings import (
    CONFIG_ENV,
    DECLARED,
    ENV_PREFIX,
    REMOVED,
    RENAMED,
    SERVICE_LINK_NAMES,
    SERVICE_LINK_VALUES,
    Settings,
    usable_cpus,
)
from tests.helpers import hit, stop_gracefully, wait_for, worker_pids

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"
REDIS_CONF = ROOT / "config" / "redis.conf"
PROMETHEUS_CONFIG = ROOT / "config" / "prometheus.yml"
ALERTS = ROOT / "config" / "alerts.yml"
ALERTS_TESTS = ROOT / "config" / "alerts.test.yml"
ALERTMANAGER_CONFIG = ROOT / "config" / "alertmanager.yml"
DASHBOARD = ROOT / "config" / "grafana" / "visit-analytics.json"

SERVICES = ("redis", "web", "scheduler", "prometheus", "alertmanager")
PROMETHEUS_PORT = 9090  # prom/prometheus's default --web.listen-address
PROMETHEUS_ETC = PurePosixPath("/etc/prometheus")
PROMETHEUS_USER_CAN_READ = 0o004  # the image runs as nobody: "other" must read the secret
ALERTMANAGER_PORT = 9093  # prom/alertmanager's default --web.listen-address
ALERTMANAGER_CONFIG_TARGET = "/etc/alertmanager/alertmanager.yml"  # the image's --config.file
ALERTMANAGER_STORAGE = "/alertmanager"  # the image's --storage.path

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is missing: Debian's package `prometheus` provides it (for .ci/run too)",
)
AMTOOL = shutil.which("amtool")
needs_amtool = pytest.mark.skipif(
    AMTOOL is None,
    reason="amtool is missing: Debian's package `prometheus-alertmanager` provides it",
)

# An exact release: 7.2.10-alpine, v2.53.3 (a digest pins it too). Never latest, nor 7 or 7.2.
EXACT_TAG = re.compile(r"^v?\d+\.\d+\.\d+(?:-[A-Za-z0-9.]+)?$")
COMPOSE_SIZE = re.compile(r"(\d+)([bkmg]?)", re.IGNORECASE)
COMPOSE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Redis forks for a snapshot or an AOF rewrite: its memory limit must hold the fork's copied
# pages on top of maxmemory.
REDIS_FORK_HEADROOM = 2

# Prometheus keeps a scraped label that clashes with a target label under this name
# (honor_labels: false): a metric's own `job` or `instance` would be stored under these names.
STORED_AS = {"job": "exported_job", "instance": "exported_instance"}
TARGET_LABELS = frozenset({"job", "instance"})
# The series a family of each type is stored as (its _created series is a family of its own).
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}

STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
OUR_METRIC = re.compile(r"\b(analytics_[A-Za-z0-9_:]*)")
SELECTOR = re.compile(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)")
LABEL_VALUES = re.compile(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,\s*(\w+)\s*\)")
GRAFANA_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")
URL = re.compile(r"https?://([^/:'\"\s]+):(\d+)(/[^'\"\s]*)?")
URL_HOST = re.compile(r"https?://([^/:'\"\s]+)")


# -- reading the files -----------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return loaded


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(PROMETHEUS_CONFIG)
    return loaded


def services_of(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


REQUIRED_VALUE = "a-required-value-set-in-dot-env"
"""What a test puts for a ``${VAR:?message}`` that Compose requires .env to set."""


def interpolate(value: str) -> str:
    """``value`` as Compose makes it with a minimal .env: each ``${VAR:-default}`` is its
    default, each required ``${VAR:?message}`` a placeholder value."""

    def one(match: re.Match[str]) -> str:
        if "?" in (match.group(2) or ""):
            return REQUIRED_VALUE
        return match.group(3) or ""

    return INTERPOLATION.sub(one, value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (str(item).partition("=") for item in raw)
        return {name: value for name, _, value in pairs}
    return {str(name): "" if value is None else str(value) for name, value in raw.items()}


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined: (INSTRUCTION, arguments)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def exec_form(arguments: str) -> list[str]:
    if arguments.startswith("["):
        parsed: list[str] = json.loads(arguments)
        return parsed
    return shlex.split(arguments)


def command(service: dict[str, Any]) -> list[str] | None:
    """The argv a service runs: its command, the Dockerfile's CMD when it is built here, or
    None for an image's own default."""
    given = service.get("command")
    if given is not None:
        return [str(x) for x in given] if isinstance(given, list) else shlex.split(given)
    if "build" in service:
        return exec_form([rest for word, rest in final_stage() if word == "CMD"][-1])
    return None


def option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.partition("=")[2]
    return None


def redis_conf() -> dict[str, str]:
    directives: dict[str, str] = {}
    for line in REDIS_CONF.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            name, _, value = stripped.partition(" ")
            directives[name.lower()] = value.strip()
    return directives


def compose_bytes(value: str | int) -> int:
    """A memory size as Compose writes it (``1g``, ``512m``: powers of 1024)."""
    match = COMPOSE_SIZE.fullmatch(str(value).strip())
    assert match is not None, f"not a Compose memory size: {value!r}"
    return int(match.group(1)) * COMPOSE_UNITS[match.group(2).lower()]


def limits(service: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = service.get("deploy", {}).get("resources", {}).get("limits", {})
    return found


def listen_port(service: dict[str, Any]) -> int:
    """The port a service's process listens on, from its own configuration."""
    argv = command(service)
    if argv is None:
        image = str(service.get("image", ""))
        if image.startswith("prom/alertmanager"):
            return ALERTMANAGER_PORT
        assert image.startswith("prom/prometheus"), image
        return PROMETHEUS_PORT
    if argv[0] == "redis-server":
        return int(redis_conf().get("port", "6379"))
    if argv[:2] == ["analytics", "scheduler"]:
        return int(option(argv, "--metrics-port") or 0)
    if argv[:2] in (["analytics", "web"], ["analytics", "serve"]):
        return int(option(argv, "--port") or 8000)
    raise AssertionError(f"no known listening port for {argv}")


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount; named volumes are left out."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                mounts.append((str(volume["source"]), str(volume["target"])))
            continue
        source, _, rest = str(volume).partition(":")
        if source.startswith((".", "/", "~")):
            mounts.append((source, rest.partition(":")[0]))
    return mounts


def published_ports(service: dict[str, Any]) -> list[int]:
    """The container side of each published port."""
    ports = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.append(int(entry["target"]))
        else:
            ports.append(int(str(entry).split("/")[0].rpartition(":")[2]))
    return ports


def healthcheck(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return shlex.split(test)
    assert test[0] in ("CMD", "CMD-SHELL"), test
    return [str(x) for x in test[1:]] if test[0] == "CMD" else shlex.split(test[1])


def scrape_jobs(prometheus_config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in prometheus_config["scrape_configs"]}


def alert_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]
    ]
    return rules


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(within: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in within.get("panels", []):
        yield panel
        yield from panels(panel)


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel query and of the templating queries."""
    queries = [
        (f"panel {panel['id']} {panel.get('title')!r} {target.get('refId')}", target["expr"])
        for panel in panels(dashboard())
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in dashboard()["templating"]["list"]:
        if variable.get("type") == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            for metric, label in LABEL_VALUES.findall(text):
                queries.append((f"variable {variable['name']}", f'{metric}{{{label}!=""}}'))
    return queries


def alert_queries() -> list[tuple[str, str]]:
    return [(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False
    )


# -- docker-compose.yml ----------------------------------------------------------------------


def test_compose_runs_redis_the_web_tier_the_scheduler_prometheus_and_alertmanager(
    compose: dict[str, Any],
) -> None:
    assert set(services_of(compose)) == set(SERVICES)


def test_every_service_has_memory_and_cpu_limits(compose: dict[str, Any]) -> None:
    """As deploy.resources.limits, which `docker compose` applies without swarm; the older
    mem_limit / cpus keys would be a second, conflicting place for them."""
    for name, service in services_of(compose).items():
        assert not {"mem_limit", "cpus", "memswap_limit"} & set(service), name
        limit = limits(service)
        assert float(limit.get("cpus", 0)) > 0, f"{name} has no CPU limit"
        assert compose_bytes(limit.get("memory", "0")) >= 64 * 1024**2, f"{name}: memory limit"


def test_compose_bytes_reads_docker_sizes() -> None:
    assert compose_bytes("1g") == compose_bytes("1024m") == 1024**3
    assert compose_bytes("256M") == 256 * 1024**2
    assert compose_bytes(1000) == compose_bytes("1000b") == 1000
    with pytest.raises(AssertionError):
        compose_bytes("1gb")  # Docker would refuse it too


def test_the_web_tier_has_as_many_cpus_as_it_runs_workers_by_default(
    compose: dict[str, Any],
) -> None:
    """ANALYTICS_WORKERS empty: one worker per CPU the container may use, i.e. its limit."""
    web = services_of(compose)["web"]
    assert interpolate(environment(web)["ANALYTICS_WORKERS"]) == ""
    assert float(limits(web)["cpus"]).is_integer(), "a fraction of a CPU runs one worker less"


def test_every_service_rotates_its_logs(compose: dict[str, Any]) -> None:
    for name, service in services_of(compose).items():
        logging = service.get("logging") or {}
        assert logging.get("driver") == "json-file", f"{name} keeps Docker's default logging"
        options = logging.get("options") or {}
        assert compose_bytes(options["max-size"]) <= 100 * 1024**2, name
        assert 1 <= int(options["max-file"]) <= 20, name
        # Docker refuses options that are not strings.
        assert all(isinstance(v, str) for v in options.values()), f"{name}: {options}"


def test_every_image_is_pinned_to_an_exact_version(compose: dict[str, Any]) -> None:
    for name, service in services_of(compose).items():
        if "build" in service:
            continue  # built from this repository; its base image is the Dockerfile's
        image = str(service["image"])
        if "@sha256:" in image:
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag (that is latest)"
        assert EXACT_TAG.fullmatch(tag), f"{name}: {image} is no exact version"


def test_the_image_pin_check_refuses_moving_tags() -> None:
    for tag in ("latest", "7", "7.2", "7-alpine", "v2.53", "alpine"):
        assert not EXACT_TAG.fullmatch(tag), tag
    for tag in ("7.2.10-alpine", "v2.53.3", "v0.27.0", "10.4.2"):
        assert EXACT_TAG.fullmatch(tag), tag


def test_the_web_tier_keeps_its_spool_on_a_volume(compose: dict[str, Any]) -> None:
    """Hits that Redis cannot take wait in <data dir>/spool: the data directory is a named
    volume, so they outlive the container, and the image makes that directory for its user,
    so that a new volume is the user's to write."""
    web = services_of(compose)["web"]
    data_dir = PurePosixPath(environment(web)["ANALYTICS_DATA_DIR"])
    assert data_dir.is_absolute(), data_dir
    named = {
        rest.partition(":")[0]: source
        for source, _, rest in (str(v).partition(":") for v in web.get("volumes", []))
        if not source.startswith((".", "/", "~"))
    }
    assert str(data_dir) in named, f"no named volume is mounted at {data_dir}"
    assert named[str(data_dir)] in (compose.get("volumes") or {}), named[str(data_dir)]
    stage = final_stage()
    workdir = PurePosixPath([rest for word, rest in stage if word == "WORKDIR"][-1])
    user = [rest for word, rest in stage if word == "USER"][-1]
    relative = data_dir.relative_to(workdir).as_posix()
    assert any(
        word == "RUN" and f"mkdir {relative}" in rest and f"chown {user}:{user} {relative}" in rest
        for word, rest in stage
    ), f"the image does not make {data_dir} for {user}"


def test_redis_runs_its_own_server_on_the_mounted_configuration(compose: dict[str, Any]) -> None:
    redis_service = services_of(compose)["redis"]
    argv = command(redis_service)
    assert argv is not None
    assert str(redis_service["image"]).startswith("redis:7")
    assert argv[0] == "redis-server"
    mounted = dict((target, source) for source, target in bind_mounts(redis_service))
    assert argv[1] in mounted, "redis-server's configuration file is not mounted"
    assert (ROOT / mounted[argv[1]]).resolve() == REDIS_CONF
    assert any(str(v).endswith(":/data") for v in redis_service["volumes"]), "no volume at /data"
    assert redis_conf()["dir"] == "/data"


def test_prometheus_runs_its_image_default_on_the_mounted_files(compose: dict[str, Any]) -> None:
    prometheus = services_of(compose)["prometheus"]
    # The image's own command reads /etc/prometheus/prometheus.yml and stores in /prometheus.
    assert command(prometheus) is None
    mounted = dict((target, source) for source, target in bind_mounts(prometheus))
    assert (ROOT / mounted[str(PROMETHEUS_ETC / "prometheus.yml")]).resolve() == PROMETHEUS_CONFIG
    for rule_file in load_yaml(PROMETHEUS_CONFIG)["rule_files"]:
        target = str(PROMETHEUS_ETC / rule_file)
        assert target in mounted, f"rule file {rule_file} is not mounted at {target}"
        assert (ROOT / mounted[target]).is_file()
    assert any(str(v).endswith(":/prometheus") for v in prometheus["volumes"])


@pytest.mark.parametrize("name", ["web", "scheduler"])
def test_our_services_run_the_console_script_of_this_package(
    compose: dict[str, Any], name: str
) -> None:
    service = services_of(compose)[name]
    argv = command(service)
    assert argv is not None
    scripts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["scripts"]
    assert argv[0] in scripts, f"{name} runs {argv[0]!r}, no console script of this package"
    assert argv[0] == "analytics", "only the analytics command is checked against its CLI"
    check_click_command(argv[1:])
    assert argv[1] == name, f"the {name} service runs `analytics {argv[1]}`"


def check_click_command(args: list[str]) -> None:
    assert args, "`analytics` alone only prints its help"
    name, options = args[0], args[1:]
    assert name in cli.commands, f"`analytics {name}` is no command"
    found = cli.commands[name]
    known = {opt for param in found.params for opt in (*param.opts, *param.secondary_opts)}
    for arg in options:
        if arg.startswith("--"):
            assert arg.partition("=")[0] in known, f"`analytics {name}` has no option {arg}"
    try:
        found.make_context(name, list(options))  # parses and converts, runs nothing
    except click.ClickException as err:
        raise AssertionError(f"`analytics {' '.join(args)}`: {err.format_message()}") from None


@pytest.mark.usefixtures("redis_client")  # a flushed Redis: the app registers its sites
def test_the_wsgi_entry_point_imports_and_is_a_wsgi_callable(
    compose: dict[str, Any], redis_url: str, tmp_path: Path
) -> None:
    """analytics.wsgi:app, for another WSGI server, in the web service's environment."""
    # In a process of its own: the module reads the environment and sets up logging.
    probe = "import sys\nfrom analytics.wsgi import app\nsys.exit(0 if callable(app) else 3)\n"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=service_env(compose, "web", redis_url, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@contextmanager
def compose_web(compose: dict[str, Any], redis_url: str, tmp: Path) -> Iterator[tuple[int, str]]:
    """The web service's command, run as the container runs it (from a copy of the image's
    working directory, in the service's environment) but on a free port and the test Redis:
    (the port, the address it listens on), once every worker answers."""
    web = services_of(compose)["web"]
    argv = command(web)
    assert argv is not None and argv[:2] == ["analytics", "web"]
    host = option(argv, "--host")
    assert host is not None, "`analytics web` would listen on the loopback only"
    port = free_port()
    moved = [str(port) if arg == str(listen_port(web)) else arg for arg in argv]
    assert moved != argv, argv
    workdir = tmp / "app"
    shutil.copytree(ROOT / "config", workdir / "config")  # the Dockerfile's COPY config
    env = service_env(compose, "web", redis_url, tmp)
    log = tmp / "web.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / moved[0]), *moved[1:]],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    expected = int(env.get("ANALYTICS_WORKERS") or usable_cpus())

    def ready() -> bool:
        assert process.poll() is None, log.read_text()
        return len(worker_pids(process)) == expected

    try:
        wait_for(ready, "the web service's workers")
        yield port, host
    finally:
        stop_gracefully(process, log)


@pytest.mark.usefixtures("redis_client")
def test_the_web_service_listens_where_its_port_is_published_and_passes_its_healthcheck(
    compose: dict[str, Any], redis_url: str, tmp_path: Path, app: Flask
) -> None:
    """`analytics web` itself, given the compose command and environment: it listens on every
    address, with the default workers (the variables .env leaves empty), and the compose
    healthcheck passes against it."""
    web = services_of(compose)["web"]
    argv = healthcheck(web)
    path = URL.findall(argv[2])[0][2]
    endpoint, _ = app.url_map.bind("localhost").match(path, method="GET")
    assert endpoint == "ops.readyz"
    assert listen_port(web) in published_ports(web)
    assert environment(web)["ANALYTICS_WORKERS"] == "${ANALYTICS_WORKERS:-}"
    with compose_web(compose, redis_url, tmp_path) as (port, host):
        assert host in ("0.0.0.0", "::"), f"the published port would reach nothing on {host}"
        wait_for(lambda: healthcheck_passes(argv[2], port), "the web healthcheck")
        run_healthcheck(argv[2], port)


def service_env(compose: dict[str, Any], name: str, redis_url: str, tmp: Path) -> dict[str, str]:
    """The service's environment with no .env, on the test Redis instead of the compose one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANALYTICS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({k: interpolate(v) for k, v in environment(services_of(compose)[name]).items()})
    env["ANALYTICS_REDIS_URL"] = redis_url
    env["TMPDIR"] = str(tmp)
    if "ANALYTICS_DATA_DIR" in env:  # the container's volume; the spool goes there
        env["ANALYTICS_DATA_DIR"] = str(tmp / "data")
    return env


def test_every_bind_mount_is_a_file_of_the_repository(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services_of(compose).items():
        for source, target in bind_mounts(service):
            assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
            assert (ROOT / source).resolve().is_relative_to(ROOT), f"{name} mounts {source}"
            assert target.startswith("/"), target
        for volume in service.get("volumes", []):
            named = str(volume).partition(":")[0]
            if isinstance(volume, str) and not named.startswith((".", "/", "~")):
                assert named in declared, f"{name} uses the undeclared volume {named}"


def test_published_ports_are_the_ports_the_services_listen_on(compose: dict[str, Any]) -> None:
    services = services_of(compose)
    assert published_ports(services["web"]) == [8000]
    assert published_ports(services["prometheus"]) == [PROMETHEUS_PORT]
    assert published_ports(services["alertmanager"]) == [ALERTMANAGER_PORT]
    for name in ("web", "prometheus", "alertmanager"):
        assert published_ports(services[name]) == [listen_port(services[name])], name
        # The web tier is for the reverse proxy on this host (docs/operations.md says how to
        # publish it when there is none); Prometheus and Alertmanager have no authentication.
        assert str(services[name]["ports"][0]).startswith("127.0.0.1:"), name
    # config/redis.conf leaves protected mode off because Redis publishes no port.
    assert "ports" not in services["redis"]
    assert redis_conf()["protected-mode"] == "no"
    assert "ports" not in services["scheduler"]


def test_healthchecks_probe_the_port_each_service_listens_on(compose: dict[str, Any]) -> None:
    for name, service in services_of(compose).items():
        argv = healthcheck(service)
        if argv[0] == "redis-cli":
            assert argv[1:] == ["ping"], argv
            assert listen_port(service) == 6379, "redis-cli pings the default port"
            continue
        urls = URL.findall(" ".join(argv))
        assert len(urls) == 1, f"{name}: {argv}"
        host, port, path = urls[0]
        assert host == "127.0.0.1", f"{name} probes {host}"
        assert int(port) == listen_port(service), f"{name} probes port {port}"
        if name in ("prometheus", "alertmanager"):
            assert argv[0] == "wget" and path == "/-/ready", argv
        else:
            assert argv[:2] == ["python", "-c"], argv
            compile(argv[2], f"{name} healthcheck", "exec")


def test_the_scheduler_healthcheck_passes_against_its_metrics_server(
    compose: dict[str, Any], services: Services
) -> None:
    argv = healthcheck(services_of(compose)["scheduler"])
    assert URL.findall(argv[2])[0][2] == "/metrics"
    # The server `analytics scheduler --metrics-port` starts, on the scheduler's registry.
    server, thread = start_http_server(0, addr="127.0.0.1", registry=services.metrics.registry)
    try:
        run_healthcheck(argv[2], server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def healthcheck_result(code: str, port: int) -> subprocess.CompletedProcess[str]:
    """Runs the healthcheck's Python, pointed at ``port`` instead of the container's port."""
    moved = URL.sub(lambda m: m.group(0).replace(f":{m.group(2)}", f":{port}", 1), code)
    return subprocess.run(
        [sys.executable, "-c", moved], capture_output=True, text=True, timeout=30, check=False
    )


def healthcheck_passes(code: str, port: int) -> bool:
    return healthcheck_result(code, port).returncode == 0


def run_healthcheck(code: str, port: int) -> None:
    result = healthcheck_result(code, port)
    assert result.returncode == 0, f"the healthcheck fails:\n{result.stderr[-2000:]}"


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not NAME=value"
            values[name.strip()] = value.strip()
    return values


def compose_variables(node: Any) -> set[str]:
    """Every variable that Compose interpolates in the values of the file."""
    found: set[str] = set()
    if isinstance(node, dict | list):
        for child in node.values() if isinstance(node, dict) else node:
            found |= compose_variables(child)
    elif isinstance(node, str):
        unescaped = node.replace("$$", "")
        found |= {m.group(1) for m in INTERPOLATION.finditer(unescaped)}
        found |= set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", unescaped))
    return found


def test_every_compose_variable_is_in_env_example(compose: dict[str, Any]) -> None:
    used = compose_variables(compose)
    used |= {str(s["environment"]) for s in (compose.get("secrets") or {}).values()}
    example = env_example()
    assert used <= set(example), f"not in .env.example: {sorted(used - set(example))}"
    assert set(example) <= used, f"unused in compose: {sorted(set(example) - used)}"


SETTING_VARIABLE = re.compile(r"\bANALYTICS_[A-Z][A-Z0-9_]*\b")
NAMED_FILES = (COMPOSE_FILE, ENV_EXAMPLE, DOCKERFILE, ROOT / "README.md", ROOT / ".ci" / "run")


def passed_over(name: str) -> bool:
    """Whether the service passes over a variable of this name as one that Kubernetes or Docker
    sets for a service named analytics (a name ending in _, as the docs write
    `ANALYTICS_ENV_...`, stands for the names it begins)."""
    full = name + "NAME" if name.endswith("_") else name
    return name in SERVICE_LINK_VALUES or SERVICE_LINK_NAMES.fullmatch(full) is not None


def test_every_analytics_variable_named_is_a_setting() -> None:
    """The service refuses an ANALYTICS_* variable that is not a setting: none is named in the
    deployment files, config/, bench/, the package or the README, but as the old name of a
    renamed or removed setting or as one the service passes over."""
    known = {d.variable for d in DECLARED} | {CONFIG_ENV}
    known |= {ENV_PREFIX + old.upper() for old in (*RENAMED, *REMOVED)}
    placeholder = "ANALYTICS_NAME"  # how the docs write "the variable of the setting name"
    files = [
        *NAMED_FILES,
        *(p for p in (ROOT / "config").rglob("*") if p.is_file()),
        *(ROOT / "bench").rglob("*.py"),
        *(ROOT / "bench").rglob("*.lua"),
        ROOT / "bench" / "README.md",
        *(ROOT / "analytics").rglob("*.py"),
    ]
    named = {
        (path.relative_to(ROOT).as_posix(), name)
        for path in files
        for name in SETTING_VARIABLE.findall(path.read_text(encoding="utf-8"))
        if name != placeholder
    }
    assert len(named) > 20
    unknown = sorted(
        (where, name) for where, name in named if name not in known and not passed_over(name)
    )
    assert unknown == [], unknown
    assert not passed_over("ANALYTICS_SERVE_THREADS") and not passed_over("ANALYTICS_ENV")


def ignore_patterns(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [x.strip().strip("/") for x in lines if x.strip() and not x.startswith(("#", "!"))]


def test_no_secret_is_committed_or_built_into_the_image() -> None:
    for name, value in env_example().items():
        if name.endswith(("_TOKEN", "_PASSWORD", "_SECRET")):
            assert value == "", f".env.example sets {name}: leave it empty"
    assert any(fnmatch.fnmatch(".env", p) for p in ignore_patterns(DOCKERIGNORE)), (
        "the image's build context would carry .env"
    )


def test_env_is_ignored_by_git() -> None:
    assert any(fnmatch.fnmatch(".env", p) for p in ignore_patterns(ROOT / ".gitignore")), (
        ".env, which holds the tokens, is not in .gitignore"
    )


def test_the_metrics_token_reaches_prometheus_from_the_same_variable(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    services = services_of(compose)
    granted = {
        (s if isinstance(s, str) else s["source"]): s for s in services["prometheus"]["secrets"]
    }
    files = [
        job["authorization"]["credentials_file"]
        for job in prometheus_config["scrape_configs"]
        if "credentials_file" in job.get("authorization", {})
    ]
    assert files, "prometheus.yml sends no token to /metrics"
    for path in files:
        secret = PurePosixPath(path)
        assert secret.parent == PurePosixPath("/run/secrets"), path
        assert secret.name in granted, f"the prometheus service is not granted {secret.name}"
        grant = granted[secret.name]
        mode = grant.get("mode", 0o444) if isinstance(grant, dict) else 0o444
        assert int(mode) & PROMETHEUS_USER_CAN_READ, f"nobody cannot read {path}"
        # The web tier's token and the secret come from one variable of .env.
        variable = compose["secrets"][secret.name]["environment"]
        web_token = environment(services["web"])["ANALYTICS_METRICS_TOKEN"]
        match = INTERPOLATION.fullmatch(web_token)
        assert match is not None and match.group(1) == variable, web_token


# -- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = ignore_patterns(DOCKERIGNORE)
    copies = [shlex.split(rest) for word, rest in dockerfile() if word in ("COPY", "ADD")]
    assert copies
    for args in copies:
        if any(arg.startswith("--from") for arg in args):
            continue
        sources = [arg for arg in args if not arg.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            top = PurePosixPath(source).parts[0]
            for pattern in ignored:
                assert not fnmatch.fnmatch(source, pattern), f"{source} is in .dockerignore"
                assert not fnmatch.fnmatch(top, pattern), f"{source} is in .dockerignore"


def test_dockerfile_runs_the_web_tier_as_compose_does(compose: dict[str, Any]) -> None:
    stage = final_stage()
    assert stage[0] == ("FROM", "python:3.11-slim")
    users = [rest for word, rest in stage if word == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image runs as root"
    web = services_of(compose)["web"]
    assert exec_form([rest for word, rest in stage if word == "CMD"][-1]) == command(web)
    assert [int(rest) for word, rest in stage if word == "EXPOSE"] == [listen_port(web)]


# -- config/redis.conf -----------------------------------------------------------------------


def test_redis_conf_loads_and_keeps_counts(compose: dict[str, Any], tmp_path: Path) -> None:
    """The file loads in a real redis-server (the bundled 6.2; compose runs 7, which takes all
    that the file uses), and the settings that the counts rely on are in force, maxmemory
    among them, within the memory compose gives Redis. Its `dir` (the container's volume)
    becomes a temporary directory: Redis enters it as it reads the file."""
    assert redis_conf()["dir"] == "/data"
    conf = tmp_path / "redis.conf"
    conf.write_text(
        re.sub(r"(?m)^dir /data$", f"dir {tmp_path}", REDIS_CONF.read_text(encoding="utf-8"))
    )
    port = free_port()
    log = tmp_path / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [redis_server_binary(), str(conf), "--port", str(port), "--bind", "127.0.0.1"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = redis.Redis(port=port, decode_responses=True)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError("redis-server refused config/redis.conf:\n" + log.read_text())
        return bool(client.ping())

    try:
        wait_for(ready, "redis-server on config/redis.conf")
        config = client.config_get("*")
        assert config["appendonly"] == "yes"
        assert config["appendfsync"] == "always"
        assert config["maxmemory-policy"] == "noeviction"
        assert config["save"], "no RDB snapshots"
        maxmemory = int(config["maxmemory"])
    finally:
        client.close()
        process.terminate()
        process.wait(10)
    # With no maxmemory, noeviction never acts: Redis grows until the kernel kills it.
    assert maxmemory >= 64 * 1024**2, "config/redis.conf sets no maxmemory"
    limit = compose_bytes(limits(services_of(compose)["redis"])["memory"])
    assert limit >= REDIS_FORK_HEADROOM * maxmemory, (
        f"Redis may use {limit} bytes: a fork during a snapshot could take it past that"
    )


# -- Prometheus: configuration, rules, their unit tests --------------------------------------


@needs_promtool
def test_prometheus_config_passes_promtool(compose: dict[str, Any], tmp_path: Path) -> None:
    """promtool on /etc/prometheus as the container sees it: the mounted files, and a token
    file where the compose secret will be."""
    etc = tmp_path / "etc"
    etc.mkdir()
    for source, target in bind_mounts(services_of(compose)["prometheus"]):
        if PurePosixPath(target).parent == PROMETHEUS_ETC:
            shutil.copy(ROOT / source, etc / PurePosixPath(target).name)
    config = load_yaml(etc / "prometheus.yml")
    for job in config["scrape_configs"]:
        auth = job.get("authorization", {})
        if "credentials_file" in auth:
            token = tmp_path / PurePosixPath(auth["credentials_file"]).name
            token.write_text("")
            auth["credentials_file"] = str(token)
    (etc / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    result = run_promtool("check", "config", str(etc / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alert_rules_pass_promtool() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alert_rules_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", str(ALERTS_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_say_how_bad_and_what_happened() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), names
    for rule in alert_rules():
        assert rule.get("for"), f"{rule['alert']} fires on one bad evaluation"
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"].get("summary"), rule["alert"]
        assert rule["annotations"].get("description"), rule["alert"]


def test_scrape_targets_are_the_compose_services(
    compose: dict[str, Any], prometheus_config: dict[str, Any], app: Flask
) -> None:
    services = services_of(compose)
    scraped = set()
    for job in prometheus_config["scrape_configs"]:
        # A scraped label that clashes with a target label would be renamed exported_*.
        assert not job.get("honor_labels"), job
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, _, port = str(target).rpartition(":")
                if host == "localhost":
                    assert int(port) == PROMETHEUS_PORT
                    continue
                assert host in services, f"{job['job_name']} scrapes {host}, no compose service"
                assert int(port) == listen_port(services[host]), f"{target}: wrong port"
                scraped.add(host)
                path = job.get("metrics_path", "/metrics")
                if host == "web":
                    endpoint, _ = app.url_map.bind("localhost").match(path, method="GET")
                    assert endpoint == "ops.metrics"
                else:
                    assert path == "/metrics"
    assert scraped == {"web", "scheduler"}


def alert_tests() -> list[dict[str, Any]]:
    """Every alert_rule_test of config/alerts.test.yml."""
    cases: list[dict[str, Any]] = [
        check for test in load_yaml(ALERTS_TESTS)["tests"] for check in test["alert_rule_test"]
    ]
    return cases


def test_every_alert_fires_in_a_unit_test_and_stays_silent_in_another() -> None:
    """promtool checks only the alerts a test names: each alert has a case where it fires
    and one where it does not."""
    fires = {case["alertname"] for case in alert_tests() if case.get("exp_alerts")}
    silent = {case["alertname"] for case in alert_tests() if not case.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "never seen firing"
    assert names - silent == set(), "never seen silent"
    assert (fires | silent) <= names, "tests of alerts that do not exist"


# -- Alertmanager ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alertmanager_config() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(ALERTMANAGER_CONFIG)
    return loaded


def test_alertmanager_runs_its_image_default_on_the_mounted_config(
    compose: dict[str, Any],
) -> None:
    alertmanager = services_of(compose)["alertmanager"]
    # The image's own command reads this path and stores silences in /alertmanager.
    assert command(alertmanager) is None
    mounted = dict((target, source) for source, target in bind_mounts(alertmanager))
    assert (ROOT / mounted[ALERTMANAGER_CONFIG_TARGET]).resolve() == ALERTMANAGER_CONFIG
    assert any(str(v).endswith(f":{ALERTMANAGER_STORAGE}") for v in alertmanager["volumes"])


def test_prometheus_sends_alerts_to_the_alertmanager_service(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    services = services_of(compose)
    targets = [
        str(target)
        for manager in prometheus_config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]
    assert targets == ["alertmanager:9093"], targets
    host, _, port = targets[0].rpartition(":")
    assert str(services[host]["image"]).startswith("prom/alertmanager:")
    assert int(port) == listen_port(services[host])
    assert "alertmanager" in services["prometheus"].get("depends_on", [])


def receivers_named(route: dict[str, Any]) -> Iterator[str]:
    if "receiver" in route:
        yield route["receiver"]
    for child in route.get("routes", []):
        yield from receivers_named(child)


def test_alertmanager_routes_every_alert_to_a_receiver_to_fill_in(
    alertmanager_config: dict[str, Any],
) -> None:
    """A default route to a declared receiver (so no alert is dropped), and a placeholder for
    operators to replace: no real endpoint is committed."""
    route = alertmanager_config["route"]
    declared = {receiver["name"] for receiver in alertmanager_config["receivers"]}
    assert route["receiver"] in declared, "the default route has no receiver"
    assert set(receivers_named(route)) <= declared
    urls = [
        str(webhook["url"])
        for receiver in alertmanager_config["receivers"]
        for webhook in receiver.get("webhook_configs", [])
    ]
    assert urls, "no webhook to fill in"
    for url in urls:
        host = URL_HOST.match(url)
        assert host is not None and host.group(1).endswith(".invalid"), f"a real endpoint: {url}"


def test_alertmanager_matchers_name_labels_the_alerts_have(
    alertmanager_config: dict[str, Any],
) -> None:
    """A route or inhibition on an alert name or severity that no rule has would never match."""
    names = {rule["alert"] for rule in alert_rules()}
    severities = {rule["labels"]["severity"] for rule in alert_rules()}
    matchers: list[str] = []

    def collect(route: dict[str, Any]) -> None:
        matchers.extend(route.get("matchers", []))
        for child in route.get("routes", []):
            collect(child)

    collect(alertmanager_config["route"])
    for rule in alertmanager_config.get("inhibit_rules", []):
        matchers += rule.get("source_matchers", []) + rule.get("target_matchers", [])
    assert matchers
    for matcher in matchers:
        match = MATCHER.fullmatch(matcher)
        assert match is not None, matcher
        label, op, value = match.groups()
        allowed = {"alertname": names, "severity": severities}[label]
        values = value.split("|") if op == "=~" else [value]
        assert set(values) <= allowed, f"{matcher}: {sorted(set(values) - allowed)}"


@needs_amtool
def test_alertmanager_config_passes_amtool() -> None:
    assert AMTOOL is not None
    result = subprocess.run(
        [AMTOOL, "check-config", str(ALERTMANAGER_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- Grafana ---------------------------------------------------------------------------------


def test_dashboard_is_a_grafana_dashboard_with_unique_panel_ids() -> None:
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 41
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), f"panel ids repeat: {ids}"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "label_values(analytics_site_online, site)" in json.dumps(variables["site"])
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            uses = {a or b for a, b in GRAFANA_VARIABLE.findall(target["expr"])}
            assert uses <= {"site", "__rate_interval"}, f"{panel['title']}: {uses}"


@needs_promtool
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each query, its Grafana variables given values, as a recording rule for promtool."""
    values = {"site": ".*", "__rate_interval": "5m"}
    rules = [
        {
            "record": f"dashboard:query_{i}",
            "expr": GRAFANA_VARIABLE.sub(lambda m: values[m.group(1) or m.group(2)], expr),
        }
        for i, (_, expr) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# -- the queries ask for what a real scrape exposes ------------------------------------------


# Labels whose values the service names itself, each series created at 0 when it starts (or,
# for `task`, by the scrape's housekeeping runs): a query may only ask for those values.
ENUMERATED_LABELS = frozenset({"outcome", "operation", "task"})
PLAIN_ALTERNATIVES = re.compile(r"\w+(?:\|\w+)*")


class Exposed:
    """The series a scrape of the service gives Prometheus, with their stored label names
    (None for a family that no sample shows yet, so its labels are unknown) and the values
    of their enumerated labels."""

    def __init__(self, exposition: str) -> None:
        self.labels: dict[str, set[str] | None] = {}
        self.values: dict[tuple[str, str], set[str]] = {}
        for family in text_string_to_metric_families(exposition):
            for suffix in SERIES_SUFFIXES.get(family.type, ("",)):
                self.labels.setdefault(family.name + suffix, None)
            for sample in family.samples:
                stored = {STORED_AS.get(name, name) for name in sample.labels} | TARGET_LABELS
                self.labels[sample.name] = (self.labels.get(sample.name) or set()) | stored
                for name in ENUMERATED_LABELS & set(sample.labels):
                    self.values.setdefault((sample.name, name), set()).add(sample.labels[name])

    def unknown_values(self, metric: str, label: str, op: str, value: str) -> list[str]:
        """The values an `=` or `=~` matcher on an enumerated label asks for that no series
        of the metric has (a regex only when it is a plain alternation of words)."""
        have = self.values.get((metric, label))
        if have is None or op not in ("=", "=~"):
            return []
        if op == "=~" and not PLAIN_ALTERNATIVES.fullmatch(value):
            return []
        wanted = value.split("|") if op == "=~" else [value]
        return [v for v in wanted if v not in have]

    def problems(self, expr: str, jobs: set[str]) -> list[str]:
        found = []
        bare = STRING.sub('""', expr)
        metrics = set(OUR_METRIC.findall(bare))
        found += [f"{m} is not exposed" for m in sorted(metrics) if m not in self.labels]
        known = [self.labels.get(m) for m in metrics]
        for metric, matchers in SELECTOR.findall(expr):
            for label, op, value in MATCHER.findall(matchers):
                have = self.labels.get(metric)
                if metric.startswith("analytics_") and have is not None and label not in have:
                    found.append(f"{metric} has no label {label} (it has {sorted(have)})")
                if label == "job" and op == "=" and value not in jobs:
                    found.append(f'job="{value}" is no scrape job')
                for missing in self.unknown_values(metric, label, op, value):
                    found.append(f'{metric} has no {label} "{missing}"')
        if all(k is not None for k in known):
            available = set(TARGET_LABELS).union(*(k for k in known if k is not None))
            for group in GROUPING.findall(bare):
                for label in filter(None, (x.strip() for x in group.split(","))):
                    if label not in available:
                        found.append(f"no series here has the label {label}")
                    elif STORED_AS.get(label) in available:
                        found.append(f"{label} is the scrape's; the metric's is {STORED_AS[label]}")
        return found


@pytest.fixture
def exposed(settings: Settings, clock: FixedClock, redis_client: redis.Redis) -> Exposed:
    """One real scrape of /metrics after one hit and one run of each housekeeping job, from
    the web tier as compose runs it: /metrics behind its token (which brings the per-site
    gauges)."""
    token = "metrics-token-of-the-compose-web"
    app = create_app(
        settings.replace(metrics_token=token), clock=clock, registry=CollectorRegistry()
    )
    client = app.test_client()
    services: Services = app.extensions["analytics"]
    assert hit(client) == 204
    for job in ("close_periods", "trim_online", "delete_salts"):
        services.housekeeper.run(job)
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    return Exposed(response.get_data(as_text=True))


@pytest.mark.parametrize("queries", [dashboard_queries, alert_queries], ids=["dashboard", "alerts"])
def test_queries_ask_for_exposed_metrics_and_labels(
    exposed: Exposed,
    prometheus_config: dict[str, Any],
    queries: Callable[[], list[tuple[str, str]]],
) -> None:
    jobs = set(scrape_jobs(prometheus_config))
    problems = [
        f"{where}: {problem}"
        for where, expr in queries()
        for problem in exposed.problems(expr, jobs)
    ]
    assert not problems, "\n".join(problems)


def test_the_query_check_catches_what_would_never_match(exposed: Exposed) -> None:
    """`job` is the scrape job's, so `job="close_periods"` would never match (the housekeeping
    job is the label `task`); nor would a label or a metric that the service does not have."""
    metric = "analytics_scheduler_last_success_timestamp_seconds"
    jobs = {"visit-analytics", "visit-analytics-scheduler"}
    assert exposed.problems(f'{metric}{{task="close_periods"}}', jobs) == []
    assert exposed.problems(f'{metric}{{job="close_periods"}}', jobs) == [
        'job="close_periods" is no scrape job'
    ]
    assert exposed.problems(f'{metric}{{operation="hit"}}', jobs) == [
        f"{metric} has no label operation (it has ['instance', 'job', 'task'])"
    ]
    assert exposed.problems(f"max by (route) ({metric})", jobs) == [
        "no series here has the label route"
    ]
    assert exposed.problems(f"max by (job, task) ({metric})", jobs) == []
    assert exposed.problems("rate(analytics_nonesuch_total[5m])", jobs) == [
        "analytics_nonesuch_total is not exposed"
    ]
    # An outcome or an operation that the service does not have (a typo, a renamed one).
    hits = "analytics_hits_total"
    assert exposed.problems(f'{hits}{{outcome=~"counted|bot"}}', jobs) == []
    assert exposed.problems(f'{hits}{{outcome=~"counted|cuonted"}}', jobs) == [
        f'{hits} has no outcome "cuonted"'
    ]
    assert exposed.problems(f'{hits}{{outcome="nonesuch"}}', jobs) == [
        f'{hits} has no outcome "nonesuch"'
    ]
    assert exposed.problems(f'{hits}{{outcome!="nonesuch"}}', jobs) == []
    assert exposed.problems('analytics_redis_errors_total{operation="hti"}', jobs) == [
        'analytics_redis_errors_total has no operation "hti"'
    ]
