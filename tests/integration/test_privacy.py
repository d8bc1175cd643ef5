"""No client address stored anywhere, and the service's files its own: a scan of every Redis key
and value, the audit log, the spool, the files on disk and the log output of `analytics serve`
after hits, admin actions and failed authentications from known addresses; the file modes; and
deleted salts gone from the append-only file."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from analytics.clock import FixedClock
from analytics.embedded import EmbeddedRedis, free_port
from analytics.logs import JsonFormatter, NoClientAddresses
from analytics.services import Services
from analytics.spool import SUFFIX
from analytics.store.salts import Rewrite
from tests.helpers import ANALYTICS, BROWSER_UA, TOKEN, app_on, service_env, wait_for

IPV4 = "203.0.113.77"
IPV6 = "2001:db8:85a3:4d2::7334"
NEEDLES = [
    IPV4.encode(),
    IPV6.encode(),
    b"2001:db8:85a3:4d2",  # the /64 prefix, as in "2001:db8:85a3:4d2::/64"
    b"2001:0db8:85a3:04d2",  # the exploded form
    b"2001:0db8:85a3:04d2:0000:0000:0000:7334",
]
"""Every usual text form of the two client addresses, lower case."""


def addresses_in(data: bytes) -> list[bytes]:
    lowered = data.lower()
    return [needle for needle in NEEDLES if needle in lowered]


def request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> int:
    sent = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": BROWSER_UA, **(headers or {})},
        method=method,
    )
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        err.read()
        return err.code


def audit_entries(port: int) -> bytes:
    sent = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/admin/audit?limit=1000",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(sent, timeout=10) as response:
        return bytes(response.read())


@contextmanager
def serving(workdir: Path, port: int, output: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`analytics serve` behind a trusted proxy, the admin API on, an access log, its output
    (stdout and stderr) in ``output``."""
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [ANALYTICS, "serve", "--port", str(port), "--workers", "1"],
            cwd=workdir,
            env=service_env(
                workdir / "data",
                ANALYTICS_TRUSTED_PROXIES="1",
                ANALYTICS_ADMIN_TOKEN=TOKEN,
                ANALYTICS_ACCESS_LOG="true",
                ANALYTICS_LOG_FORMAT="json",
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for(lambda: request(port, "GET", "/healthz") == 200, "analytics serve")
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(30)


def act_as(port: int, address: str, n: int) -> None:
    """A reader, an admin and an attacker at ``address``, as a trusted proxy forwards them."""
    forwarded = {"X-Forwarded-For": address}
    for page in range(3):
        hit = {"site": "demo", "url": f"https://example.vn/{n}/{page}"}
        assert request(port, "POST", "/api/v1/hit", hit, forwarded) == 204
    beat = {"site": "demo", "url": f"https://example.vn/{n}/0", "type": "heartbeat"}
    assert request(port, "POST", "/api/v1/hit", beat, forwarded) == 204
    assert request(port, "POST", "/api/v1/hit", {"site": 1}, forwarded) == 400
    admin = {**forwarded, "Authorization": f"Bearer {TOKEN}"}
    site = f"privacy-{n}"
    assert request(port, "POST", "/api/v1/admin/sites", {"id": site}, admin) == 201
    assert request(port, "PATCH", f"/api/v1/admin/sites/{site}", {"name": "P"}, admin) == 200
    reset = {"windows": ["today"]}
    assert request(port, "POST", f"/api/v1/admin/sites/{site}/reset", reset, admin) == 200
    wrong = {**forwarded, "Authorization": "Bearer wrong"}
    statuses = [request(port, "GET", "/api/v1/admin/sites", None, wrong) for _ in range(12)]
    # The throttle slides over real minutes: one that turns during the twelve may let the
    # eleventh through. Its exact limit is tested on a fixed clock (test_admin_auth.py).
    assert statuses[:10] == [401] * 10 and statuses[-1] == 429, statuses
    assert request(port, "GET", "/api/v1/admin/sites", None, admin) == 200  # never locked out


def redis_dump(client: redis.Redis) -> dict[bytes, bytes]:
    """Every key of ``client`` and a text of its value, whatever its type."""
    found: dict[bytes, bytes] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "stream":
            value = client.xrange(key)
        else:
            raise AssertionError(f"a key of an unexpected type: {key!r} {kind}")
        found[key] = repr(value).encode()
    return found


def files_under(directory: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
def test_serve_stores_and_logs_no_client_address_and_keeps_its_files_private(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # as an older version, or another umask, left it
    (data / "notes.txt").write_text("kept")
    (data / "notes.txt").chmod(0o644)
    port, output = free_port(), tmp_path / "serve.log"
    with serving(tmp_path, port, output):
        url = EmbeddedRedis.running_url(data)
        assert url is not None
        act_as(port, IPV4, 4)
        act_as(port, IPV6, 6)
        # Redis stopped: the hits go to the spool, which is private and holds no address.
        redis_pid = int((data / "redis.pid").read_text())
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            for address in (IPV4, IPV6):
                hit = {"site": "demo", "url": "https://example.vn/spooled"}
                status = request(port, "POST", "/api/v1/hit", hit, {"X-Forwarded-For": address})
                assert status == 204
            spooled = list((data / "spool").glob("*" + SUFFIX))
            assert spooled and all(mode(path) == 0o600 for path in spooled)
            assert mode(data / "spool") == 0o700
            for path in spooled:
                assert b'"s":"demo"' in path.read_bytes()  # the spooled hits are there
                assert addresses_in(path.read_bytes()) == [], path
        finally:
            os.kill(redis_pid, signal.SIGCONT)
        wait_for(lambda: request(port, "GET", "/readyz") == 200, "Redis back")
        entries = audit_entries(port)
        actions = json.loads(entries)["entries"]
        assert {e["action"] for e in actions} >= {"site_created", "reset", "auth_failed"}
        assert all(e["ip"].startswith("net:") for e in actions)
        assert len({e["ip"] for e in actions}) == 2  # the two sources, told apart
        assert addresses_in(entries) == []
        client = redis.Redis.from_url(url)
        try:
            dump = redis_dump(client)
        finally:
            client.close()
        kinds = {key.split(b":")[1] for key in dump}
        assert {b"audit", b"authfail", b"salt", b"{demo}"} <= kinds  # the scan saw them all
        for key, value in dump.items():
            assert addresses_in(key) == [] and addresses_in(value) == [], key
        assert mode(data) == 0o700
        assert mode(data / "appendonly.aof") == 0o600
        assert mode(data / "redis.conf") == 0o600
        assert mode(data / "notes.txt") == 0o600  # tightened

    logged = output.read_bytes()
    assert b'"event": "admin_action"' in logged and b"/api/v1/hit" in logged  # access log on
    assert addresses_in(logged) == []
    # Everything on disk: the append-only file (every command ever written), Redis's log, the
    # spool.
    on_disk = files_under(data)
    assert data / "appendonly.aof" in on_disk
    for path, content in on_disk.items():
        assert addresses_in(content) == [], path


def test_a_traceback_in_a_log_line_loses_the_client_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = logging.LogRecord("analytics", logging.ERROR, __file__, 1, "unhandled error", (), None)
    try:
        raise ValueError(f"bad client {IPV4} and {IPV6}")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert NoClientAddresses().filter(record)
    for line in (JsonFormatter().format(record), logging.Formatter().format(record)):
        assert "bad client" in line and "<address>" in line
        assert addresses_in(line.encode()) == []


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def rewritten(client: redis.Redis) -> bool:
    info = client.info("persistence")
    return not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]


def services_on(url: str, data_dir: Path, clock: FixedClock) -> Services:
    found: Services = app_on(url, data_dir, clock).extensions["analytics"]
    return found


def test_deleted_salts_leave_the_append_only_file(
    aof_redis: EmbeddedRedis, tmp_path: Path, clock: FixedClock
) -> None:
    services = services_on(aof_redis.url, tmp_path / "app", clock)
    client = redis.Redis.from_url(aof_redis.url)
    aof = aof_redis.data_dir / "appendonly.aof"
    old_day = clock().date() - timedelta(days=2)
    salt = services.store.salts.salt(old_day, os.urandom(32), 3 * 86400)
    kept = services.store.salts.salt(clock().date(), os.urandom(32), 3 * 86400)
    for n in range(20):
        client.set(f"va:filler:{n}", n)
    assert salt in aof.read_bytes()  # appendfsync always: on disk before the answer
    assert mode(aof) == 0o600
    # A rewrite already running began before the deletion: the job asks again next time.
    client.config_set("rdb-key-save-delay", 100_000)  # 0.1 s a key: some 2 s of rewrite
    client.bgrewriteaof()
    try:
        assert services.housekeeper.delete_salts() == 1
        wait_for(lambda: rewritten(client), "the first rewrite")
        assert salt in aof.read_bytes()  # the rewrite that ran had begun before the deletion
    finally:
        client.config_set("rdb-key-save-delay", 0)
    assert services.housekeeper.delete_salts() == 0  # nothing left to delete: rewrites now
    wait_for(lambda: rewritten(client), "the second rewrite")
    content = aof.read_bytes()
    assert salt not in content and kept in content  # the day's salt stays, as it must
    assert mode(aof) == 0o600
    assert services.housekeeper.delete_salts() == 0
    assert rewritten(client)  # with nothing deleted, nothing rewritten
    client.close()


def test_a_redis_without_an_append_only_file_is_left_alone(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, clock: FixedClock
) -> None:
    services = services_on(redis_url, tmp_path / "app", clock)
    assert services.store.salts.rewrite_files() is Rewrite.NO_AOF
    assert redis_client.info("persistence")["aof_rewrite_scheduled"] == 0
    assert services.store.salts.salt(clock().date() - timedelta(days=2), b"s" * 32, 99) == b"s" * 32
    assert services.housekeeper.delete_salts() == 1
    assert rewritten(redis_client)
