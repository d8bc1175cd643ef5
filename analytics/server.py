"""The web server of `analytics serve` and `analytics web`: granian serving the WSGI app from
worker processes, their metrics summed in one directory, each worker building its own app."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from analytics import metrics
from analytics.settings import Settings

log = logging.getLogger("analytics")

APP_TARGET = "analytics.worker:app"
ACCESS_LOG_FORMAT = '"%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3fms'
"""A line of the access log (the ``access_log`` setting): no client address, no query."""


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
    """
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    worker_environment(settings)
    multiprocessing.set_start_method("spawn", force=True)
    server = Server(
        APP_TARGET,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=workers,
        blocking_threads=settings.threads,
        respawn_failed_workers=True,
        log_level=LogLevels.warning,
        log_dictconfig=granian_logging(settings.log_format),
        log_access=settings.access_log,
        log_access_format=ACCESS_LOG_FORMAT,
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
