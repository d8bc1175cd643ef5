"""Generated requests (Hypothesis) against the beacon, the read routes and the admin API, on a
real Redis: the inputs nobody wrote down, shrunk to the smallest one that fails.

Properties, for every request:

- never a 5xx;
- an error (4xx) is the API's error document: JSON ``{"error": {"code", "message"}}``, a
  documented code for its status, ``Cache-Control: no-store``;
- a rejected request (any 4xx) changes no Redis key: every key's type, value and whether it
  expires are read before and after (a HyperLogLog without the cardinality cache PFCOUNT
  rewrites). The one exception: a missing or wrong admin token (401) adds one entry to the
  stream of failed authentications and counts one failure of its network (``authfail``);
- a read never changes a key, whatever it answers.

By default each test runs a fixed, derandomized set of examples, so the suite cannot flake.
For a longer, random run, set the number of examples per test::

    ANALYTICS_FUZZ_EXAMPLES=5000 pytest -q -p no:cacheprovider tests/integration/test_fuzz.py

A failure prints the smallest input found and a ``@reproduce_failure`` blob to replay it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, unquote, urlencode

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from prometheus_client import CollectorRegistry
from werkzeug.test import TestResponse

from analytics import create_app
from analytics.clock import FixedClock
from analytics.services import Services
from analytics.settings import Settings
from analytics.sites import Site
from tests.helpers import BROWSER_UA, hit

_EXAMPLES = os.environ.get("ANALYTICS_FUZZ_EXAMPLES")
FUZZ = hypothesis_settings(
    max_examples=int(_EXAMPLES) if _EXAMPLES else 300,
    derandomize=not _EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    # The app and its Redis are made once per test, not per example, on purpose: each example
    # runs against what the ones before it left, and is judged by its own before and after.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

TOKEN = "fuzz-admin-token-0123456789abcdef"
ADMIN_IP = "198.51.100.1"  # the right token comes from here, wrong ones never do
PREFIX = "va"
OTHER_SITE = "tin-tuc"  # a second site: origins listed, Sec-GPC honoured
SITE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
ERROR_CODES: Mapping[int, frozenset[str]] = {
    400: frozenset({"invalid_request", "invalid_json", "unsupported_content_type", "bad_request"}),
    401: frozenset({"unauthorized"}),
    403: frozenset({"admin_disabled"}),
    404: frozenset({"unknown_site", "unknown_reset", "not_found"}),
    405: frozenset({"method_not_allowed"}),
    409: frozenset({"conflict", "period_closed"}),
    413: frozenset({"payload_too_large"}),
    415: frozenset({"unsupported_media_type"}),
    429: frozenset({"too_many_attempts"}),
}
"""docs/api.md, Errors: the codes each status may carry (``http_error`` for any other 4xx)."""


# --- Redis before and after --------------------------------------------------------------------


class Entry(NamedTuple):
    kind: str
    value: Any
    expires: bool


@dataclass
class Snapshot:
    entries: dict[str, Entry]
    expiring: set[str] = field(default_factory=set)
    """Keys within a few seconds of their TTL (Redis's own clock): gone after, they expired."""


EXPIRING_MS = 5000


def _value(client: redis.Redis, key: str, kind: str) -> Any:
    if kind == "string":
        raw: bytes = client.get(key) or b""
        # A HyperLogLog: bytes 8-15 cache its cardinality, which PFCOUNT (a read) rewrites.
        return raw[:8] + raw[16:] if raw.startswith(b"HYLL") else raw
    if kind == "hash":
        return sorted(client.hgetall(key).items())
    if kind == "set":
        return sorted(client.smembers(key))
    if kind == "zset":
        return client.zrange(key, 0, -1, withscores=True)
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "stream":
        return client.xrange(key)
    return client.dump(key)


def snapshot(client: redis.Redis) -> Snapshot:
    """Every key: its type, its value read by type, and whether it has a TTL."""
    shot = Snapshot({})
    for raw_key in client.scan_iter(count=1000):
        key = raw_key.decode("utf-8", "backslashreplace")
        # The TTL first: a key that expires after it is read is in ``expiring``, whatever its
        # type and value read afterwards. (Read after the type, a key expiring in between read
        # as a key without a TTL that then vanished: a change no request made.)
        ttl = client.pttl(raw_key)
        kind = client.type(raw_key).decode()
        if ttl == -2 or kind == "none":  # expired while we looked
            continue
        value = _value(client, raw_key, kind)
        if ttl >= 0 and not client.exists(raw_key):  # expired while its value was read
            continue
        shot.entries[key] = Entry(kind, value, ttl >= 0)
        if 0 <= ttl < EXPIRING_MS:
            shot.expiring.add(key)
    return shot


def changed_keys(before: Snapshot, after: Snapshot) -> list[str]:
    """The keys added, removed or changed, but for those that expired by themselves."""
    changed = []
    for key in sorted(before.entries.keys() | after.entries.keys()):
        old, new = before.entries.get(key), after.entries.get(key)
        if new is None and key in before.expiring:
            continue
        if old != new:
            changed.append(key)
    return changed


# --- Generated inputs --------------------------------------------------------------------------

NASTY = [
    "",
    " ",
    "\x00",
    "\t\n\r",
    "\x7f\x85\x9f",
    "\u202e",  # right-to-left override
    "\ufeff",
    "\u2028\u2029",
    "e\u0301",
    "𝕏😀",
    "\ud800",  # a lone surrogate
    "\udfff\ud800",
    "%00",
    "%zz",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "'; DROP TABLE sites; --",
    "{site}",
    "va:{demo}:c",
    "1e999",
    "-0",
    "NaN",
    "null",
    "demo\x00",
    "DEMO",
    "demo ",
    "-demo",
    "a" * 63,
    "a" * 64,
]

any_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),  # surrogates included
    st.sampled_from(NASTY),
    # Huge: a short piece repeated up to tens of thousands of times.
    st.builds(lambda piece, n: piece * n, st.text(min_size=1, max_size=3), st.integers(1, 40_000)),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(),  # NaN and the infinities included: not JSON, though Python writes them
    any_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)
    ),
    max_leaves=12,
)
site_ids = st.one_of(
    st.sampled_from(["demo", OTHER_SITE, "no-such-site"]),
    st.from_regex(SITE_ID, fullmatch=True),
    any_text,
)
urls = st.one_of(
    st.sampled_from(
        [
            "https://example.vn/",
            "https://tintuc.example/tin/1?a=b#c",
            "http://[::1]:8080/x",
            "http://example.vn:99999/",
            "https://example.vn:-1/",
            "http://[::1/",
            "javascript:alert(1)",
            "https:///nohost",
            "ftp://example.vn/",
            "https://exa mple.vn/",
            "https://example.vn/\u00a0",
            "https://xn--ls8h.example/😀",
        ]
    ),
    st.builds(lambda path: "https://example.vn/" + path, any_text),
    any_text,
)


