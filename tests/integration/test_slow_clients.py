"""Slow and huge clients against a real `analytics serve`: idle and half-sent connections do not
keep others out and are closed after the header timeout; stalled and trickling bodies hold no
worker thread and are answered 408 at the body timeout; bodies over the limits are refused
from their Content-Length, or cut as they stream in, and never spooled to a temporary file."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.embedded import free_port
from tests.helpers import BROWSER_UA, TOKEN, http_get, serving, worker_pids

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 2  # seconds, the setting's lowest sensible value for a test
BODY_TIMEOUT = 4  # seconds: long enough for the checks made while a thousand bodies stall
HELD = 1200  # above what granian's defaults let 2 workers hold (1024)
HALF_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"
HUGE = 50 * 1024 * 1024
CHUNKED_TOTAL = 10 * 1024 * 1024
CHUNK = 64 * 1024
BEACON = json.dumps({"site": "demo", "url": "https://example.vn/slow"}).encode()


class Served:
    def __init__(self, process: subprocess.Popen[str], port: int, tmpdir: Path) -> None:
        self.process = process
        self.port = port
        self.tmpdir = tmpdir

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("slow-clients")
    tmpdir = workdir / "tmp"
    tmpdir.mkdir()
    port = free_port()
    env = {
        "ANALYTICS_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "ANALYTICS_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "ANALYTICS_ADMIN_TOKEN": TOKEN,
        "TMPDIR": str(tmpdir),
    }
    with serving(workdir, port, "--workers", "2", **env) as process:
        yield Served(process, port, tmpdir)


@pytest.fixture(scope="module", autouse=True)
def enough_open_files() -> Iterator[None]:
    """This process holds HELD sockets at once: its soft limit raised if it is below that."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = HELD + 256
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"the open-files hard limit ({hard}) is below {needed}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def post(served: Served, path: str, body: bytes, **headers: str) -> tuple[int, bytes]:
    sock = served.connect()
    with sock:
        head = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n{head}\r\n".encode()
            + body
        )
        return parse_answer(read_all(sock))


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def parse_answer(data: bytes) -> tuple[int, bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def demo_pageviews(served: Served) -> int:
    status, body = http_get(f"http://127.0.0.1:{served.port}/api/v1/sites/demo/counters")
    assert status == 200
    total: int = json.loads(body)["windows"]["total"]["pageviews"]
    return total


def closed_by_server(
    sock: socket.socket, within: float, start: float | None = None
) -> tuple[float, bytes]:
    """Waits for the server to close ``sock``: how long it took since ``start`` (by default,
    now), and what it sent before."""
    start = time.monotonic() if start is None else start
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return float("inf"), received  # still open
    return time.monotonic() - start, received


def test_a_thousand_idle_and_half_sent_connections_keep_out_neither_healthz_nor_beacons(
    served: Served,
) -> None:
    before = demo_pageviews(served)
    held: list[socket.socket] = []
    try:
        for n in range(HELD):
            sock = served.connect()
            held.append(sock)
            if n % 3 == 1:  # half a request header, then nothing
                sock.sendall(HALF_HEADERS)
            elif n % 3 == 2:  # a header byte now and then
                sock.sendall(HALF_HEADERS[:1])
            # else: connected, nothing sent
        for sock in held[2::3]:
            sock.sendall(HALF_HEADERS[1:2])

        started = time.monotonic()
        status, body = http_get(f"http://127.0.0.1:{served.port}/healthz")
        took = time.monotonic() - started
        assert status == 200, body
        assert took < 1.0, f"/healthz took {took:.2f} s behind {HELD} slow connections"

        status, _ = post(
            served,
            "/api/v1/hit",
            BEACON,
            Content_Type="text/plain;charset=UTF-8",
            User_Agent=BROWSER_UA,
        )
        assert status == 204
        assert demo_pageviews(served) == before + 1
    finally:
        for sock in held:
            sock.close()


STALLED_BEACON = (
    b"POST /api/v1/hit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 100\r\n\r\n"
)
TRICKLING = 200  # of the HELD connections, those that send a body byte every second


def answers_while_trickling(
    socks: list[socket.socket], trickling: set[socket.socket], within: float
) -> dict[socket.socket, tuple[float, bytes]]:
    """Reads every socket until the server closes it, ``within`` seconds at most, sending a body
    byte to each of ``trickling`` every second meanwhile: when each was closed, and what it
    was sent before."""
    received = {sock: b"" for sock in socks}
    closed: dict[socket.socket, tuple[float, bytes]] = {}
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + within
        next_byte = time.monotonic() + 1.0
        while len(closed) < len(socks) and time.monotonic() < deadline:
            if time.monotonic() >= next_byte:
                next_byte += 1.0
                for sock in trickling - closed.keys():
                    with contextlib.suppress(OSError):  # answered and closed: seen below
                        sock.send(b"{")
            for key, _ in selector.select(timeout=0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(4096)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    received[sock] += chunk
                else:
                    closed[sock] = (time.monotonic(), received[sock])
                    selector.unregister(sock)
    return closed


def test_a_thousand_stalled_and_trickling_bodies_hold_no_thread_and_get_408_at_the_deadline(
    served: Served,
) -> None:
    """Each sends a beacon's headers with a Content-Length of 100, then no body at all, or a
    byte of it every second: neither /healthz nor a beacon waits for them (they would, were
    each holding one of the 2 x 8 worker threads), and each is answered 408 and closed once
    the body timeout has run from its headers, however often its bytes come."""
    before = demo_pageviews(served)
    held: list[socket.socket] = []
    sent_at: dict[socket.socket, float] = {}
    try:
        for _ in range(HELD):
            sock = served.connect()
            held.append(sock)
            sock.sendall(STALLED_BEACON)
            sent_at[sock] = time.monotonic()
        trickling = set(held[-TRICKLING:])
        for sock in trickling:
            sock.sendall(b"{")  # the first byte of a body, then one a second
        first = min(sent_at.values())

        started = time.monotonic()
        status, body = http_get(f"http://127.0.0.1:{served.port}/healthz")
        took = time.monotonic() - started
        assert status == 200, body
        assert took < 1.0, f"/healthz took {took:.2f} s behind {HELD} stalled bodies"
        page = json.dumps({"site": "demo", "url": "https://example.vn/stalled"}).encode()
        status, _ = post(
            served,
            "/api/v1/hit",
            page,
            Content_Type="text/plain;charset=UTF-8",
            User_Agent=BROWSER_UA,
        )
        assert status == 204
        assert demo_pageviews(served) == before + 1
        # All of that while every stalled body was still within its time.
        assert time.monotonic() - first < BODY_TIMEOUT

        closed = answers_while_trickling(held, trickling, within=BODY_TIMEOUT + 20)
        assert len(closed) == HELD, f"{HELD - len(closed)} stalled connections still open"
        for sock, (when, answer) in closed.items():
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert json.loads(parse_answer(answer)[1])["error"]["code"] == "http_error"
            assert BODY_TIMEOUT - 0.5 <= when - sent_at[sock] <= BODY_TIMEOUT + 10
        assert demo_pageviews(served) == before + 1  # none of them reached the app
    finally:
        for sock in held:
            sock.close()


def test_a_body_that_comes_slowly_within_the_body_timeout_is_counted(served: Served) -> None:
    before = demo_pageviews(served)
    beacon = json.dumps({"site": "demo", "url": "https://example.vn/slowly"}).encode()
    with served.connect() as sock:
        sock.sendall(
            b"POST /api/v1/hit HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: text/plain;charset=UTF-8\r\n"
            + f"User-Agent: {BROWSER_UA}\r\nContent-Length: {len(beacon)}\r\n\r\n".encode()
        )
        for part in (beacon[:10], beacon[10:20], beacon[20:]):
            time.sleep(0.2)  # the client's pace, not the service's clock
            sock.sendall(part)
        status, _ = parse_answer(read_all(sock))
    assert status == 204
    assert demo_pageviews(served) == before + 1


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(b"", id="nothing-sent"),
        pytest.param(HALF_HEADERS, id="half-a-header"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", id="idle-kept-alive"),
    ],
)
def test_a_connection_without_a_whole_request_is_closed_after_the_header_timeout(
    served: Served, sent: bytes
) -> None:
    # Timed from before the connection: no earlier than the server's own timer starts, however
    # long this test is held up between its steps.
    start = time.monotonic()
    with served.connect() as sock:
        sock.sendall(sent)
        if sent.endswith(b"\r\n\r\n"):  # read the answer: the connection is then idle
            answer = b""
            while not answer.endswith(b'{"status":"ok"}\n'):
                chunk = sock.recv(4096)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer
        took, received = closed_by_server(sock, within=HEADER_TIMEOUT + 10, start=start)
    assert received == b""  # closed without an answer
    assert HEADER_TIMEOUT - 0.5 <= took <= HEADER_TIMEOUT + 5


def test_a_trickling_header_is_closed_at_the_header_timeout_however_often_a_byte_comes(
    served: Served,
) -> None:
    with served.connect() as sock:
        start = time.monotonic()
        closed = False
        for byte in HALF_HEADERS:  # a byte every 0.25 s: more than the timeout's worth
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.25)
            try:
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
        took = time.monotonic() - start
    assert closed, "the trickling connection was still open"
    assert took <= HEADER_TIMEOUT + 5


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/v1/hit", b"8192 bytes"),
        ("/api/v1/admin/sites", b"65536 bytes"),
    ],
)
def test_a_huge_content_length_is_refused_before_its_body_is_read(
    served: Served, path: str, message: bytes
) -> None:
    with served.connect() as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {HUGE}\r\n\r\n".encode()
            + b"{" * 1024
        )
        # Nothing more is sent: the answer must come without the rest of the body.
        started = time.monotonic()
        answer = read_all(sock)
        took = time.monotonic() - started
    status, body = parse_answer(answer)
    assert status == 413, answer
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert message in body
    assert took < 5


