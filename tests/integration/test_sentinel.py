"""The service on a primary, its replica and Sentinels, through ``redis+sentinel://``.

bench/sentinel.py starts them (the redis-server of the embedded mode, the Sentinels with
``--sentinel``) on loopback ports, fresh for each test, with a password on the Redis servers.
The app is configured as in production: ANALYTICS_REDIS_URL is the Sentinel URL. The failover
tests bound every wait; the Sentinels' short timeouts make a failover take seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from redis.connection import SSLConnection
from redis.sentinel import SentinelConnectionPool, SentinelManagedSSLConnection

from analytics.clock import FixedClock
from analytics.errors import SettingsError
from analytics.settings import Settings
from analytics.store.connection import SentinelUrl, connect, parse_sentinel_url
from bench.sentinel import SentinelSet, local_sentinel
from tests.helpers import EXAMPLE_INSTANT, app_on, counters, hit, ok_json, run_cli, wait_for

pytestmark = pytest.mark.slow

PASSWORD = "pa:ss/w@rd,s3cret"  # every character that must be percent-encoded in a URL
SITE = "demo"
FORM = "redis+sentinel://[[USER]:PASSWORD@]HOST[:PORT][,HOST[:PORT]...]/PRIMARY[/DB]"
RECOVERY_SECONDS = 30.0
"""The bound on a failover, start to settled: Sentinel converts a live old primary after ~10 s."""


# -- the URL -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/analytics",
            SentinelUrl((("10.0.0.1", 26379), ("10.0.0.2", 26380)), "analytics"),
        ),
        (
            "rediss+sentinel://:p%40ss%2Fw@sentinel.example/cache/2",
            SentinelUrl((("sentinel.example", 26379),), "cache", 2, None, "p@ss/w", tls=True),
        ),
        (
            "redis+sentinel://app:secret@[::1]:5000,s2/primary-1/",
            SentinelUrl((("::1", 5000), ("s2", 26379)), "primary-1", 0, "app", "secret"),
        ),
    ],
)
def test_a_sentinel_url_is_parsed(url: str, expected: SentinelUrl) -> None:
    parsed = parse_sentinel_url(url)
    assert parsed == expected
    assert (parsed.username, parsed.password) == (expected.username, expected.password)
    assert Settings.load(environ={"ANALYTICS_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+sentinel://:s3cret@h1:26379", "names no primary"),
        ("redis+sentinel://:s3cret@h1:26379/", "names no primary"),
        ("redis+sentinel://:s3cret@h1:port/analytics", "port is a number"),
        ("redis+sentinel://:s3cret@h1:0/analytics", "port is a number"),
        ("redis+sentinel://:s3cret@h1:26379,/analytics", "HOST:PORT, separated by commas"),
        ("redis+sentinel://:s3cret@/analytics", "HOST:PORT, separated by commas"),
        ("redis+sentinel://s3cret@h1/analytics", ":PASSWORD or USER:PASSWORD"),
        ("redis+sentinel://:s3cret@h1/analytics/db", "at most /DB"),
        ("redis+sentinel://:s3cret@h1/analytics/0/1", "at most /DB"),
        ("redis+sentinel://:s3cret@h1/analytics?ssl=1", "no query string"),
        ("redis+sentinel://:s3cret@[::1:26379/analytics", "IPv6 address"),
    ],
)
def test_a_malformed_sentinel_url_names_the_form_and_never_the_password(url: str, why: str) -> None:
    with pytest.raises(SettingsError) as settings_error:
        Settings.load(environ={"ANALYTICS_REDIS_URL": url})
    with pytest.raises(SettingsError) as connect_error:
        connect(url)
    for err in (settings_error.value, connect_error.value):
        message = str(err)
        assert message.startswith("ANALYTICS_REDIS_URL: not a Sentinel URL (")
        assert why in message and message.endswith(f"expected {FORM}")
        assert "s3cret" not in message


def test_a_mistyped_scheme_does_not_print_the_password() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.load(environ={"ANALYTICS_REDIS_URL": "redis+sentinal://:s3cret@h1/analytics"})
    assert "redis+sentinel://" in str(err.value) and "s3cret" not in str(err.value)
    assert "'redis+sentinal://***@h1/analytics'" in str(err.value)


def _retry_policy(client: redis.Redis) -> tuple[object, ...]:
    retry = client.connection_pool.connection_kwargs["retry"]
    return retry.get_retries(), type(retry._backoff), vars(retry._backoff)


def test_the_sentinel_client_has_the_plain_clients_timeouts_name_and_retry() -> None:
    plain = connect("redis://127.0.0.1:6379/0", timeout=1.5)
    through = connect("redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/analytics/3", timeout=1.5)
    assert isinstance(plain, redis.Redis) and isinstance(through, redis.Redis)
    pool = through.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.is_master
    assert pool.service_name == "analytics"
    same = ("socket_timeout", "socket_connect_timeout", "client_name", "health_check_interval")
    for key in same:
        assert pool.connection_kwargs[key] == plain.connection_pool.connection_kwargs[key], key
    assert _retry_policy(through) == _retry_policy(plain)
    assert (pool.connection_kwargs["password"], pool.connection_kwargs["db"]) == ("pw", 3)
    # The Sentinels: the same timeouts, name and retry; no password (they are asked without).
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["port"] for s in sentinels] == [1, 2]
    for sentinel in sentinels:
        kwargs = sentinel.connection_pool.connection_kwargs
        for key in ("socket_timeout", "socket_connect_timeout", "client_name"):
            assert kwargs[key] == plain.connection_pool.connection_kwargs[key], key
        assert kwargs.get("password") is None
        assert _retry_policy(sentinel) == _retry_policy(plain)
        assert sentinel.connection_pool.connection_class is not SSLConnection
    assert pool.connection_class is not SentinelManagedSSLConnection
    plain.close()
    through.close()


def test_rediss_sentinel_speaks_tls_to_the_sentinels_and_to_redis() -> None:
    client = connect("rediss+sentinel://:pw@127.0.0.1:1/analytics")
    assert isinstance(client, redis.Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.connection_class is SentinelManagedSSLConnection
    for sentinel in pool.sentinel_manager.sentinels:
        assert sentinel.connection_pool.connection_class is SSLConnection
    client.close()


# -- the service on real Sentinels ---------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[SentinelSet]:
    """A primary with a password, its replica and one Sentinel, fresh for the test."""
    with local_sentinel(1, password=PASSWORD) as started:
        yield started


@pytest.fixture
def sentinel_app(servers: SentinelSet, tmp_path: Path) -> Iterator[Flask]:
    app = app_on(servers.url, tmp_path, FixedClock(EXAMPLE_INSTANT))
    yield app
    app.extensions["analytics"].store.close()


class Beacons:
    """Beacons of new visitors on new pages (no rate limit or reload window applies)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.sent = 0
        self.accepted = 0

    def send(self) -> int:
        n = self.sent
        self.sent += 1
        status = hit(self.client, SITE, f"https://example.vn/{n}", ip=f"10.{n // 250}.{n % 250}.1")
        self.accepted += status == 204
        return status