def hit_fields(extra_values: st.SearchStrategy[Any] = json_values) -> st.SearchStrategy[Any]:
    """A beacon body close to a real one: each field plausible, wrong or missing."""
    return st.fixed_dictionaries(
        {},
        optional={
            "site": st.one_of(site_ids, extra_values),
            "url": st.one_of(urls, extra_values),
            "referrer": st.one_of(urls, extra_values),
            "type": st.one_of(st.sampled_from(["pageview", "heartbeat", "PAGEVIEW"]), extra_values),
            "extra": extra_values,
        },
    )


valid_hits = st.fixed_dictionaries(
    {
        "site": st.sampled_from(["demo", OTHER_SITE]),
        "url": st.sampled_from(["https://example.vn/", "https://tintuc.example/tin/1?a=b"]),
    },
    optional={"type": st.sampled_from(["pageview", "heartbeat"]), "referrer": urls},
)
"""A well-formed hit: what the headers, the limits and earlier examples then decide."""


def to_json(value: Any, ascii_only: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate: bytes that are not UTF-8


json_bodies = st.builds(to_json, st.one_of(valid_hits, hit_fields(), json_values), st.booleans())
nested = st.builds(
    lambda opener, closer, depth: (opener * depth + closer * depth).encode(),
    st.sampled_from(['{"a":', "[", '{"site":[']),
    st.sampled_from(["}", "]", "]}"]),
    st.integers(1, 40_000),
)
bodies = st.one_of(
    json_bodies,
    st.binary(max_size=300),
    st.builds(lambda b, n: b * n, st.binary(min_size=1, max_size=4), st.integers(1, 20_000)),
    st.none(),
)


def as_header(raw: bytes | str) -> str:
    """What a WSGI server hands the app as a header value: the bytes decoded as latin-1, without
    CR, LF or NUL (servers refuse those)."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    return bytes(c for c in raw if c not in (0, 10, 13))[:9000].decode("latin-1")


def header_text(max_size: int = 60) -> st.SearchStrategy[str]:
    """Header values: arbitrary bytes, or text sent as UTF-8."""
    return st.one_of(st.binary(max_size=max_size), any_text).map(as_header)


ips = st.one_of(
    st.sampled_from(
        [
            "203.0.113.7",
            "203.0.113.8",
            "2001:db8::1",
            "2001:db8::2",
            "::ffff:203.0.113.9",
            "fe80::1%eth0",
            "",
            "unknown",
            "999.1.1.1",
        ]
    ),
    st.ip_addresses().map(str),
)
content_types = st.one_of(
    st.sampled_from(
        [
            "text/plain;charset=UTF-8",
            "application/json",
            "APPLICATION/JSON; charset=latin-1",
            "text/plain; charset",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "",
        ]
    ),
    header_text(),
    st.none(),
)
user_agents = st.one_of(
    st.sampled_from(
        [
            BROWSER_UA,
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "curl/8.5.0",
            "",
        ]
    ),
    header_text(),
)
origins = st.one_of(
    st.sampled_from(["https://tintuc.example", "null", "https://evil.example", "tintuc.example"]),
    header_text(),
)
forwarded_for = st.one_of(
    st.lists(ips, min_size=1, max_size=4).map(", ".join),
    header_text(),
)


def optional_headers(**each: st.SearchStrategy[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Each header present or not; a few sent twice."""
    return st.fixed_dictionaries({}, optional=each).flatmap(
        lambda chosen: (
            st.lists(st.sampled_from(sorted(chosen)), max_size=2).map(
                lambda twice: [*chosen.items(), *((name, chosen[name]) for name in twice)]
            )
            if chosen
            else st.just([])
        )
    )


beacon_headers = optional_headers(
    **{
        "User-Agent": user_agents,
        "Origin": origins,
        "Referer": st.one_of(urls.map(as_header), header_text()),
        "X-Forwarded-For": forwarded_for,
        "Sec-GPC": st.one_of(st.sampled_from(["1", "0", " 1"]), header_text()),
        "X-Request-Id": header_text(),
        "Content-Encoding": st.sampled_from(["gzip", "identity"]),
    }
)


def query_strings(
    names: Sequence[str], values: st.SearchStrategy[Any] = any_text
) -> st.SearchStrategy[str]:
    """A query string: known and unknown names with generated values, percent-encoded (lone
    surrogates as the bytes they would be), or raw garbage."""
    pairs = st.lists(
        st.tuples(
            st.one_of(st.sampled_from(list(names)), any_text),
            st.one_of(values, any_text).map(str),
        ),
        max_size=5,
    )
    encoded = pairs.map(
        lambda kv: "&".join(
            quote(k[:3000], safe="", errors="surrogatepass")
            + "="
            + quote(v[:3000], safe="", errors="surrogatepass")
            for k, v in kv
        )
    )
    garbage = st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"),
        max_size=80,
    )
    return st.one_of(encoded, garbage)


