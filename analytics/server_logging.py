"""gunicorn's logger for the production server: the service's log format, no client
addresses, and no access-log work at all unless an access log is asked for.

Named by ``logger_class`` in config/gunicorn.conf.py.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from analytics.errors import AnalyticsError
from analytics.logs import NoClientAddresses, formatter_for
from analytics.settings import Settings


class ServerLogger(Logger):  # type: ignore[misc]
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        try:
            log_format = Settings.load().log_format
        except AnalyticsError:
            log_format = "json"  # the workers will stop on the bad setting and say why
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter_for(log_format))
                handler.addFilter(NoClientAddresses())

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        # gunicorn builds a request's log fields before it asks whether anyone logs them.
        if self.cfg.accesslog is None:
            return
        super().access(resp, req, environ, request_time)
