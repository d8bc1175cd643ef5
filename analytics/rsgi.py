"""The WSGI app behind granian's RSGI interface: what each web worker of `analytics serve` and
`analytics web` serves.

granian's WSGI interface hands a request to one of its threads as soon as the headers are in,
and has no body timeout: a client that sends a Content-Length and then stalls holds that thread
until it hangs up, and a few dozen such clients hold them all. Here a request's body is read on
the worker's event loop instead, where a slow one costs a coroutine, within a size limit (the
app's own: 8 KiB for a beacon, 64 KiB for anything else) and a deadline; only a request whose
body is in whole, or refused from its Content-Length, goes on to the app, on a thread of the
worker's pool.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import queue
import sys
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from analytics.web.admin import body_limit as admin_body_limit
from analytics.web.beacon import HIT_PATH, MAX_BODY

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]
Answer = tuple[int, Headers, bytes]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]

JOINED_WITH = {"HTTP_COOKIE": ";"}
"""How a repeated request header is joined into one environ value: a comma, as granian's own
WSGI interface joins them, and a semicolon between cookies."""


class Scope(Protocol):
    """What the bridge reads of granian's RSGI scope of an HTTP request."""

    proto: str
    http_version: str
    server: str
    client: str
    scheme: str
    method: str
    path: str
    query_string: str

    @property
    def headers(self) -> RequestHeaders: ...


class RequestHeaders(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...
    def items(self) -> list[tuple[str, str]]: ...


class HTTPProtocol(Protocol):
    """The part of granian's RSGI HTTP protocol the bridge uses."""

    async def __call__(self) -> bytes: ...
    def __aiter__(self) -> Any: ...
    def response_bytes(self, status: int, headers: Headers, body: bytes) -> None: ...


def body_limit(path: str) -> int:
    """The largest body the app takes on ``path``: what it answers 413 for is never read."""
    return MAX_BODY if path == HIT_PATH else admin_body_limit(path)


def split_address(address: str) -> tuple[str, str]:
    """``host`` and ``port`` of ``host:port`` or ``[v6]:port``."""
    host, _, port = address.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), port


def error_body(code: str, message: str) -> tuple[Headers, bytes]:
    """An answer of the bridge's own, in the API's JSON error shape."""
    data = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(data))),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
    ]
    return headers, data


def settle(future: asyncio.Future[Answer], answer: Answer | BaseException) -> None:
    """Gives a request's coroutine its answer, or the app's exception (on the event loop)."""
    if future.cancelled():
        return
    if isinstance(answer, BaseException):
        future.set_exception(answer)
    else:
        future.set_result(answer)


class BodyGone(Exception):
    """The client hung up before the whole body came."""


class StartResponse:
    """start_response of one request: its status and headers, and what the app wrote."""

    __slots__ = ("headers", "status", "written")

    def __init__(self) -> None:
        self.status = 500
        self.headers: Headers = []
        self.written: list[bytes] = []

    def __call__(
        self, status: str, headers: Headers, exc_info: ExcInfo | None = None
    ) -> Any:  # the write callable of WSGI
        # Nothing is sent before the app returns, so a later call (with exc_info) replaces all.
        self.status = int(status[:3])
        self.headers = headers
        return self.written.append


