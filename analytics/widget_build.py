"""The embed script as served, built from its readable source with the box's rows and labels.

    python -m analytics.widget_build    # after changing static/src/widget.js or the labels

writes static/widget.js, which is committed and served as it is. A test checks that it is what
this build makes of the source and the labels now, so the two cannot drift apart unnoticed.
The minifier is needed only here (the ``test`` extra), never by the service.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from analytics.render import DEFAULT_ROWS, LABELS, PAGE_ROW, ROWS

WIDGET_ROWS = (*ROWS, PAGE_ROW)
"""The box's rows in the embed script: the iframe box's, and the page the script is on."""

SOURCE = ("static", "src", "widget.js")
BUILT = ("static", "widget.js")
# An identifier in the source, so that the source stays valid JavaScript for the minifier, and
# a global one, which the minifier cannot rename.
PLACEHOLDER = "__BOX__"
# No syntax newer than the source's own: a later version lets the minifier write `catch {}` or
# `??`, which is a syntax error, and so no count at all, in the browsers of before 2019-2020.
JS_VERSION = 2015


def box_data() -> dict[str, object]:
    """What the script needs of render.py: its rows, the default ones, and their labels."""
    return {
        "rows": list(WIDGET_ROWS),
        "defaultRows": list(DEFAULT_ROWS),
        "labels": {
            lang: {key: labels[key] for key in ("title", *WIDGET_ROWS)}
            for lang, labels in LABELS.items()
        },
    }


def box_json() -> str:
    text = json.dumps(box_data(), ensure_ascii=False, separators=(",", ":"))
    # JSON allows these two raw in a string, JavaScript before ES2019 does not.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def source() -> str:
    return resources.files("analytics").joinpath(*SOURCE).read_text("utf-8")


def minified(script: str) -> str:
    import minify  # the build's own dependency, absent where the service runs

    # The minifier's settings are global to the process: set them for every call.
    minify.config({"js-version": JS_VERSION})
    return str(minify.string("application/javascript", script))


def build(script: str) -> bytes:
    """The served bytes of a source: minified, then the box's data in place of PLACEHOLDER."""
    small = minified(script)
    if small.count(PLACEHOLDER) != 1:
        raise ValueError(f"the script must use {PLACEHOLDER} exactly once")
    return (small.replace(PLACEHOLDER, box_json()) + "\n").encode()


def main() -> None:
    target = Path(__file__).parent.joinpath(*BUILT)
    built = build(source())
    target.write_bytes(built)
    print(f"{target}: {len(built)} bytes")


if __name__ == "__main__":
    main()