def _total(client: FlaskClient) -> int:
    total: int = counters(client, SITE)["windows"]["total"]["pageviews"]
    return total


def _replicated(servers: SentinelSet) -> None:
    """Waits until the replica has every write of the primary (WAIT 1)."""
    with servers.node(servers.primary_port()) as primary:
        assert primary.wait(1, 5000) == 1


def _connected_to(servers: SentinelSet, port: int, app: Flask) -> bool:
    """Whether the app's client has a connection, under its name, to the server on ``port``."""
    store_client = app.extensions["analytics"].store.conn.client
    assert isinstance(store_client, redis.Redis)
    name = store_client.connection_pool.connection_kwargs["client_name"]
    with servers.node(port) as node:
        return any(c["name"] == name for c in node.client_list())


def test_the_service_counts_and_reads_through_sentinel(
    servers: SentinelSet, sentinel_app: Flask
) -> None:
    client = sentinel_app.test_client()
    assert client.get("/readyz").status_code == 200
    beacons = Beacons(client)
    assert [beacons.send() for _ in range(25)] == [204] * 25
    # A batch the replica has not confirmed yet (still syncing at first) waits in the spool.
    writer = sentinel_app.extensions["analytics"].counting.writer
    wait_for(lambda: writer.spool_depth == 0, "the spool to drain")
    assert _total(client) == 25
    primary, replica = servers.redis_ports
    assert servers.primary_port() == primary
    assert _connected_to(servers, primary, sentinel_app)
    assert not _connected_to(servers, replica, sentinel_app)
    _replicated(servers)
    # Keys without a TTL: one with a TTL (a reload guard, the readiness probe) may expire
    # between the two reads.
    with servers.node(primary) as node:
        keys = _lasting_keys(node)
    with servers.node(replica) as node:
        assert _lasting_keys(node) == keys != []


