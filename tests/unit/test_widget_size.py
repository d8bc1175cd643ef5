"""widget.js stays within its size budget: 6 KB as served, 2.75 KB gzipped."""

from __future__ import annotations

import gzip

from analytics.web.widget import widget_script

MAX_BYTES = 6 * 1024
MAX_GZIPPED = 2816


def test_widget_js_is_within_its_size_budget() -> None:
    script = widget_script().body
    gzipped = len(gzip.compress(script, compresslevel=9, mtime=0))
    print(f"widget.js: {len(script)} bytes, {gzipped} bytes gzipped (-9)")
    assert len(script) <= MAX_BYTES, f"widget.js is {len(script)} bytes, over {MAX_BYTES}"
    assert gzipped <= MAX_GZIPPED, f"widget.js is {gzipped} bytes gzipped, over {MAX_GZIPPED}"