class WSGIBridge:
    """An RSGI app (``__rsgi__``) that serves the WSGI ``app`` on a pool of ``threads`` threads,
    each request's body read first on the event loop: at most ``body_limit`` of its path, within
    ``body_timeout`` seconds of its headers."""

    def __init__(self, app: WSGIApplication, *, threads: int, body_timeout: float) -> None:
        self.app = app
        self.threads = threads
        self.body_timeout = body_timeout
        self._requests: queue.SimpleQueue[tuple[asyncio.Future[Answer], WSGIEnvironment] | None]
        self._requests = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._servers: dict[str, tuple[str, str]] = {}
        self._keys: dict[str, str] = {}
        self._base: dict[str, Any] = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SCRIPT_NAME": "",
            "SERVER_SOFTWARE": "granian",
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            # The body is whole in wsgi.input: a chunked one is read to its end, not to a length.
            "wsgi.input_terminated": True,
        }
        timeout = f"{body_timeout:g}"
        self._late = error_body("http_error", f"the request body did not come within {timeout} s")
        self._cut = error_body("bad_request", "the request body ended before its Content-Length")

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Starts the pool on granian's event loop of this worker."""
        self._loop = loop
        self._threads = [
            threading.Thread(target=self._serve, args=(loop,), name=f"web-{n}", daemon=True)
            for n in range(self.threads)
        ]
        for thread in self._threads:
            thread.start()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stops the pool once granian has stopped: the requests taken are answered first."""
        for _ in self._threads:
            self._requests.put(None)
        for thread in self._threads:
            thread.join()

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        """A thread of the pool: runs the app on each request queued, and hands its answer back
        to the event loop. A queue and a future of the loop's own per request, rather than
        run_in_executor's two futures chained, cut the cost of the round trip by a third."""
        take = self._requests.get
        answer = loop.call_soon_threadsafe
        while (request := take()) is not None:
            future, environ = request
            try:
                result: Answer | BaseException = self.call(environ)
            except BaseException as err:  # re-raised in the request's coroutine
                result = err
            answer(settle, future, result)
            del request, future, environ, result

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        if scope.proto != "http":  # websockets are off: nothing else comes
            return
        limit = body_limit(scope.path)
        length = scope.headers.get("content-length")
        try:
            if length is not None:
                size = int(length)  # checked by granian: digits only
                # Over the limit: the app answers 413 from the Content-Length, without the body.
                body = await self._read(protocol, size) if 0 < size <= limit else b""
            elif scope.headers.get("transfer-encoding") is not None:
                body = await self._read_stream(protocol, limit)
            else:
                body = b""
        except TimeoutError:
            protocol.response_bytes(408, *self._late)
            return
        except BodyGone:
            protocol.response_bytes(400, *self._cut)
            return
        assert self._loop is not None, "__rsgi_init__ starts the pool"
        future = self._loop.create_future()
        self._requests.put((future, self.environ(scope, body)))
        status, headers, data = await future
        protocol.response_bytes(status, headers, data)

    async def _read(self, protocol: HTTPProtocol, size: int) -> bytes:
        """A body of ``size`` bytes (its Content-Length, within the limit)."""
        async with asyncio.timeout(self.body_timeout):
            try:
                body = await protocol()
            except RuntimeError as err:  # granian's protocol errors: the connection is gone
                raise BodyGone from err
        if len(body) != size:
            raise BodyGone
        return body

    async def _read_stream(self, protocol: HTTPProtocol, limit: int) -> bytes:
        """A streamed (chunked) body, cut one byte past ``limit``, so that the app sees it is
        over its limit and answers 413; the rest is never read."""
        parts: list[bytes] = []
        received = 0
        async with asyncio.timeout(self.body_timeout):
            try:
                async for chunk in protocol:
                    parts.append(chunk)
                    received += len(chunk)
                    if received > limit:
                        break
            except RuntimeError as err:
                raise BodyGone from err
        return b"".join(parts)[: limit + 1]

    def environ(self, scope: Scope, body: bytes) -> WSGIEnvironment:
        """The WSGI environ of an RSGI request whose whole body is ``body``."""
        environ = self._base.copy()
        server = self._servers.get(scope.server)
        if server is None:
            server = self._servers[scope.server] = split_address(scope.server)
        client, client_port = split_address(scope.client)
        path = scope.path
        environ["REQUEST_METHOD"] = scope.method
        # granian gives the path percent-decoded, as UTF-8: WSGI wants its bytes as latin-1.
        environ["PATH_INFO"] = path if path.isascii() else path.encode().decode("latin-1")
        # The query string likewise: a client may send it unencoded (raw UTF-8 bytes).
        query = scope.query_string
        environ["QUERY_STRING"] = query if query.isascii() else query.encode().decode("latin-1")
        environ["SERVER_NAME"], environ["SERVER_PORT"] = server
        environ["SERVER_PROTOCOL"] = "HTTP/" + scope.http_version
        environ["REMOTE_ADDR"] = client
        environ["REMOTE_PORT"] = client_port
        environ["wsgi.url_scheme"] = scope.scheme
        environ["wsgi.input"] = io.BytesIO(body)
        keys = self._keys
        for name, value in scope.headers.items():
            key = keys.get(name)
            if key is None:
                key = keys[name] = self._key(name)
            if not key:
                continue
            if key in environ:
                environ[key] += JOINED_WITH.get(key, ",") + value
            else:
                environ[key] = value
        return environ

    @staticmethod
    def _key(name: str) -> str:
        """The environ key of a header; "" for one left out: a name with an underscore, which
        would pass for the dashed one once both are in CGI form (X_Forwarded_For)."""
        if "_" in name:
            return ""
        if name in ("content-length", "content-type"):
            return name.upper().replace("-", "_")
        return "HTTP_" + name.upper().replace("-", "_")

    def call(self, environ: WSGIEnvironment) -> Answer:
        """Runs the app on ``environ`` (on a thread of the pool): its status, headers and whole
        body."""
        start_response = StartResponse()
        result: Iterable[bytes] = self.app(environ, start_response)
        try:
            if isinstance(result, list) and len(result) == 1 and not start_response.written:
                data = result[0]
            else:
                data = b"".join([*start_response.written, *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return start_response.status, start_response.headers, data
