"""The WSGI entry point of the production server: ``gunicorn -c config/gunicorn.conf.py
analytics.wsgi:app``. Each worker process builds its own app (and Redis connections) here."""

from __future__ import annotations

from analytics import create_app
from analytics.logs import configure_logging
from analytics.settings import Settings

settings = Settings.load()
if settings.redis_url is None:
    raise SystemExit(
        "ANALYTICS_REDIS_URL is unset: the production server needs a Redis "
        "(`analytics serve` starts an embedded one for a single machine)"
    )
configure_logging(settings.log_format)
app = create_app(settings)
