from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from clients import review
from common.audit import AuditLog, iter_records


def logs(directory: Path, count: int, records: int) -> list[AuditLog]:
    """`count` sessions written in turns, so their records interleave in time."""
    opened = [AuditLog(directory, f"s{i}", session=lambda i=i: {"root": f"/r{i}"}) for i in range(count)]
    for n in range(records):
        for i, log in enumerate(opened):
            log.write("call", {"call_id": f"{i}-{n}", "tool": "t.x", "decision": {"action": "allow"}})
            log.write("result", {"call_id": f"{i}-{n}", "tool": "t.x", "status": "ok" if n % 3 else "denied"})
    return opened


def test_tail_gives_the_newest_records_of_all_sessions_in_time_order(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    for log in logs(audit, 4, 30):
        log.close()
    everything = sorted((str(r["ts"]), p, r) for p, r in iter_records(audit))
    for n in (0, 1, 7, 40, 1000):
        want = [(p, r) for _, p, r in everything[len(everything) - min(n, len(everything)) :]]
        assert review.tail(audit, n) == want, n
    denied = review.tail(audit, 4, "denied")
    assert [r["type"] for _, r in denied] == ["call", "result", "call", "result"]
    assert all(r["call_id"].endswith("-27") for _, r in denied)


def test_sessions_reads_a_file_again_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path / "audit"
    opened = logs(audit, 3, 5)
    for log in opened[:2]:
        log.close()
    read: list[Path] = []
    real = review.verify_file

    def counting(path: Path, **kwargs: Any) -> Any:
        read.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(review, "verify_file", counting)
    first = review.sessions(audit)
    assert len(read) == 3 and [r["calls"] for r in first] == [5, 5, 5]
    assert [r["ended"] for r in first] == ["yes", "yes", "open"] and all(r["verified"] for r in first)
    assert [r["denied"] for r in first] == [2, 2, 2] and first[0]["root"] == "/r0"
    read.clear()
    assert review.sessions(audit) == first
    assert read == [opened[2].path]  # only the session still being written is read again
    # An edited file is verified again, whatever its size and mtime say.
    victim = opened[0].path
    assert victim is not None
    stat = victim.stat()
    victim.write_bytes(victim.read_bytes().replace(b'"status":"ok"', b'"status":"no"', 1))
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    read.clear()
    again = review.sessions(audit)
    assert victim in read and again[0]["verified"] is False
    opened[2].close()
    assert review.sessions(audit)[2]["ended"] == "yes"
