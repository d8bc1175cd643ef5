"""gunicorn settings of the production web tier.

    gunicorn -c config/gunicorn.conf.py analytics.wsgi:app

Run `analytics scheduler` beside it, once per deployment: the web workers never run
housekeeping. Environment:

- ANALYTICS_BIND: address to listen on (127.0.0.1:8000; 0.0.0.0:8000 in a container).
- ANALYTICS_WORKERS: worker processes (one per CPU: each runs Python code under its own GIL).
- ANALYTICS_THREADS: threads per worker (8: a beacon spends most of its time waiting on Redis).
- ANALYTICS_ACCESS_LOG: "-" for an access log on stdout (off by default: a line per beacon
  costs CPU, and the counts are in /metrics).
- PROMETHEUS_MULTIPROC_DIR: where the workers write their metrics, wiped at start
  (default: a directory of the user's in the system's temporary directory).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# Set before prometheus-client is imported anywhere, so that every worker writes its metrics
# to the shared directory and a scrape of any worker reports the sum of all.
multiproc_dir = Path(
    os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    or Path(tempfile.gettempdir()) / f"visit-analytics-metrics-{os.getuid()}"
)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc_dir)

from prometheus_client import multiprocess  # noqa: E402

bind = [os.environ.get("ANALYTICS_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("ANALYTICS_WORKERS") or os.cpu_count() or 2)
# Threads, not an event loop: redis-py and the Lua round trip block, and gthread needs no
# monkey-patching; each worker keeps its Redis connection pool across its threads.
worker_class = "gthread"
threads = int(os.environ.get("ANALYTICS_THREADS") or 8)
# A beacon answers in milliseconds; 30 s only catches a worker stuck on a dead connection.
timeout = 30
# On SIGTERM, let in-flight requests (hits already accepted) finish.
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("ANALYTICS_ACCESS_LOG") or None
access_log_format = '%(t)s "%(r)s" %(s)s %(b)s %(L)ss pid=%(p)s'
errorlog = "-"
proc_name = "visit-analytics"
# Nothing here uses gunicorn's control socket, and one path per user would clash between two
# servers on a machine.
control_socket_disable = True
# The app is imported in each worker after the fork: no Redis connection crosses a fork.
preload_app = False

logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "analytics.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"level": "INFO", "handlers": ["stderr"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        # With a logging config, gunicorn logs access lines whatever accesslog says: off here.
        "gunicorn.access": {
            "level": "INFO" if accesslog else "CRITICAL",
            "handlers": ["stderr"],
            "propagate": False,
        },
    },
}


def on_starting(server: Any) -> None:
    """Wipes the metrics of an earlier run: counters start again with the master."""
    shutil.rmtree(multiproc_dir, ignore_errors=True)
    multiproc_dir.mkdir(parents=True, mode=0o700)
    server.log.info(
        "starting", extra={"event": "start", "component": "gunicorn", "workers": workers}
    )


def child_exit(server: Any, worker: Any) -> None:
    """A worker's live gauges leave with it; its counters stay in the sum, so none goes back."""
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    server.log.info("stopped", extra={"event": "stop", "component": "gunicorn"})
