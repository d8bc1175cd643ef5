"""`analytics serve` (the whole service on one machine) and `analytics scheduler`."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import stat
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click
from prometheus_client import start_http_server

from analytics.cli.connection import redis_for
from analytics.embedded import EmbeddedRedis
from analytics.errors import AnalyticsError, SettingsError
from analytics.scheduler import build_scheduler
from analytics.server import check_port, metrics_directory, serve_workers
from analytics.services import build_services
from analytics.settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger("analytics")


class Stop(SystemExit):
    """Raised in the main thread by SIGTERM or SIGINT, so both take one shutdown path.

    A SystemExit, because waitress's event loop re-raises only SystemExit and
    KeyboardInterrupt from a connection's handlers and swallows anything else:
    a plain Exception raised there by the signal would be lost and serving go on.
    Exits 0 when it escapes (a signal during start-up).
    """


def on_stop_signal(signum: int, frame: FrameType | None) -> NoReturn:
    raise Stop


def handle_stop_signals() -> None:
    signal.signal(signal.SIGTERM, on_stop_signal)
    signal.signal(signal.SIGINT, on_stop_signal)


class StopSignal:
    """SIGTERM and SIGINT, waited for by the main thread.

    The handler takes no lock (an Event's would deadlock when a second signal lands while the
    handler of the first holds it) and acts once: it writes a byte to a pipe that ``wait``
    reads, so a signal that arrives before ``wait`` is not lost.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        self.received = False
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self.received:
            self.received = True
            os.write(self._write, b"x")

    def wait(self) -> None:
        os.read(self._read, 1)


class PortUnavailable(AnalyticsError):
    code = "port_unavailable"


def cannot_listen(err: OSError, host: str, port: int, option: str) -> PortUnavailable:
    """One line that says why ``host:port`` cannot be listened on, and which option to change."""
    if err.errno == errno.EADDRINUSE:
        return PortUnavailable(
            f"port {port} on {host} is in use: stop what uses it, or choose another with {option}"
        )
    if err.errno == errno.EACCES:
        return PortUnavailable(
            f"port {port} on {host} needs privileges: choose one above 1023 with {option}"
        )
    reason = err.strerror or str(err)
    return PortUnavailable(
        f"cannot listen on {host}:{port} ({reason}): check {option} and the address"
    )


def build_server(app: WSGIApplication, *, host: str, port: int, threads: int) -> Any:
    """A waitress server over ``app`` in the caller's own process (a thread of it), for the
    browser tests and the benchmarks that need the app at hand; the service itself runs on
    granian (analytics/server.py)."""
    from waitress import create_server

    # X-Forwarded-For is judged once, by ProxyFix in create_app, per ANALYTICS_TRUSTED_PROXIES;
    # waitress must pass it through rather than strip it.
    return create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        ident="visit-analytics",
        clear_untrusted_proxy_headers=False,
    )


HOST = click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
PORT = click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
WORKERS = click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    default=None,
    help="Web worker processes [default: the workers setting: the CPUs this process may use].",
)


def private_data_dir(data_dir: Path) -> None:
    """Makes the data directory the service's alone: created 0700, or tightened to 0700 with
    every file in it readable and writable by its owner only (files an older version or another
    umask left open). The embedded Redis makes its own files 0600 (``embedded.redis_child``)."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    for path in data_dir.rglob("*"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to change
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
                path.chmod(stat.S_IMODE(mode) & ~0o077)


def url_of(host: str, port: int) -> str:
    return f"http://{host if ':' not in host else f'[{host}]'}:{port}"


@click.command()
@HOST
@PORT
@WORKERS
def serve(host: str, port: int, workers: int | None) -> None:
    """The whole service on one machine: web workers, the scheduler and, without a Redis URL, an
    embedded Redis."""
    settings = Settings.load()
    try:
        check_port(host, port)
    except OSError as err:
        raise cannot_listen(err, host, port, "--port") from None
    private_data_dir(settings.data_dir)
    # The embedded Redis, if any, is supervised by this process: started again if it dies.
    with redis_for(settings, supervise=True) as ready, metrics_directory():
        services = build_services(ready)  # registers the sites once, before any worker starts
        scheduler = build_scheduler(services.housekeeper)
        base = url_of(host, port)
        admin_off = " (off until ANALYTICS_ADMIN_TOKEN is set)" if ready.admin_token is None else ""
        count = workers or ready.workers

        def listening() -> None:
            scheduler.start()
            log.info(
                "serving",
                extra={"event": "start", "component": "serve", "url": base, "workers": count},
            )
            click.echo(f"visit-analytics is serving on {base} ({count} workers)")
            click.echo(f"  demo page with the box of the site 'demo': {base}/demo")
            click.echo(f"  its counters: {base}/api/v1/sites/demo/counters")
            click.echo(f"  admin page: {base}/admin{admin_off}")

        try:
            serve_workers(ready, host=host, port=port, workers=count, on_listening=listening)
        finally:
            log.info("stopping", extra={"event": "stop", "component": "serve"})
            if scheduler.running:
                scheduler.shutdown(wait=True)


@click.command()
@HOST
@PORT
@WORKERS
def web(host: str, port: int, workers: int | None) -> None:
    """The web tier alone, on the configured Redis: for deployments that run several of them and
    one `analytics scheduler`."""
    settings = Settings.load()
    if settings.redis_url is None:
        raise SettingsError(
            "ANALYTICS_REDIS_URL", "is unset: the web tier alone needs the deployment's Redis"
        )
    try:
        check_port(host, port)
    except OSError as err:
        raise cannot_listen(err, host, port, "--port") from None
    count = workers or settings.workers
    private_data_dir(settings.data_dir)  # the spool's
    with metrics_directory():
        build_services(settings).store.close()  # the sites file, registered once

        def listening() -> None:
            log.info(
                "serving",
                extra={"event": "start", "component": "web", "url": url_of(host, port)},
            )
            click.echo(f"visit-analytics web tier on {url_of(host, port)} ({count} workers)")

        try:
            serve_workers(settings, host=host, port=port, workers=count, on_listening=listening)
        finally:
            log.info("stopping", extra={"event": "stop", "component": "web"})


@click.command()
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve this process's Prometheus metrics at this port.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address of the metrics server (0.0.0.0 in a container that Prometheus scrapes).",
)
def scheduler(metrics_port: int | None, metrics_host: str) -> None:
    """The housekeeping scheduler alone, for deployments with several web processes."""
    settings = Settings.load()
    if settings.redis_url is None and EmbeddedRedis.running_url(settings.data_dir) is None:
        raise SettingsError(
            "ANALYTICS_REDIS_URL",
            "is unset and no `analytics serve` runs on the data directory: "
            "the scheduler alone needs the Redis of the web service",
        )
    stop = StopSignal()
    with redis_for(settings, share_running=True) as ready:
        services = build_services(ready, seed=False)
        if metrics_port is not None:
            try:
                start_http_server(
                    metrics_port, addr=metrics_host, registry=services.metrics.registry
                )
            except OSError as err:
                raise cannot_listen(err, metrics_host, metrics_port, "--metrics-port") from None
        # In threads of its own: the signal only wakes the main thread, and no job sees it land.
        runner = build_scheduler(services.housekeeper)
        runner.start()
        click.echo("visit-analytics scheduler running")
        log.info("scheduler running", extra={"event": "start", "component": "scheduler"})
        try:
            stop.wait()
        finally:
            log.info("stopping", extra={"event": "stop", "component": "scheduler"})
            runner.shutdown(wait=True)
