"""The counters document: serialised once, and its boxes and badges rendered once per options."""

from __future__ import annotations

import json
from dataclasses import replace

from analytics.periods import WINDOWS
from analytics.reading import MAX_RENDERED, Counters, Window


def document() -> Counters:
    windows = {name: Window(None, 3, 2, 1) for name in WINDOWS}
    return Counters("demo", "Asia/Ho_Chi_Minh", "2026-11-26T22:01:05+07:00", "visits", 4, windows)


def test_the_json_is_the_document_and_is_made_once() -> None:
    doc = document()
    assert json.loads(doc.json_bytes) == doc.to_json()
    assert doc.json_bytes is doc.json_bytes
    stale = replace(doc, stale=True)
    assert json.loads(stale.json_bytes)["stale"] is True
    assert "stale" not in json.loads(doc.json_bytes)


def test_a_rendering_is_made_once_per_key_and_the_kept_ones_are_bounded() -> None:
    doc = document()
    calls: list[str] = []

    def render(key: str) -> str:
        calls.append(key)
        return f"<{key}>"

    assert doc.rendered("a", lambda: render("a")) == "<a>"
    assert doc.rendered("a", lambda: render("a")) == "<a>"
    assert calls == ["a"]
    for n in range(MAX_RENDERED * 2):
        doc.rendered(n, lambda n=n: render(str(n)))  # type: ignore[misc]
    # Past the bound, a new key is rendered each time it is asked for, never kept.
    calls.clear()
    doc.rendered("late", lambda: render("late"))
    doc.rendered("late", lambda: render("late"))
    assert calls == ["late", "late"]
    assert document().rendered("a", lambda: render("fresh")) == "<fresh>"  # per document