# --- Sending and judging -----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: str = ""
    headers: Sequence[tuple[str, str]] = ()
    body: bytes | None = None
    content_type: str | None = None
    remote: str = "203.0.113.7"

    def send(self, client: FlaskClient) -> TestResponse:
        return client.open(
            self.path,
            method=self.method,
            query_string=self.query,
            headers=list(self.headers),
            data=self.body,
            content_type=self.content_type,
            environ_base={"REMOTE_ADDR": self.remote},
        )


def check_answer(call: Call, response: TestResponse) -> None:
    """No 5xx; an error is the API's error document; a JSON body is JSON."""
    status = response.status_code
    assert status < 500, f"{status} for {call!r}: {response.get_data()[:500]!r}"
    if call.method == "HEAD":
        return
    if status >= 400:
        assert response.mimetype == "application/json", (status, response.mimetype, call)
        doc = response.get_json()
        assert isinstance(doc, dict) and set(doc) == {"error"}, doc
        error = doc["error"]
        assert isinstance(error, dict) and {"code", "message"} <= set(error), doc
        assert set(error) <= {"code", "message", "field"}, doc
        if "field" in error:
            assert isinstance(error["field"], str) and error["field"], doc
            assert status == 400, doc
        assert isinstance(error["message"], str) and error["message"], doc
        code = error["code"]
        assert isinstance(code, str) and SNAKE_CASE.fullmatch(code), doc
        assert code in ERROR_CODES.get(status, frozenset({"http_error"})), (status, doc, call)
        assert "no-store" in response.headers.get("Cache-Control", ""), (status, call)
    elif response.mimetype == "application/json" and response.get_data():
        json.loads(response.get_data())


