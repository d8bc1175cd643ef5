"""Log lines for people: the text format shows the event's fields that the JSON line carries."""

from __future__ import annotations

import logging

import pytest

from analytics.logs import BEACON_REQUEST_ID, TextFormatter, formatter_for, without_addresses


def record(**extra: object) -> logging.LogRecord:
    made = logging.makeLogRecord({"name": "analytics.store", "levelno": logging.WARNING})
    made.levelname, made.msg = "WARNING", "redis error"
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_text_line_ends_with_the_events_fields() -> None:
    line = TextFormatter().format(
        record(event="redis_error", operation="record_hit", error="ConnectionError")
    )
    assert " WARNING analytics.store redis error operation=record_hit error=ConnectionError" in line
    assert "event=" not in line  # the event names the line; its message says it already


def test_a_plain_line_stays_plain_and_a_beacon_line_names_its_request() -> None:
    assert TextFormatter().format(record()).endswith("WARNING analytics.store redis error")
    token = BEACON_REQUEST_ID.set("abcdef0123456789")
    try:
        assert TextFormatter().format(record()).endswith(" request_id=abcdef0123456789")
    finally:
        BEACON_REQUEST_ID.reset(token)
    assert isinstance(formatter_for("text"), TextFormatter)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("request from 1.2.3.4.", "request from <address>."),
        ("from 2001:db8::1. Then", "from <address>. Then"),
        ("peer [2001:db8::7]:443 closed", "peer <address> closed"),
        ("version 1.2.3.", "version 1.2.3."),
    ],
)
def test_an_address_is_taken_out_of_a_log_line_where_it_stands(text: str, said: str) -> None:
    assert without_addresses(text) == said
