"""The WSGI entry point, ``analytics.wsgi:app``: what each web worker of `analytics serve` and
`analytics web` serves, and what another WSGI server can serve. It builds the app (and its
Redis connections) in the process that imports it, on the configured Redis.

Under another server with several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory of that server's own, or each worker answers /metrics with its own figures.
"""

from __future__ import annotations

import atexit
import logging

from analytics import create_app
from analytics.errors import StoreUnavailable
from analytics.logs import configure_logging
from analytics.settings import Settings
from analytics.sites import SNAPSHOT_NAME, load_snapshot, save_snapshot

log = logging.getLogger("analytics")
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
# A worker started while Redis is away takes them from the last one that could read them.
_snapshot = settings.data_dir / SNAPSHOT_NAME
try:
    _services.sites.preload()
    save_snapshot(_snapshot, _services.sites.known_sites())
except StoreUnavailable:
    _services.sites.remember(load_snapshot(_snapshot))
    log.warning(
        "Redis is away: sites known from the last start until it is back",
        extra={"event": "sites_from_snapshot", "sites": len(_services.sites.known_sites())},
    )
# At once, not on the first hit: spool files left by a crash are counted as soon as Redis is up.
_writer = _services.counting.writer
_writer.start()
# On the way out, the hits still queued go to Redis or to the spool.
atexit.register(_writer.close)