def run(
    client: FlaskClient,
    redis_client: redis.Redis,
    call: Call,
    *,
    allowed: Callable[[TestResponse, Snapshot, Snapshot, list[str]], list[str]] | None = None,
    reads_only: bool = False,
) -> TestResponse:
    """Sends ``call``, checks the answer, and checks that a rejected request (or, with
    ``reads_only``, any request) changed no key but those ``allowed`` leaves out."""
    before = snapshot(redis_client)
    response = call.send(client)
    after = snapshot(redis_client)
    # The answers seen, in the statistics of --hypothesis-show-statistics (inside a test
    # Hypothesis runs; the fixed cases call this outside one).
    with contextlib.suppress(InvalidArgument):
        event(f"{call.method} {response.status_code}")
    check_answer(call, response)
    if reads_only or 400 <= response.status_code < 500:
        changed = changed_keys(before, after)
        if allowed is not None:
            changed = allowed(response, before, after, changed)
        assert not changed, f"{response.status_code} for {call!r} changed {changed}"
    return response


# --- The apps under test -----------------------------------------------------------------------


@pytest.fixture
def fuzz_app(settings: Settings, clock: FixedClock, redis_client: redis.Redis) -> Flask:
    """The admin API on, and one trusted proxy, so that X-Forwarded-For names the client."""
    return create_app(
        settings.replace(admin_token=TOKEN, trusted_proxies=1),
        clock=clock,
        registry=CollectorRegistry(),
    )


@pytest.fixture
def fuzz_client(fuzz_app: Flask) -> FlaskClient:
    """A client of the app whose Redis already holds counts of both sites, the salt, the online
    set, a reload guard and the limits of one network: what a rejected request could touch."""
    services: Services = fuzz_app.extensions["analytics"]
    services.admin.create_site(
        Site.create({"id": OTHER_SITE, "origins": ["https://tintuc.example"], "honor_gpc": True}),
        "cli:fuzz@test",
    )
    client = fuzz_app.test_client()
    assert hit(client) == 204
    assert hit(client, OTHER_SITE, headers={"Origin": "https://tintuc.example"}) == 204
    return client


# --- The beacon --------------------------------------------------------------------------------

