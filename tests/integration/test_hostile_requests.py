"""Malformed and hostile requests to the beacon: each gets its documented answer, counts nothing.

Every case runs against a Redis that already holds one counted hit (counts, visitors, online set,
reload guard, rate-limit keys, salt), so a rejected request that touched any of them would show
in the before/after snapshot of every key. The few well-formed cases at the end must count.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.helpers import BROWSER_UA, counters, hit

HIT = "/api/v1/hit"
GIF = "/api/v1/hit.gif"
BEACON_TYPE = "text/plain;charset=UTF-8"  # what navigator.sendBeacon sends
IP = "203.0.113.7"  # the warm-up hit's IP too: every case comes from the same visitor
MAX_BODY = 8 * 1024
MAX_TEXT = 2048
GOOD_URL = "https://example.vn/tin-tuc/1"
GOOD: dict[str, Any] = {"site": "demo", "url": GOOD_URL}
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")

Snapshot = dict[bytes, tuple[bytes, bytes | None, bool]]


@dataclass(frozen=True)
class Case:
    status: int
    method: str = "POST"
    path: str = HIT
    body: bytes | str | dict[str, str] | None = None
    content_type: str | None = BEACON_TYPE
    query: dict[str, str] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    stream: bool = False  # sent chunked, without a Content-Length
    counts: bool = False  # a well-formed hit that must change the counters
    code: str | None = None  # the error code, where the API names it
    expect_headers: tuple[tuple[str, str], ...] = ()  # (header, substring it must hold)


def raw(case_id: str, body: bytes | str, status: int = 400, **kw: Any) -> Any:
    """A POST /api/v1/hit with this exact body."""
    return pytest.param(Case(status, body=body, **kw), id=case_id)


def beacon(case_id: str, fields: Any, status: int = 400, **kw: Any) -> Any:
    """A POST /api/v1/hit whose body is ``fields`` as UTF-8 JSON."""
    return raw(case_id, json.dumps(fields, ensure_ascii=False).encode(), status, **kw)


def with_(**changes: Any) -> dict[str, Any]:
    """The good beacon with fields changed (a value of ... drops the field)."""
    fields = {**GOOD, **changes}
    return {k: v for k, v in fields.items() if v is not ...}


def gif(case_id: str, query: dict[str, str], status: int = 400, **kw: Any) -> Any:
    case = Case(status, method="GET", path=GIF, query=query, content_type=None, **kw)
    return pytest.param(case, id=case_id)


def verb(method: str, path: str) -> Any:
    allowed = "POST" if path == HIT else "GET"
    body = json.dumps(GOOD) if method in ("PUT", "PATCH") else None
    case = Case(405, method=method, path=path, body=body, expect_headers=(("Allow", allowed),))
    return pytest.param(case, id=f"{method}-{path.rsplit('/', 1)[-1]}-is-405")


def padded(size: int, url: str) -> bytes:
    """A well-formed beacon of exactly ``size`` bytes, filled by an extra field."""
    head = json.dumps({"site": "demo", "url": url, "pad": ""}).encode()
    body = json.dumps({"site": "demo", "url": url, "pad": "x" * (size - len(head))}).encode()
    assert len(body) == size
    return body


GOOD_BODY = json.dumps(GOOD).encode()
LONG_URL = "https://example.vn/" + "a" * (MAX_TEXT - len("https://example.vn/"))
assert len(LONG_URL) == MAX_TEXT

CASES = [
    # -- not JSON at all ------------------------------------------------------------------------
    raw("json-garbage", b"not json", code="invalid_json"),
    raw("json-single-quotes", "{'site': 'demo', 'url': 'https://example.vn/'}"),
    raw("json-truncated-string", '{"site": "demo", "url": "https://exa'),
    raw("json-truncated-no-closing-brace", '{"site": "demo", "url": "https://example.vn/"'),
    raw("json-trailing-garbage", GOOD_BODY + b" xyz"),
    raw("json-two-objects", GOOD_BODY + GOOD_BODY),
    raw("json-empty-body", b""),
    raw("json-whitespace-only", b"  \r\n\t "),
    raw("json-nan-is-not-json", GOOD_BODY[:-1] + b', "x": NaN}'),
    raw("json-deeply-nested-5000", b"[" * 5000),
    raw("json-invalid-utf8", b'{"site": "demo", "url": "https://example.vn/\xff\xfe"}'),
    raw(
        "json-utf8-encoded-surrogate", b'{"site": "demo", "url": "https://example.vn/\xed\xa0\x80"}'
    ),
    raw("json-utf16-body", json.dumps(GOOD).encode("utf-16")),
    raw("json-nul-byte", GOOD_BODY[:-1] + b"\x00}"),
    # -- JSON, but not an object ------------------------------------------------------------------
    beacon("not-object-array", [GOOD]),
    beacon("not-object-string", "demo"),
    beacon("not-object-number", 42),
    beacon("not-object-null", None),
    beacon("not-object-true", True),
    # -- content type ---------------------------------------------------------------------------
    raw(
        "content-type-form-urlencoded",
        "site=demo&url=https%3A%2F%2Fexample.vn%2F",
        content_type="application/x-www-form-urlencoded",
    ),
    pytest.param(
        Case(400, body={"site": "demo", "url": GOOD_URL}, content_type="multipart/form-data"),
        id="content-type-multipart-form-data",
    ),
    raw("content-type-missing", GOOD_BODY, content_type=None),
    raw("content-type-text-html", GOOD_BODY, content_type="text/html"),
    # -- site -----------------------------------------------------------------------------------
    beacon("site-missing", with_(site=...)),
    beacon("site-null", with_(site=None)),
    beacon("site-empty", with_(site="")),
    beacon("site-number", with_(site=5)),
    beacon("site-list", with_(site=["demo"])),
    beacon("site-object", with_(site={"id": "demo"})),
    beacon("site-bool", with_(site=True)),
    beacon("site-uppercase", with_(site="Demo")),
    beacon("site-inner-space", with_(site="demo site")),
    beacon("site-trailing-space", with_(site="demo ")),
    beacon("site-trailing-newline", with_(site="demo\n")),
    beacon("site-leading-hyphen", with_(site="-demo")),
    beacon("site-64-chars", with_(site="a" * 64)),
    beacon("site-closing-brace-inject", with_(site="demo}:x")),
    beacon("site-hash-tag", with_(site="{demo}")),
    beacon("site-key-inject-counts-key", with_(site="demo:c:d:2026-11-26")),
    beacon("site-key-inject-glob", with_(site="*")),
    beacon("site-key-inject-crlf-flushall", with_(site="demo\r\nFLUSHALL")),
    beacon("site-nul", with_(site="demo\x00")),
    beacon("site-unicode-accent", with_(site="dêmo")),
    beacon("site-unicode-fullwidth", with_(site="ｄｅｍｏ")),
    beacon("site-unicode-cyrillic-o", with_(site="dem\u043e")),
    beacon("site-unknown", with_(site="nope"), 404, code="unknown_site"),
    beacon("site-unknown-63-chars", with_(site="a" * 63), 404, code="unknown_site"),
    # -- url ------------------------------------------------------------------------------------
    beacon("url-missing", with_(url=...)),
    beacon("url-null", with_(url=None)),
    beacon("url-empty", with_(url="")),
    beacon("url-number", with_(url=42)),
    beacon("url-list", with_(url=[GOOD_URL])),
    beacon("url-object", with_(url={"href": GOOD_URL})),
    beacon("url-relative", with_(url="/tin-tuc/1")),
    beacon("url-protocol-relative", with_(url="//example.vn/tin-tuc/1")),
    beacon("url-no-scheme", with_(url="example.vn/tin-tuc/1")),
    beacon("url-no-host", with_(url="https:///tin-tuc/1")),
    beacon("url-javascript", with_(url="javascript:alert(document.cookie)")),
    beacon("url-ftp", with_(url="ftp://example.vn/file.txt")),
    beacon("url-data", with_(url="data:text/html;base64,PHNjcmlwdD4=")),
    beacon("url-file", with_(url="file:///etc/passwd")),
    beacon("url-nul", with_(url="https://example.vn/\x00")),
    beacon("url-newline", with_(url="https://example.vn/a\nb")),
    beacon("url-del", with_(url="https://example.vn/\x7f")),
    beacon("url-crlf-header-inject", with_(url="https://example.vn/\r\nSet-Cookie: a=1")),
    beacon("url-bad-port-99999", with_(url="https://example.vn:99999/")),
    beacon("url-bad-port-letters", with_(url="https://example.vn:http/")),
    beacon("url-bad-ipv6", with_(url="http://[::1/")),
    beacon("url-2049-chars", with_(url=LONG_URL + "b")),
    beacon("url-space-in-host", with_(url="https://exa mple.vn/")),
    beacon("url-leading-space", with_(url=" https://example.vn/")),
    # -- referrer -------------------------------------------------------------------------------
    beacon("referrer-2049-chars", with_(referrer="r" * (MAX_TEXT + 1))),
    beacon("referrer-number", with_(referrer=5)),
    beacon("referrer-list", with_(referrer=["https://google.com/"])),
    beacon("referrer-object", with_(referrer={"href": "https://google.com/"})),
    # -- type -----------------------------------------------------------------------------------
    beacon("type-click", with_(type="click")),
    beacon("type-number", with_(type=5)),
    beacon("type-uppercase", with_(type="PAGEVIEW")),
    beacon("type-empty", with_(type="")),
    beacon("type-list", with_(type=["pageview"])),
    # -- size -----------------------------------------------------------------------------------
    raw("size-8193-bytes", padded(MAX_BODY + 1, "https://example.vn/big"), 413),
    raw("size-9000-bytes-junk", b"x" * 9000, 413),
    raw("size-json-then-9000-spaces", GOOD_BODY + b" " * 9000, 413),
    raw("size-64-KiB", padded(64 * 1024, "https://example.vn/big"), 413),
    raw("size-streamed-9000-bytes-junk", b"x" * 9000, 413, stream=True),
    raw("size-streamed-json-then-9000-spaces", GOOD_BODY + b" " * 9000, 413, stream=True),
    # -- methods --------------------------------------------------------------------------------
    verb("GET", HIT),
    verb("PUT", HIT),
    verb("DELETE", HIT),
    verb("PATCH", HIT),
    verb("POST", GIF),
    verb("PUT", GIF),
    verb("DELETE", GIF),
    pytest.param(
        Case(405, method="GET", path=HIT, query={"site": "demo", "url": GOOD_URL}),
        id="GET-hit-with-query-is-405",
    ),
    pytest.param(
        Case(
            204,
            method="OPTIONS",
            content_type=None,
            headers=(
                ("Origin", "https://example.vn"),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ),
            expect_headers=(
                ("Access-Control-Allow-Origin", ""),
                ("Access-Control-Allow-Methods", "POST"),
            ),
        ),
        id="OPTIONS-hit-preflight-is-204",
    ),
    # -- hit.gif --------------------------------------------------------------------------------
    gif("gif-site-missing", {"url": GOOD_URL}),
    gif("gif-url-missing", {"site": "demo"}),
    gif("gif-url-javascript", {"site": "demo", "url": "javascript:alert(1)"}),
    gif("gif-url-relative", {"site": "demo", "url": "/tin-tuc/1"}),
    gif("gif-url-nul", {"site": "demo", "url": "https://example.vn/\x00"}),
    gif("gif-url-2049-chars", {"site": "demo", "url": LONG_URL + "b"}),
    gif("gif-referrer-2049-chars", {**GOOD, "referrer": "r" * (MAX_TEXT + 1)}),
    gif("gif-type-click", {**GOOD, "type": "click"}),
    gif("gif-site-uppercase", {"site": "DEMO", "url": GOOD_URL}),
    gif("gif-site-key-inject", {"site": "demo:c:d:2026-11-26", "url": GOOD_URL}),
    gif("gif-site-unknown", {"site": "nope", "url": GOOD_URL}, 404, code="unknown_site"),
    # -- well-formed: must be accepted AND counted ------------------------------------------------
    beacon("ok-vietnamese-url", with_(url="https://example.vn/tin-tức/bài-1"), 204, counts=True),
    beacon("ok-extra-fields-ignored", with_(w=1920, x={"a": [1]}, site_id="x"), 204, counts=True),
    beacon(
        "ok-application-json-charset",
        GOOD,
        204,
        counts=True,
        content_type="application/json; charset=utf-8",
    ),
    beacon("ok-referrer-null", with_(referrer=None), 204, counts=True),
    beacon("ok-type-null-is-a-pageview", with_(type=None), 204, counts=True),
    beacon("ok-url-2048-chars", with_(url=LONG_URL), 204, counts=True),
    beacon("ok-referrer-2048-chars", with_(referrer="r" * MAX_TEXT), 204, counts=True),
    raw("ok-body-exactly-8-KiB", padded(MAX_BODY, GOOD_URL), 204, counts=True),
    raw("ok-streamed-exactly-8-KiB", padded(MAX_BODY, GOOD_URL), 204, counts=True, stream=True),
    gif("ok-gif", {**GOOD, "referrer": "https://google.com/"}, 200, counts=True),
]


def redis_snapshot(client: redis.Redis) -> Snapshot:
    """Every key: its type, its DUMP (the exact value) and whether it has a TTL."""
    return {
        key: (client.type(key), client.dump(key), client.pttl(key) >= 0)
        for key in client.scan_iter(count=1000)
    }


def send(client: FlaskClient, case: Case) -> TestResponse:
    headers = {"User-Agent": BROWSER_UA, **dict(case.headers)}
    environ: dict[str, Any] = {"REMOTE_ADDR": IP}
    kwargs: dict[str, Any] = {}
    if case.stream:
        assert isinstance(case.body, bytes)
        # What a server that de-chunks the body itself (gunicorn, werkzeug) hands the app.
        headers["Transfer-Encoding"] = "chunked"
        environ["wsgi.input_terminated"] = True
        kwargs["input_stream"] = io.BytesIO(case.body)
    elif case.body is not None:
        kwargs["data"] = case.body
    return client.open(
        case.path,
        method=case.method,
        query_string=case.query,
        content_type=case.content_type,
        headers=headers,
        environ_base=environ,
        **kwargs,
    )


def assert_error_document(response: TestResponse, case: Case) -> None:
    text = response.get_data(as_text=True)
    assert response.mimetype == "application/json", text
    doc = response.get_json(silent=True)
    assert isinstance(doc, dict), text
    error = doc.get("error")
    assert isinstance(error, dict), text
    assert isinstance(error.get("code"), str), text
    assert SNAKE_CASE.fullmatch(error["code"]), text
    assert isinstance(error.get("message"), str), text
    assert error["message"], text
    if case.code is not None:
        assert error["code"] == case.code, text


@pytest.mark.parametrize("case", CASES)
def test_hostile_request(client: FlaskClient, redis_client: redis.Redis, case: Case) -> None:
    assert hit(client, url="https://example.vn/warm-up", ip=IP) == 204
    # The read first: PFCOUNT caches the cardinality inside the HyperLogLog, a harmless write.
    doc_before = counters(client)
    keys_before = redis_snapshot(redis_client)
    assert doc_before["windows"]["today"]["pageviews"] == 1

    response = send(client, case)

    assert response.status_code == case.status, response.get_data(as_text=True)
    if case.status >= 400:
        assert_error_document(response, case)
    elif case.status == 204:
        assert response.get_data() == b""
    else:
        assert response.mimetype == "image/gif"
        assert response.get_data().startswith(b"GIF8")
        assert "no-store" in response.headers.get("Cache-Control", "")
    for name, part in case.expect_headers:
        assert name in response.headers, dict(response.headers)
        assert part in response.headers[name], dict(response.headers)

    keys_after = redis_snapshot(redis_client)
    doc_after = counters(client)
    if case.counts:
        changed = {
            k
            for k in keys_before.keys() | keys_after.keys()
            if keys_before.get(k) != keys_after.get(k)
        }
        assert any(b":c:" in key for key in changed), changed
        for name in ("today", "this_week", "this_month", "total"):
            assert doc_after["windows"][name]["pageviews"] == 2, doc_after
    else:
        assert keys_after == keys_before
        assert doc_after == doc_before