def descriptors_in(pids: set[int], folder: Path) -> list[str]:
    """The files under ``folder`` that ``pids`` hold open, deleted ones included."""
    found = []
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else ():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith(str(folder)) and "analytics-metrics-" not in target:
                found.append(target)
    return found


def files_in(folder: Path) -> list[str]:
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_file() and not path.relative_to(folder).parts[0].startswith("analytics-metrics-")
    )


@pytest.mark.parametrize(
    ("method", "path", "content_type"),
    [
        ("POST", "/api/v1/hit", "text/plain;charset=UTF-8"),
        ("PATCH", "/api/v1/admin/sites/demo", "application/json"),
        ("PATCH", "/api/v1/admin/sites/demo", "multipart/form-data; boundary=b"),
        ("POST", "/api/v1/admin/sites", "application/x-www-form-urlencoded"),
    ],
)
def test_a_chunked_body_is_cut_at_the_limit_and_never_written_to_a_temporary_file(
    served: Served, method: str, path: str, content_type: str
) -> None:
    workers = worker_pids(served.process)
    assert workers
    files_before = files_in(served.tmpdir)
    part = b'--b\r\nContent-Disposition: form-data; name="f"; filename="f"\r\n\r\n'
    seen_open: list[str] = []
    with served.connect() as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sent = 0
        try:
            first = part if content_type.startswith("multipart/") else b""
            while sent < CHUNKED_TOTAL:
                data = first + b"x" * (CHUNK - len(first))
                first = b""
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
                sent += len(data)
                if sent == 16 * CHUNK:  # 1 MiB in, past werkzeug's 500 KB in memory
                    seen_open = descriptors_in(workers, served.tmpdir)
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the whole body: what is expected
        answer = read_all(sock)
    status, body = parse_answer(answer)
    assert status == 413, answer
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert sent < CHUNKED_TOTAL  # the server stopped reading long before the end
    assert seen_open == []
    assert files_in(served.tmpdir) == files_before
