"""gunicorn settings of the production web tier.

    gunicorn -c config/gunicorn.conf.py analytics.wsgi:app

Run `analytics scheduler` beside it, once per deployment: the web workers never run
housekeeping. Its workers, threads, bind address and access log are settings of the service
(`workers`, `threads`, `bind`, `access_log`: config/analytics.toml, or ANALYTICS_WORKERS,
ANALYTICS_THREADS, ANALYTICS_BIND, ANALYTICS_ACCESS_LOG), read here when the server starts; a
bad one stops it with a message that names it. Environment, besides the settings:

- PROMETHEUS_MULTIPROC_DIR: where the workers write their metrics; its metric files are
  removed at start. Unset: a new temporary directory of this server's own, removed at exit.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# Set before prometheus-client is imported anywhere, so that every worker writes its metrics
# to the shared directory and a scrape of any worker reports the sum of all. A configuration
# reload (SIGHUP) runs this file again: the variable set the first time keeps the directory.
own_dir = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if own_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="visit-analytics-metrics-")
multiproc_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])

from prometheus_client import multiprocess  # noqa: E402

from analytics.errors import SettingsError  # noqa: E402
from analytics.settings import Settings  # noqa: E402

try:
    settings = Settings.load()
except SettingsError as err:
    # gunicorn prints a traceback for any other exception raised here.
    raise SystemExit(f"visit-analytics: {err.message}") from None

bind = [settings.bind]
workers = settings.workers
# Threads, not an event loop: redis-py and the Lua round trip block, and gthread needs no
# monkey-patching; each worker keeps its Redis connection pool across its threads.
worker_class = "gthread"
threads = settings.threads
# The worker's heartbeat: a worker whose main loop stops for this long is replaced. A request
# stuck on Redis is bounded by the client's own 2 s timeout and one retry, not by this.
timeout = 30
# On SIGTERM, let in-flight requests (hits already accepted) finish.
graceful_timeout = 20
keepalive = 5
accesslog = "-" if settings.access_log else None
access_log_format = '%(t)s "%(r)s" %(s)s %(b)s %(L)ss pid=%(p)s'
errorlog = "-"
# The service's log lines (JSON by default), no client address in them, and no access-log
# work per request while the access log is off.
logger_class = "analytics.server_logging.ServerLogger"
proc_name = "visit-analytics"
# Nothing here uses gunicorn's control socket, and one path per user would clash between two
# servers on a machine.
control_socket_disable = True
# The app is imported in each worker after the fork: no Redis connection crosses a fork.
preload_app = False


def on_starting(server: Any) -> None:
    """Counters start again with the master: the metric files of an earlier run go."""
    multiproc_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in multiproc_dir.glob("*.db"):
        stale.unlink()
    server.log.info(
        "starting", extra={"event": "start", "component": "gunicorn", "workers": workers}
    )


def child_exit(server: Any, worker: Any) -> None:
    """A worker's live gauges leave with it; its counters stay in the sum, so none goes back."""
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if own_dir:
        shutil.rmtree(multiproc_dir, ignore_errors=True)
    server.log.info("stopped", extra={"event": "stop", "component": "gunicorn"})
