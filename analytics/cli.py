"""The ``analytics`` command."""

from __future__ import annotations

import csv
import io
import json
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click
from prometheus_client import start_http_server

from analytics.cli_admin import ADMIN_COMMANDS
from analytics.embedded import EmbeddedRedis
from analytics.errors import AnalyticsError, SettingsError
from analytics.history import parse_range
from analytics.logs import configure_logging
from analytics.metrics import single_process
from analytics.scheduler import build_scheduler
from analytics.services import build_services
from analytics.settings import Settings
from analytics.web.context import EXTENSION

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


@contextmanager
def redis_for(settings: Settings, *, share_running: bool = False) -> Iterator[Settings]:
    """``settings`` with a Redis URL: the configured one, or an embedded server's.

    With ``share_running``, the embedded Redis of a running `analytics serve` is used when
    there is one; otherwise one is started on the data directory for the command's duration.
    """
    if settings.redis_url is not None:
        yield settings
        return
    running = EmbeddedRedis.running_url(settings.data_dir) if share_running else None
    if running is not None:
        yield settings.replace(redis_url=running)
        return
    embedded = EmbeddedRedis(settings.data_dir)
    embedded.start()
    try:
        yield settings.replace(redis_url=embedded.url)
    finally:
        embedded.stop()
        log.info("embedded Redis stopped; data kept in %s", embedded.data_dir)


def build_server(app: WSGIApplication, *, host: str, port: int, threads: int) -> Any:
    """The waitress server of ``analytics serve`` (the benchmark in bench/ builds the same)."""
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


@click.group()
def cli() -> None:
    """visit-analytics: a self-hosted visit counter."""
    single_process()
    configure_logging(log_format())


for command in ADMIN_COMMANDS:
    cli.add_command(command)


def log_format() -> str:
    """The configured log format; "json" when the settings are broken (the command says why)."""
    try:
        return Settings.load().log_format
    except AnalyticsError:
        return "json"


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
def serve(host: str, port: int) -> None:
    """The whole service on one machine: web server and, without a Redis URL, an embedded Redis."""
    from analytics import create_app

    settings = Settings.load()
    handle_stop_signals()
    with redis_for(settings) as ready:
        app = create_app(ready)
        server = build_server(app, host=host, port=port, threads=ready.threads)
        scheduler = build_scheduler(app.extensions[EXTENSION].housekeeper)
        base = f"http://{host if ':' not in host else f'[{host}]'}:{server.effective_port}"
        try:
            scheduler.start()
            log.info("serving", extra={"event": "start", "component": "serve", "url": base})
            click.echo(f"visit-analytics is serving on {base}")
            click.echo(f"  demo page with the box of the site 'demo': {base}/demo")
            click.echo(f"  its counters: {base}/api/v1/sites/demo/counters")
            server.run()
        except Stop:
            log.info("stopping", extra={"event": "stop", "component": "serve"})
        finally:
            server.close()
            # Let the worker threads finish the hits already accepted before Redis goes.
            server.task_dispatcher.shutdown(timeout=10)
            if scheduler.running:
                scheduler.shutdown(wait=True)


@cli.command()
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
    handle_stop_signals()
    with redis_for(settings, share_running=True) as ready:
        services = build_services(ready, seed=False)
        if metrics_port is not None:
            start_http_server(metrics_port, addr=metrics_host, registry=services.metrics.registry)
        runner = build_scheduler(services.housekeeper, blocking=True)
        click.echo("visit-analytics scheduler running")
        log.info("scheduler running", extra={"event": "start", "component": "scheduler"})
        try:
            runner.start()
        except Stop:
            log.info("stopping", extra={"event": "stop", "component": "scheduler"})
        finally:
            if runner.running:
                runner.shutdown(wait=True)


@cli.command()
@click.argument("site")
@click.option("--from", "first", required=True, help="First local day, YYYY-MM-DD.")
@click.option("--to", "last", required=True, help="Last local day, YYYY-MM-DD.")
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
def history(site: str, first: str, last: str, fmt: str) -> None:
    """The daily counts of SITE, one line per local day, zeros included, today live."""
    settings = Settings.load()
    start, end = parse_range(first, last)
    with redis_for(settings, share_running=True) as ready:
        days = build_services(ready, seed=False).history.days(site, start, end)
    if fmt == "json":
        click.echo(json.dumps({"site": site, "days": days}, ensure_ascii=False, indent=2))
        return
    out = io.StringIO()
    writer = csv.DictWriter(out, ["date", "pageviews", "visits", "visitors"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(days)
    click.echo(out.getvalue(), nl=False)


EXIT_CODES = {400: 2, 404: 3, 409: 4, 503: 5}
"""Exit status by kind of error: 2 invalid input (as for click's usage errors), 3 unknown site
or reset, 4 conflict, 5 Redis unavailable; 1 for anything else that stops a command."""


def exit_code(err: AnalyticsError) -> int:
    if isinstance(err, SettingsError):
        return 2
    return EXIT_CODES.get(err.status, 1)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except AnalyticsError as err:
        click.echo(f"analytics: {err.message}", err=True)
        sys.exit(exit_code(err))
