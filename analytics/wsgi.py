"""The WSGI entry point of the production server: ``gunicorn -c config/gunicorn.conf.py
analytics.wsgi:app``. Each worker process builds its own app (and Redis connections) here."""

from __future__ import annotations

import logging
import sys

from analytics import create_app
from analytics.logs import configure_logging
from analytics.metrics import multiprocess_dir
from analytics.settings import Settings

settings = Settings.load()
if settings.redis_url is None:
    raise SystemExit(
        "ANALYTICS_REDIS_URL is unset: the production server needs a Redis "
        "(`analytics serve` starts an embedded one for a single machine)"
    )
configure_logging(settings.log_format)
if "gunicorn" in sys.modules and multiprocess_dir() is None:
    # Each worker would answer /metrics with its own numbers only, a different one per scrape.
    logging.getLogger("analytics").warning(
        "PROMETHEUS_MULTIPROC_DIR is unset: /metrics shows one worker's figures; "
        "start gunicorn with -c config/gunicorn.conf.py",
        extra={"event": "metrics_per_worker"},
    )
app = create_app(settings)
