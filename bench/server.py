"""The service as ``analytics serve`` runs it, plus ``GET /bench/hello``, for bench.load.

Run by bench.load in a subprocess of its own, so that the server's CPU is not
wrk's. Settings come from the environment exactly as for ``analytics serve``
(``Settings.load()``); ``ANALYTICS_REDIS_URL`` must be set, since the Redis
belongs to the parent, which reads its statistics. The app and the waitress
server are built by the same functions as ``analytics serve``
(``analytics.create_app`` and ``analytics.cli.build_server``); the one
difference is the baseline route ``/bench/hello``, which answers an empty 204.

Prints ``listening on http://HOST:PORT`` once ready, then serves until SIGTERM
or until the parent dies.
"""

from __future__ import annotations

import argparse
import sys

from flask import Flask, Response

from analytics import create_app
from analytics.cli import Stop, build_server, handle_stop_signals
from analytics.embedded import die_with_parent
from analytics.logs import configure_logging
from analytics.settings import Settings

HELLO_PATH = "/bench/hello"
READY_PREFIX = "listening on "


def _hello() -> Response:
    return Response(status=204)


def bench_app(settings: Settings) -> Flask:
    """The app of ``analytics serve`` with the baseline route added."""
    app = create_app(settings)
    app.add_url_rule(HELLO_PATH, "bench_hello", _hello, methods=["GET"])
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args(argv)

    die_with_parent()
    configure_logging(Settings.load().log_format)  # as `analytics serve` logs, at its cost
    handle_stop_signals()
    settings = Settings.load()
    if settings.redis_url is None:
        sys.exit("bench.server: set ANALYTICS_REDIS_URL (bench.load does)")
    app = bench_app(settings)
    server = build_server(app, host=args.host, port=args.port, threads=settings.threads)
    print(f"{READY_PREFIX}http://{args.host}:{server.effective_port}", flush=True)
    try:
        server.run()
    except Stop:
        pass
    finally:
        server.close()
        server.task_dispatcher.shutdown(timeout=10)


if __name__ == "__main__":
    main()
