"""Log lines: one JSON object per notable event, each with the request id when there is one.

Fields: ``time``, ``level``, ``logger``, ``event`` (a stable name to filter on), ``message``,
``request_id`` inside a request, and the event's own fields (passed as ``extra``). Client
addresses and user agents are never logged: the audit log keeps who did what to a site.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import logging
import os
import re
import secrets
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-Id"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
CANDIDATE = re.compile(r"\[?[0-9A-Fa-f.:]{2,}[0-9A-Fa-f.\]](?::\d+)?")


def _address(token: str) -> bool:
    """Whether ``token`` is an IP address, with or without brackets, a port or a last colon."""
    for text in (token, token.rsplit(":", 1)[0]):
        try:
            ipaddress.ip_address(text.removesuffix(":").removeprefix("[").removesuffix("]"))
        except ValueError:
            continue
        return True
    return False


def without_addresses(text: str) -> str:
    """``text`` with every IP address in it replaced by ``<address>`` (one that ends a
    sentence too: its dot stays)."""

    def replace(match: re.Match[str]) -> str:
        token = match.group()
        bare = token.rstrip(".")
        if _address(token):
            return "<address>"
        if bare != token and _address(bare):
            return "<address>" + token[len(bare) :]
        return token

    return CANDIDATE.sub(replace, text)


BEACON_REQUEST_ID: ContextVar[str | None] = ContextVar("beacon_request_id", default=None)
"""The id of the beacon request being answered: the beacon answers outside Flask, so its log
lines find their request id here rather than in Flask's ``g``."""
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or "log",
            "message": record.getMessage(),
        }
        request_id = BEACON_REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        elif has_request_context() and "request_id" in g:
            entry["request_id"] = g.request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class NoClientAddresses(logging.Filter):
    """Takes IP addresses out of warnings and errors, which the service does not always word
    itself (the server's warning about a malformed request names the client's address)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or "ip=" in str(record.msg):
            message = record.getMessage()
            cleaned = without_addresses(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
            # A traceback quotes its exception's message, which may name the client too: it is
            # formatted here, once, cleaned, and every formatter shows that text.
            if record.exc_info and not record.exc_text:
                record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = without_addresses(record.exc_text)
        return True


_TRACEBACKS = logging.Formatter()


class TextFormatter(logging.Formatter):
    """A line for people: time, level, logger and message, then the event's own fields as
    ``key=value``, so that a terminal shows what the JSON line would (the operation of a Redis
    error, say)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD and key != "event" and value is not None
        ]
        request_id = BEACON_REQUEST_ID.get()
        if request_id is not None:
            fields.append(f"request_id={request_id}")
        return f"{line} {' '.join(fields)}" if fields else line


def formatter_for(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return TextFormatter()


def configure_logging(log_format: str = "json") -> None:
    """Sends the service's logs to stderr, as JSON lines or as plain text."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_for(log_format))
    handler.addFilter(NoClientAddresses())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Under load waitress warns of its queue depth on nearly every request: noise that costs CPU.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # Each job logs its own line; APScheduler's two more per run are noise.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


class _RequestIds:
    """Ids unique across processes without a system call each (uuid4 reads the kernel's random
    source on every request): a random prefix per process, then a counter."""

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.sequence = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.sequence):016x}"


new_request_id = _RequestIds()


def init_app(app: Flask) -> None:
    """Gives every request an id (the proxy's ``X-Request-Id`` when well-formed) and echoes it."""

    @app.before_request
    def assign_request_id() -> None:
        given = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = given if VALID_REQUEST_ID.fullmatch(given) else new_request_id()

    @app.after_request
    def echo_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response
