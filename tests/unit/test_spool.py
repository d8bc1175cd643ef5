"""The spool's files: records read back as written, a line cut short by a crash dropped, a live
process's file left alone, a dead one's taken over from where it was counted, a full spool
refusing whole."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from analytics.spool import DONE_SUFFIX, SUFFIX, Spool, SpoolError, decode, encode
from analytics.store import HitCall


def call(seq: int, site: str = "demo", hits: int = 1) -> HitCall:
    return HitCall(
        site_id=site,
        writer="w1",
        seq=seq,
        hits=hits,
        first_ms=1_764_169_265_000 + seq,
        keys=(f"va:{{{site}}}:online", f"va:{{{site}}}:site", f"va:{{{site}}}:w:w1"),
        args=(0, 1_800_000, 300_000, 10_000, 300, 1200, seq, 2_592_000_000, 5, "pageview", "v"),
    )


def test_a_record_reads_back_as_written_and_a_damaged_one_not_at_all() -> None:
    line = encode(call(7))
    assert decode(line) == call(7)
    assert decode(line.replace(b'"n":7', b'"n":8')) is None  # its check fails
    assert decode(b"not a record\n") is None


def test_a_process_reads_back_what_it_spooled_and_removes_the_file_once_counted(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, 1 << 20, "w1")
    spool.append([call(1), call(2, hits=3)])
    spool.append([call(3)])
    assert spool.active and spool.depth == 5 and spool.oldest_ms() == call(1).first_ms
    (path,) = tmp_path.glob("*" + SUFFIX)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert spool.next_calls(4) == [call(1), call(2, hits=3)]
    spool.counted(1)
    assert spool.depth == 4 and path.with_suffix(DONE_SUFFIX).exists()
    assert spool.next_calls(100) == [call(2, hits=3), call(3)]
    spool.counted(2)
    assert (spool.active, spool.pending, spool.depth) == (False, False, 0)
    assert not list(tmp_path.iterdir())


def test_a_full_spool_refuses_a_batch_whole(tmp_path: Path) -> None:
    spool = Spool(tmp_path, 2 * len(encode(call(1))), "w1")
    spool.append([call(1)])
    with pytest.raises(SpoolError):
        spool.append([call(2), call(3)])
    assert spool.depth == 1 and spool.next_calls(10) == [call(1)]
    spool.close()


def test_a_live_processes_file_is_left_alone_and_a_dead_ones_is_taken_over(
    tmp_path: Path,
) -> None:
    path = tmp_path / f"w1-1{SUFFIX}"
    path.write_bytes(encode(call(1)) + encode(call(2)) + encode(call(3)) + b'0badc0de {"w":')
    path.with_suffix(DONE_SUFFIX).write_text(str(len(encode(call(1)))))  # one counted
    owner = os.open(path, os.O_RDONLY)
    fcntl.flock(owner, fcntl.LOCK_EX)
    other = Spool(tmp_path, 1 << 20, "w2")
    try:
        assert other.take_over() == 0 and not other.pending  # its process lives
        assert other.bytes == path.stat().st_size  # yet it counts towards the limit
    finally:
        os.close(owner)  # the process is gone
    assert other.take_over() == 1
    assert other.depth == 2
    assert other.next_calls(10) == [call(2), call(3)]  # the cut line is dropped
    other.counted(2)
    assert other.next_calls(10) == []
    assert not list(tmp_path.iterdir())


def test_closing_keeps_what_is_not_counted_for_the_next_process(tmp_path: Path) -> None:
    first = Spool(tmp_path, 1 << 20, "w1")
    first.append([call(1), call(2)])
    first.next_calls(1)
    first.counted(1)
    first.close()
    second = Spool(tmp_path, 1 << 20, "w2")
    assert second.take_over() == 1
    assert second.next_calls(10) == [call(2)]
    second.close()
