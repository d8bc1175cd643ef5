"""The WSGI entry point, ``analytics.wsgi:app``: what each web worker of `analytics serve` and
`analytics web` serves, and what another WSGI server can serve. It builds the app (and its
Redis connections) in the process that imports it, on the configured Redis.

Under another server with several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory of that server's own, or each worker answers /metrics with its own figures.
"""

from __future__ import annotations

import atexit
import contextlib

from analytics import create_app
from analytics.errors import StoreUnavailable
from analytics.logs import configure_logging
from analytics.settings import Settings

settings = Settings.load()
if settings.redis_url is None:
    raise SystemExit(
        "ANALYTICS_REDIS_URL is unset: the web tier needs a Redis "
        "(`analytics serve` starts an embedded one for a single machine)"
    )
configure_logging(settings.log_format)
app = create_app(settings)
_services = app.extensions["analytics"]
# Every site's settings, so that a site this worker has not served yet still counts (into the
# spool) should Redis go away before its first hit.
with contextlib.suppress(StoreUnavailable):
    _services.sites.preload()
# At once, not on the first hit: spool files left by a crash are counted as soon as Redis is up.
_writer = _services.counting.writer
_writer.start()
# On the way out, the hits still queued go to Redis or to the spool.
atexit.register(_writer.close)
