"""The service's one exception family; the web layer turns each into the API's JSON error."""

from __future__ import annotations


class AnalyticsError(Exception):
    """Base of every error the service raises on purpose."""

    status = 500
    code = "internal_error"
    field: str | None = None
    """The input at fault, where the error is about one."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(AnalyticsError):
    """A request or setting that is malformed or out of range."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field


class UnknownSite(AnalyticsError):
    status = 404
    code = "unknown_site"

    def __init__(self, site_id: str) -> None:
        super().__init__(f"site '{site_id}' is not registered")
        self.site_id = site_id


class PayloadTooLarge(AnalyticsError):
    status = 413
    code = "payload_too_large"


class UnknownReset(AnalyticsError):
    status = 404
    code = "unknown_reset"


class Conflict(AnalyticsError):
    status = 409
    code = "conflict"


class Forbidden(AnalyticsError):
    status = 403
    code = "admin_disabled"


class Unauthorized(AnalyticsError):
    status = 401
    code = "unauthorized"


class TooManyAttempts(AnalyticsError):
    status = 429
    code = "too_many_attempts"


STORE_UNAVAILABLE_MESSAGE = "the service cannot reach its data store: try again in a few seconds"
"""What a user is told while Redis does not answer; which store operation failed goes to the
logs and the metrics, never into an answer."""


class StoreUnavailable(AnalyticsError):
    """Redis did not answer, or does not take writes for now (out of memory, read-only, loading,
    busy); raised by the store, wrapping the driver's error."""

    def __init__(self, message: str = STORE_UNAVAILABLE_MESSAGE) -> None:
        super().__init__(message)

    status = 503
    code = "store_unavailable"


class SpoolFull(StoreUnavailable):
    """Redis cannot take a hit and the spool cannot keep it either: the hit is lost."""

    def __init__(self) -> None:
        super().__init__(
            "the service cannot keep this hit now: its data store is away and its spool is "
            "full or cannot be written; try again in a few seconds"
        )


class SettingsError(AnalyticsError):
    """A configuration value that stops the start; the message names the setting."""

    code = "bad_setting"

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