beacon_calls = st.one_of(
    st.builds(
        Call,
        method=st.sampled_from(["POST", "POST", "POST", "OPTIONS", "GET", "PUT", "DELETE"]),
        path=st.just("/api/v1/hit"),
        query=st.one_of(st.just(""), query_strings(["site", "url"])),
        headers=beacon_headers,
        body=st.one_of(bodies, nested),
        content_type=content_types,
        remote=ips,
    ),
    st.builds(
        Call,
        method=st.sampled_from(["GET", "GET", "GET", "HEAD", "OPTIONS", "POST"]),
        path=st.just("/api/v1/hit.gif"),
        query=st.one_of(
            st.one_of(valid_hits, hit_fields(any_text)).map(
                lambda fields: urlencode(fields, errors="surrogatepass")
            ),
            query_strings(["site", "url", "referrer", "type"]),
        ),
        headers=beacon_headers,
        body=st.one_of(st.none(), st.binary(max_size=100)),
        content_type=st.one_of(st.none(), content_types),
        remote=ips,
    ),
)


@FUZZ
@given(call=beacon_calls)
def test_the_beacon_never_fails_and_a_rejected_hit_writes_nothing(
    fuzz_client: FlaskClient, redis_client: redis.Redis, call: Call
) -> None:
    run(fuzz_client, redis_client, call)


# --- The read routes ---------------------------------------------------------------------------

READ_API = re.compile(r"/api/v1/sites/[^/]+/(counters|history|pages|page|referrers)")
READ_PARAMS = [
    "from", "to", "rows", "metric", "lang", "theme", "window", "label", "color", "v", "limit",
    "path",
]  # fmt: skip
read_values = st.one_of(
    st.sampled_from(
        [
            "2026-11-01",
            "2026-11-26",
            "2025-11-26",
            "2026-02-30",
            "0001-01-01",
            "9999-12-31",
            "today,total,online",
            "online",
            "visits",
            "pageviews",
            "en",
            "vi",
            "dark",
            "#ff0000",
            "red",
            "ff0000",
            "url(javascript:x)",
            "total",
            "last_month",
            "10",
            "100",
            "0",
            "1e3",
            "/",
            "/tin-tuc/1",
            "https://example.vn/tin-tuc/1?x=1#y",
            "/%FF%FE",
            "%2e%2e/",
        ]
    ),
    st.dates().map(str),
)
accepts = st.one_of(
    st.sampled_from(["application/json", "text/html", "*/*", "image/*;q=0", ""]), header_text()
)


def site_segment(site: str) -> str:
    return quote(site[:3000], safe="", errors="surrogatepass")


read_calls = st.builds(
    lambda method, template, site, query, headers, remote: Call(
        method, template.format(site=site_segment(site)), query, headers, remote=remote
    ),
    method=st.sampled_from(["GET", "GET", "GET", "HEAD", "OPTIONS", "POST"]),
    template=st.sampled_from(
        [
            "/api/v1/sites/{site}/counters",
            "/api/v1/sites/{site}/history",
            "/api/v1/sites/{site}/pages",
            "/api/v1/sites/{site}/page",
            "/api/v1/sites/{site}/referrers",
            "/widget/{site}",
            "/badge/{site}.svg",
            "/badge/{site}",
            "/widget.js",
            "/api/v1/sites/{site}",
            "/api/v1/sites/{site}/counters/extra",
        ]
    ),
    site=site_ids,
    query=st.one_of(st.just(""), query_strings(READ_PARAMS, read_values)),
    headers=optional_headers(
        **{
            "Accept": accepts,
            "Accept-Encoding": st.one_of(st.sampled_from(["gzip", "br;q=1, *;q=0"]), header_text()),
            "Accept-Language": header_text(),
            "If-None-Match": header_text(),
            "Origin": origins,
        }
    ),
    remote=ips,
)


@FUZZ
@given(call=read_calls)
def test_the_read_routes_never_fail_and_never_write(
    fuzz_client: FlaskClient, redis_client: redis.Redis, call: Call
) -> None:
    response = run(fuzz_client, redis_client, call, reads_only=True)
    if call.method in ("GET", "HEAD") and READ_API.fullmatch(unquote(call.path)):
        # The read API's answers, errors included, are readable by a widget on any origin.
        assert response.headers.get("Access-Control-Allow-Origin") == "*", call