def _lasting_keys(node: redis.Redis) -> list[bytes]:
    return sorted(key for key in node.keys("va:*") if node.pttl(key) == -1)


def test_the_cli_works_with_a_sentinel_url(servers: SentinelSet, sentinel_app: Flask) -> None:
    settings = Settings(redis_url=servers.url)
    added = ok_json(settings, "sites", "add", "tin-tuc", "--timezone", "Asia/Ho_Chi_Minh")
    assert added["id"] == "tin-tuc"
    listed = ok_json(settings, "sites", "list")
    assert "tin-tuc" in json.dumps(listed)
    client = sentinel_app.test_client()
    assert hit(client, "tin-tuc", "https://example.vn/") == 204
    writer = sentinel_app.extensions["analytics"].counting.writer
    wait_for(lambda: writer.spool_depth == 0, "the spool to drain")  # until a replica has it
    assert counters(client, "tin-tuc")["windows"]["total"]["pageviews"] == 1

    malformed = servers.url.rsplit("/", 1)[0]  # the primary's name left out
    result = run_cli(settings, "sites", "list", redis_url=malformed)
    assert result.returncode != 0
    assert f"expected {FORM}" in result.stderr
    assert PASSWORD not in result.stderr and "s3cret" not in result.stderr


def test_after_a_sentinel_failover_the_service_writes_to_the_new_primary(
    servers: SentinelSet, sentinel_app: Flask
) -> None:
    client = sentinel_app.test_client()
    beacons = Beacons(client)
    assert [beacons.send() for _ in range(20)] == [204] * 20
    _replicated(servers)
    old, new = servers.redis_ports
    started = time.monotonic()
    servers.failover()
    # The new primary takes writes at once, but the old one stays a primary, taking writes
    # that will be lost, until Sentinel converts it (about 10 s): wait for that first.
    servers.wait_settled(new, RECOVERY_SECONDS)
    assert beacons.send() == 204  # written, or kept in the spool until it can be
    assert time.monotonic() - started < RECOVERY_SECONDS
    assert client.get("/readyz").status_code == 200
    assert [beacons.send() for _ in range(10)] == [204] * 10
    writer = sentinel_app.extensions["analytics"].counting.writer
    wait_for(lambda: writer.spool_depth == 0, "the spool to drain")
    assert _total(client) == beacons.accepted == 20 + 1 + 10
    assert _connected_to(servers, new, sentinel_app)
    assert not _connected_to(servers, old, sentinel_app)


def test_after_the_primary_is_killed_the_service_writes_to_the_promoted_replica(
    tmp_path: Path,
) -> None:
    with local_sentinel(3, password=PASSWORD) as servers:
        app = app_on(servers.url, tmp_path, FixedClock(EXAMPLE_INSTANT))
        client = app.test_client()
        beacons = Beacons(client)
        assert [beacons.send() for _ in range(20)] == [204] * 20
        _replicated(servers)
        old, new = servers.redis_ports
        started = time.monotonic()
        servers.kill(old)
        # Nothing takes writes until the Sentinels agree: the beacons wait in the spool.
        assert [beacons.send() for _ in range(5)] == [204] * 5
        assert client.get("/readyz").status_code == 503
        wait_for(
            lambda: client.get("/readyz").status_code == 200,
            "the promoted replica to take writes",
            seconds=RECOVERY_SECONDS,
        )
        assert time.monotonic() - started < RECOVERY_SECONDS
        assert [beacons.send() for _ in range(10)] == [204] * 10
        writer = app.extensions["analytics"].counting.writer
        wait_for(lambda: writer.spool_depth == 0, "the spool to drain")
        assert servers.primary_port() == new
        assert _total(client) == beacons.accepted == 20 + 5 + 10
        assert _connected_to(servers, new, app)
        app.extensions["analytics"].store.close()
