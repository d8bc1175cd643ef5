"""The served widget.js is the build of its readable source, with render.py's rows and labels."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from analytics.render import DEFAULT_ROWS, LABELS, LANGS, PAGE_ROW, ROWS
from analytics.web.widget import widget_script
from analytics.widget_build import PLACEHOLDER, build, minified, source

BUILD_IN_A_PROCESS = (
    "import sys\n"
    "from analytics.widget_build import build, source\n"
    "sys.stdout.buffer.write(build(source()))\n"
)


def served() -> str:
    return widget_script().body.decode("utf-8")


def test_the_served_script_is_the_build_of_its_source() -> None:
    assert widget_script().body == build(source()), (
        "static/widget.js is not the build of static/src/widget.js and render.py's labels: "
        "run `python -m analytics.widget_build` and commit the result"
    )


def test_the_build_is_the_same_in_every_process() -> None:
    # The minifier renames variables: a renaming that varied from process to process would
    # give the script another ETag on every start, and fail the test above now and then.
    runs = [
        subprocess.run(
            [sys.executable, "-c", BUILD_IN_A_PROCESS], capture_output=True, check=True, timeout=60
        ).stdout
        for _ in range(2)
    ]
    assert runs == [build(source())] * 2


def test_a_change_of_the_source_changes_the_served_script() -> None:
    readable = source()
    changed = readable.replace("'/api/v1/hit'", "'/api/v2/hit'")
    assert changed != readable
    built = build(changed).decode("utf-8")
    assert '"/api/v2/hit"' in built and '"/api/v1/hit"' not in built
    assert built != served()
    # Minified: the source's comments and local names are gone, its licence-style header stays.
    assert "Whatever fails here" in readable and "Whatever fails here" not in served()
    assert "const hitUrl" in readable and "hitUrl" not in served()
    assert served().startswith("/*! visit-analytics widget.js")


def test_the_served_script_carries_exactly_the_labels_of_render() -> None:
    text = served()
    assert PLACEHOLDER not in text
    box, _ = json.JSONDecoder().raw_decode(text, text.index('{"rows":'))
    # The iframe box's rows, and the page row, which only the script can fill.
    assert box["rows"] == [*ROWS, PAGE_ROW]
    assert box["defaultRows"] == list(DEFAULT_ROWS)
    assert list(box["labels"]) == list(LANGS)
    for lang in LANGS:
        assert list(box["labels"][lang]) == ["title", *ROWS, PAGE_ROW]
        for key, label in box["labels"][lang].items():
            assert label == LABELS[lang][key]
            # Once: no second copy of the labels hides in the script's code.
            assert text.count(label) == 1, label


@pytest.mark.parametrize("uses", [0, 2])
def test_the_build_wants_the_placeholder_exactly_once(uses: int) -> None:
    script = f"(() => {{ console.log([{', '.join([PLACEHOLDER] * uses)}]); }})();"
    with pytest.raises(ValueError, match=PLACEHOLDER):
        build(script)


def test_the_minifier_writes_no_syntax_newer_than_the_source() -> None:
    small = minified("try { f(); } catch (e) {}\nlet a = b != null ? b : c;\ng(a);\n")
    assert "catch(e)" in small and "??" not in small
    assert "catch{" not in served()
