"""The Redis a command works on: the configured one, or an embedded server's."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from analytics.embedded import EmbeddedRedis
from analytics.settings import Settings

log = logging.getLogger("analytics")


@contextmanager
def redis_for(
    settings: Settings, *, share_running: bool = False, supervise: bool = False
) -> Iterator[Settings]:
    """``settings`` with a Redis URL: the configured one, or an embedded server's.

    With ``share_running``, the embedded Redis of a running `analytics serve` is used when
    there is one; otherwise one is started on the data directory for the command's duration,
    and, with ``supervise``, started again whenever it dies meanwhile.
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
    if supervise:
        embedded.supervise()
    try:
        yield settings.replace(redis_url=embedded.url)
    finally:
        embedded.stop()
        log.info("embedded Redis stopped; data kept in %s", embedded.data_dir)