# --- The admin API -----------------------------------------------------------------------------

ADMIN = "/api/v1/admin"
offsets = st.fixed_dictionaries(
    {},
    optional={
        name: st.one_of(st.integers(-1, 10**15 + 1), json_scalars)
        for name in ("pageviews", "visits", "visitors")
    },
)
site_objects = st.fixed_dictionaries(
    {},
    optional={
        "id": site_ids,
        "name": any_text,
        "timezone": st.one_of(
            st.sampled_from(["Asia/Ho_Chi_Minh", "UTC", "Etc/GMT+12", "Mars/Olympus", "../UTC"]),
            any_text,
        ),
        "week_start": st.one_of(st.sampled_from(["monday", "sunday", "Monday"]), json_scalars),
        "origins": st.one_of(st.lists(st.one_of(origins, any_text), max_size=3), json_values),
        "online_window_seconds": st.one_of(st.integers(0, 4000), json_scalars),
        "session_timeout_seconds": st.one_of(st.integers(0, 90_000), json_scalars),
        "box_metric": st.one_of(st.sampled_from(["visits", "pageviews", "visitors"]), any_text),
        "offsets": st.one_of(offsets, json_values),
        "honor_gpc": json_scalars,
        "colour": json_values,
    },
)
windows = st.fixed_dictionaries(
    {},
    optional={
        "windows": st.one_of(
            st.lists(
                st.sampled_from(["today", "this_week", "this_month", "total", "all", "yesterday"]),
                max_size=5,
            ),
            json_values,
        ),
        "extra": json_values,
    },
)
valid_site_objects = st.fixed_dictionaries(
    {"id": st.from_regex(SITE_ID, fullmatch=True)},
    optional={
        "name": st.text(st.characters(exclude_categories=("C",)), max_size=200),
        "timezone": st.sampled_from(["Asia/Ho_Chi_Minh", "UTC", "Etc/GMT+12", "Europe/Paris"]),
        "week_start": st.sampled_from(["monday", "sunday"]),
        "origins": st.lists(st.sampled_from(["https://a.example", "http://b.example:8080"])),
        "online_window_seconds": st.integers(10, 3600),
        "box_metric": st.sampled_from(["visits", "pageviews", "visitors"]),
        "honor_gpc": st.booleans(),
    },
)
valid_offsets = st.fixed_dictionaries(
    {}, optional={name: st.integers(0, 10**15) for name in ("pageviews", "visits", "visitors")}
)
valid_windows = st.fixed_dictionaries(
    {"windows": st.lists(st.sampled_from(["today", "this_week", "this_month", "total"]))}
)
ADMIN_ROUTES: list[tuple[str, str, st.SearchStrategy[Any]]] = [
    ("GET", "/sites", st.none()),
    ("POST", "/sites", st.one_of(valid_site_objects, site_objects)),
    ("GET", "/sites/{site}", st.none()),
    (
        "PATCH",
        "/sites/{site}",
        st.one_of(
            valid_site_objects.map(lambda o: {k: v for k, v in o.items() if k != "id"}),
            site_objects,
        ),
    ),
    ("DELETE", "/sites/{site}", st.none()),
    ("PUT", "/sites/{site}/offsets", st.one_of(valid_offsets, offsets)),
    ("POST", "/sites/{site}/reset", st.one_of(valid_windows, windows)),
    ("POST", "/sites/{site}/resets/{reset}/undo", st.none()),
    ("GET", "/audit", st.none()),
]
"""Each route with the body it takes."""
admin_site_ids = st.one_of(st.sampled_from(["demo", OTHER_SITE]), site_ids)
admin_bodies = st.one_of(
    st.none(),
    st.builds(to_json, st.one_of(site_objects, offsets, windows, json_values), st.booleans()),
    st.binary(max_size=200),
    # Nesting is kept shallow here: a deeply nested admin body is the test below of its own.
)
good_token = st.just(f"Bearer {TOKEN}")
wrong_tokens = st.one_of(
    st.sampled_from(
        [
            f"Bearer {TOKEN.upper()}",
            f"Bearer {TOKEN[:-1]}",
            f"Basic {TOKEN}",
            f"bearer  {TOKEN}x",
            "Bearer ",
            "Bearer",
            "",
        ]
    ),
    header_text().map(lambda t: "Bearer " + t),
    header_text(),
)


