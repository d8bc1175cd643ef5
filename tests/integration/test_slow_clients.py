"""Slow and huge clients against a real `analytics serve`: idle and half-sent connections do not
keep others out and are closed after the header timeout; bodies over the limits are refused
from their Content-Length, or cut as they stream in, and never spooled to a temporary file."""

from __future__ import annotations

import json
import os
import resource
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


def closed_by_server(sock: socket.socket, within: float) -> tuple[float, bytes]:
    """Waits for the server to close ``sock``: how long it took, and what it sent before."""
    start = time.monotonic()
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
    with served.connect() as sock:
        sock.sendall(sent)
        if sent.endswith(b"\r\n\r\n"):  # read the answer: the connection is then idle
            answer = b""
            while not answer.endswith(b'{"status":"ok"}\n'):
                chunk = sock.recv(4096)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200"), answer
        took, received = closed_by_server(sock, within=HEADER_TIMEOUT + 10)
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
