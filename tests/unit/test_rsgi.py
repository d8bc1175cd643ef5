"""The RSGI bridge in front of the WSGI app: the environ it builds from granian's scope, and what
it reads of a body before the app runs (the timing of slow bodies is tested against a real
server in tests/integration/test_slow_clients.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from analytics.rsgi import WSGIBridge, body_limit

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment


class Headers:
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def get(self, key: str, default: Any = None) -> Any:
        return next((value for name, value in self._items if name == key), default)

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)


@dataclass
class Scope:
    method: str = "GET"
    path: str = "/"
    query_string: str = ""
    header_items: list[tuple[str, str]] = field(default_factory=list)
    proto: str = "http"
    http_version: str = "1.1"
    server: str = "127.0.0.1:8000"
    client: str = "[::1]:50123"
    scheme: str = "http"

    @property
    def headers(self) -> Headers:
        return Headers(self.header_items)


class Protocol:
    """granian's HTTP protocol as the bridge sees it: a body in chunks, and the answer."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.read = 0  # chunks taken
        self.answer: tuple[int, list[tuple[str, str]], bytes] | None = None

    async def __call__(self) -> bytes:
        self.read = len(self.chunks)
        return b"".join(self.chunks)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.read += 1
            yield chunk

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        assert self.answer is None
        self.answer = (status, headers, body)


class Recorder:
    """A WSGI app that answers with what it read of the body, and records its environ."""

    def __init__(self) -> None:
        self.environ: WSGIEnvironment | None = None
        self.closed = False

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        self.environ = environ
        body = environ["wsgi.input"].read()
        start_response("201 Created", [("X-Length", str(len(body)))])
        return self._body(body)

    def _body(self, body: bytes) -> Iterator[bytes]:
        try:
            yield b"read:"
            yield body
        finally:
            self.closed = True


def serve(
    scope: Scope, protocol: Protocol, app: Recorder
) -> tuple[int, list[tuple[str, str]], bytes]:
    bridge = WSGIBridge(app, threads=2, body_timeout=10)

    async def main() -> None:
        bridge.__rsgi_init__(asyncio.get_running_loop())
        try:
            await bridge.__rsgi__(scope, protocol)
        finally:
            bridge.__rsgi_del__(asyncio.get_running_loop())

    # On a thread of its own: the browser tests' sync Playwright leaves a loop running on the
    # main thread for the rest of the session.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, main()).result()
    assert protocol.answer is not None
    return protocol.answer


def test_the_environ_is_what_a_wsgi_server_gives() -> None:
    app = Recorder()
    scope = Scope(
        method="POST",
        path="/a b/\u00e9",
        query_string="x=%20y&path=/tin-t\u1ee9c",  # sent unencoded: raw UTF-8 bytes
        header_items=[
            ("host", "example.vn"),
            ("content-type", "application/json"),
            ("content-length", "2"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "198.51.100.7"),
            ("x_forwarded_for", "192.0.2.1"),  # would pass for the header above: left out
            ("cookie", "a=1"),
            ("cookie", "b=2"),
        ],
    )
    status, headers, body = serve(scope, Protocol([b"{}"]), app)
    assert (status, headers, body) == (201, [("X-Length", "2")], b"read:{}")
    assert app.closed
    environ = app.environ
    assert environ is not None
    assert {key: environ[key] for key in environ if key.isupper()} == {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/a b/\u00c3\u00a9",  # the UTF-8 bytes, as latin-1
        "QUERY_STRING": "x=%20y&path=/tin-t\u00e1\u00bb\u00a9c",  # likewise
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "granian",
        "REMOTE_ADDR": "::1",
        "REMOTE_PORT": "50123",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "2",
        "HTTP_HOST": "example.vn",
        "HTTP_X_FORWARDED_FOR": "203.0.113.9,198.51.100.7",
        "HTTP_COOKIE": "a=1;b=2",
    }
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.version"] == (1, 0)


@pytest.mark.parametrize("path", ["/api/v1/hit", "/api/v1/admin/sites"])
def test_a_content_length_over_the_limit_goes_to_the_app_without_its_body(path: str) -> None:
    app = Recorder()
    declared = str(body_limit(path) + 1)
    scope = Scope(method="POST", path=path, header_items=[("content-length", declared)])
    protocol = Protocol([b"x" * 100])
    status, _, body = serve(scope, protocol, app)
    assert protocol.read == 0  # not a byte of it read
    assert (status, body) == (201, b"read:")
    assert app.environ is not None and app.environ["CONTENT_LENGTH"] == declared


def test_a_chunked_body_is_read_one_byte_past_the_limit_and_no_further() -> None:
    app = Recorder()
    scope = Scope(method="POST", path="/api/v1/hit", header_items=[("transfer-encoding", "x")])
    protocol = Protocol([b"x" * 4096] * 100)
    status, headers, _ = serve(scope, protocol, app)
    assert (status, headers) == (201, [("X-Length", str(body_limit("/api/v1/hit") + 1))])
    assert protocol.read == 3  # 12 KiB taken of 400
    assert app.environ is not None and "CONTENT_LENGTH" not in app.environ


def test_a_body_cut_short_by_its_client_never_reaches_the_app() -> None:
    app = Recorder()
    scope = Scope(method="POST", path="/api/v1/hit", header_items=[("content-length", "100")])
    status, headers, body = serve(scope, Protocol([b"{}"]), app)
    assert status == 400
    assert ("Connection", "close") in headers
    assert json.loads(body)["error"]["code"] == "bad_request"
    assert app.environ is None