@st.composite
def admin_calls(draw: st.DrawFn) -> Call:
    method, template, fitting_body = draw(st.sampled_from(ADMIN_ROUTES))
    if draw(st.integers(0, 7)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]))
    site = draw(admin_site_ids)
    reset = draw(st.one_of(st.from_regex(r"[0-9a-f]{16}", fullmatch=True), any_text))
    path = ADMIN + template.format(site=site_segment(site), reset=site_segment(reset))
    if draw(st.integers(0, 7)) == 0:
        path += "/" + site_segment(draw(any_text))
    query = draw(
        st.one_of(
            st.just(""),
            st.just(urlencode({"confirm": site}, errors="surrogatepass")),
            query_strings(["confirm", "limit"], st.one_of(st.integers(-1, 10_001), any_text)),
        )
    )
    right = draw(st.sampled_from([True, True, True, False]))
    authorization = draw(good_token if right else wrong_tokens)
    headers = [("Authorization", authorization)] if authorization else []
    if not right:
        headers += draw(optional_headers(**{"X-Forwarded-For": forwarded_for}))
    return Call(
        method,
        path,
        query,
        headers,
        body=draw(
            st.one_of(st.builds(to_json, fitting_body, st.booleans()), admin_bodies)
            if method != "GET"
            else admin_bodies
        ),
        content_type=draw(st.one_of(st.just("application/json"), content_types)),
        # Wrong tokens come from other networks than the right one: their failures throttle
        # their own network, never the admin's.
        remote=ADMIN_IP if right else draw(ips.filter(lambda ip: ip != ADMIN_IP)),
    )


AUTH_AUDIT = f"{PREFIX}:audit:auth"
AUTH_FAILURES = re.compile(rf"{PREFIX}:authfail:.*:\d+", re.DOTALL)


def failed_auth_writes(
    response: TestResponse, before: Snapshot, after: Snapshot, changed: list[str]
) -> list[str]:
    """A 401 writes one entry to the failed authentications' stream and counts one failure of
    the client's network: those two changes are expected, and left out; nothing else."""
    if response.status_code != 401:
        return changed
    entries_before = before.entries.get(AUTH_AUDIT)
    entries_after = after.entries[AUTH_AUDIT].value
    assert len(entries_after) == (len(entries_before.value) if entries_before else 0) + 1
    assert entries_after[-1][1][b"action"] == b"auth_failed"
    counted = [key for key in changed if AUTH_FAILURES.fullmatch(key)]
    assert len(counted) == 1, changed
    return [key for key in changed if key not in (AUTH_AUDIT, *counted)]


@FUZZ
@given(call=admin_calls())
def test_the_admin_api_never_fails_and_a_refused_call_writes_nothing(
    fuzz_client: FlaskClient, redis_client: redis.Redis, call: Call
) -> None:
    run(fuzz_client, redis_client, call, allowed=failed_auth_writes)


def test_a_deeply_nested_admin_body_is_refused(
    fuzz_client: FlaskClient, redis_client: redis.Redis
) -> None:
    body = b'{"name":' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    call = Call(
        "PATCH",
        f"{ADMIN}/sites/demo",
        headers=[("Authorization", f"Bearer {TOKEN}")],
        body=body,
        content_type="application/json",
        remote=ADMIN_IP,
    )
    response = run(fuzz_client, redis_client, call)
    assert response.status_code == 400
