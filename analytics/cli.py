"""The ``analytics`` command."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from analytics.embedded import EmbeddedRedis
from analytics.errors import AnalyticsError
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


@contextmanager
def redis_for(settings: Settings) -> Iterator[Settings]:
    """``settings`` with a Redis URL: the configured one, or an embedded server's."""
    if settings.redis_url is not None:
        yield settings
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
    configure_logging()


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Under load waitress warns of its queue depth on nearly every request: noise that costs CPU.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


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
        server = build_server(app, host=host, port=port, threads=ready.serve_threads)
        base = f"http://{host if ':' not in host else f'[{host}]'}:{server.effective_port}"
        click.echo(f"visit-analytics is serving on {base}")
        click.echo(f"  counters of the demo site: {base}/api/v1/sites/demo/counters")
        try:
            server.run()
        except Stop:
            log.info("stopping")
        finally:
            server.close()
            # Let the worker threads finish the hits already accepted before Redis goes.
            server.task_dispatcher.shutdown(timeout=10)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except AnalyticsError as err:
        click.echo(f"analytics: {err.message}", err=True)
        sys.exit(2)
