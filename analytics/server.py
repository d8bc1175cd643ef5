"""The web server of `analytics serve` and `analytics web`: granian serving the WSGI app through
its RSGI interface (analytics/rsgi.py) from worker processes, their metrics summed in one
directory, each worker building its own app."""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from analytics import metrics
from analytics.settings import Settings

log = logging.getLogger("analytics")

APP_TARGET = "analytics.worker:rsgi_app"
CONNECTIONS_PER_WORKER = 10_000
"""Connections a worker holds open at once, idle and slow ones included; past them, new ones
wait in the listen queue. Lower when the open-files limit is lower (``connections_per_worker``)."""
FILES_KEPT_FREE = 256
"""Open files a worker keeps for other uses than client connections (Redis, logs, metrics)."""
LISTEN_BACKLOG = 4096
"""Connections the kernel queues before a worker accepts them (capped by net.core.somaxconn)."""
ACCESS_LOG_FORMAT = '"%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3fms'
"""A line of the access log (the ``access_log`` setting): no client address, no query."""
MANY_THREADS_PER_CPU = 2
"""Past this many threads per CPU (and one), a worker's pool is more than its CPUs can keep busy:
the start warns."""


def check_port(host: str, port: int) -> None:
    """Raises OSError when ``host:port`` cannot be listened on, before any worker starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


@contextmanager
def metrics_directory() -> Iterator[Path]:
    """A directory of this server's own for the workers' metrics, set for this process and the
    workers it starts; removed when the server stops."""
    path = Path(tempfile.mkdtemp(prefix="analytics-metrics-"))
    metrics.share_between_processes(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def raise_open_files_limit() -> int:
    """Raises this process's soft limit of open files to its hard limit (the workers it starts
    inherit it); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else soft
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


def connections_per_worker(open_files: int) -> int:
    """Client connections a worker may hold within ``open_files`` open files."""
    if open_files == resource.RLIM_INFINITY:
        return CONNECTIONS_PER_WORKER
    return max(1, min(CONNECTIONS_PER_WORKER, open_files - FILES_KEPT_FREE))


def worker_environment(settings: Settings) -> None:
    """What the workers need that is not in the settings file and environment they read: the
    Redis URL of an embedded Redis."""
    if settings.redis_url is not None:
        os.environ["ANALYTICS_REDIS_URL"] = settings.redis_url


def serve_workers(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    on_listening: Callable[[], None],
) -> None:
    """Serves until SIGTERM or SIGINT: ``workers`` processes of ``settings.threads`` threads.

    Workers are spawned, not forked, so none inherits this process's threads (the scheduler's)
    or its Redis connections; one that dies is started again.

    Slow clients: HTTP/1.1 only, so that the header timeout runs from the moment a connection
    opens (granian's HTTP/2 detection waits for a first byte without any timeout); a client gets
    ``settings.header_timeout_seconds`` to send its request's headers, and an idle kept-alive
    connection stays that long; then it is closed without an answer. Each worker holds up to
    ``connections_per_worker`` connections, so idle ones do not keep others out. A request's
    body is read on the worker's event loop, not on one of its threads (analytics/rsgi.py):
    within the app's limits (8 KiB for a beacon, 64 KiB elsewhere) and
    ``settings.body_timeout_seconds``, past which it is answered 408; only then does the app
    run, on one of the worker's ``settings.threads`` threads (docs/operations.md, "Slow clients
    and large bodies").
    """
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    worker_environment(settings)
    open_files = raise_open_files_limit()
    multiprocessing.set_start_method("spawn", force=True)
    server = Server(
        APP_TARGET,
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(header_read_timeout=settings.header_timeout_seconds * 1000),
        backlog=LISTEN_BACKLOG,
        backpressure=connections_per_worker(open_files),
        workers=workers,
        respawn_failed_workers=True,
        log_level=LogLevels.warning,
        log_dictconfig=granian_logging(settings.log_format),
        log_access=settings.access_log,
        log_access_format=ACCESS_LOG_FORMAT,
    )
    cpus = multiprocessing.cpu_count()
    if settings.threads > cpus * MANY_THREADS_PER_CPU + 1:
        log.warning(
            "up to %d Python threads per web worker (ANALYTICS_THREADS) for %d CPUs: past "
            "about %d, more threads add contention rather than throughput",
            settings.threads,
            cpus,
            cpus * MANY_THREADS_PER_CPU + 1,
        )
    server.on_startup(on_listening)
    server.serve()


def granian_logging(log_format: str) -> dict[str, object]:
    """granian's own lines in the service's format, warnings and errors only (its per-start
    lines would repeat ours), and its access log, when on, in the same format; client
    addresses taken out of both."""
    formatter = "JsonFormatter" if log_format == "json" else "TextFormatter"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": {"()": f"analytics.logs.{formatter}"}},
        "filters": {"no_addresses": {"()": "analytics.logs.NoClientAddresses"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "service",
                "filters": ["no_addresses"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "_granian": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
            "granian.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        },
    }
