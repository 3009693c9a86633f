from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.audit import AuditLog, canonical, chain_hash, last_records, verify_dir, verify_file


def write_log(tmp_path: Path, calls: int = 3, fsync: str = "batch") -> Path:
    log = AuditLog(tmp_path / "audit", "t", fsync=fsync, session=lambda: {"root": "/r"})  # type: ignore[arg-type]
    for i in range(calls):
        log.write("call", {"call_id": str(i), "tool": "t.x", "arguments": {"i": i}})
        log.write("result", {"call_id": str(i), "tool": "t.x", "status": "ok"})
    log.close()
    assert log.path is not None
    return log.path


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


@pytest.mark.parametrize("fsync", ["record", "batch", "off"])
def test_a_fresh_log_verifies_in_every_fsync_mode(tmp_path: Path, fsync: str) -> None:
    path = write_log(tmp_path, fsync=fsync)
    report = verify_file(path)
    assert report.ok and report.problems == []
    assert [r["seq"] for r in report.records] == list(range(8))
    assert report.records[-1]["type"] == "session_end" and report.records[-1]["records"] == 8
    assert report.records[0]["type"] == "session_start" and report.records[0]["root"] == "/r"
    assert path.parent.parent == tmp_path / "audit" and path.name.startswith("t-")
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_each_hash_covers_the_previous_one(tmp_path: Path) -> None:
    records = verify_file(write_log(tmp_path)).records
    prev = ""
    for record in records:
        body = {k: v for k, v in record.items() if k != "hash"}
        assert record["hash"] == chain_hash(prev, body)
        prev = record["hash"]


def test_an_edited_line_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    content = lines(path)
    content[3] = content[3].replace('"i":1', '"i":9')
    path.write_text("".join(content), encoding="utf-8")
    report = verify_file(path)
    assert not report.ok
    assert [(p.line, p.kind) for p in report.problems] == [(4, "edited")]
    assert str(report.problems[0]).startswith(f"{path}:4: error: edited")


def test_a_deleted_line_is_reported_as_missing(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    content = lines(path)
    del content[2]
    path.write_text("".join(content), encoding="utf-8")
    problems = verify_file(path).problems
    assert [(p.line, p.kind) for p in problems if p.severity == "error"] == [(3, "missing")]


def test_swapped_lines_are_reported_as_out_of_order(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    content = lines(path)
    content[2], content[3] = content[3], content[2]
    path.write_text("".join(content), encoding="utf-8")
    kinds = [p.kind for p in verify_file(path).problems if p.severity == "error"]
    assert "reordered" in kinds and "missing" in kinds


def test_a_truncated_head_is_reported(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    path.write_text("".join(lines(path)[2:]), encoding="utf-8")
    assert "bad_start" in [p.kind for p in verify_file(path).problems]


def test_a_garbage_line_is_reported_once_and_the_rest_still_checked(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    content = lines(path)
    content[2] = "{not json\n"
    content[4] = content[4].replace('"status":"ok"', '"status":"no"')
    path.write_text("".join(content), encoding="utf-8")
    problems = [(p.line, p.kind) for p in verify_file(path).problems if p.severity == "error"]
    assert problems == [(3, "unreadable"), (5, "edited")]


def test_a_torn_tail_and_an_unfinished_call_are_warnings(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    log_text = path.read_text(encoding="utf-8")
    extra = json.dumps({"seq": 7, "type": "call", "call_id": "9"})
    path.write_text(log_text + extra[:20], encoding="utf-8")
    report = verify_file(path)
    assert report.ok
    assert [(p.kind, p.severity) for p in report.problems] == [("torn_tail", "warning")]
    assert report.problems[0].line == 9

    log = AuditLog(tmp_path / "audit2", "t")
    log.write("call", {"call_id": "1", "tool": "t.x"})
    log.close()
    assert log.path is not None
    unfinished = verify_file(log.path).problems
    assert [(p.kind, p.line) for p in unfinished] == [("unfinished_call", 2)]


def test_a_file_cut_before_its_session_end_is_reported(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    content = lines(path)
    path.write_text("".join(content[:-3]), encoding="utf-8")  # a clean cut at a line boundary
    report = verify_file(path)
    assert report.ok and not report.open  # the chain of what is left holds...
    assert [(p.kind, p.line, p.severity) for p in report.problems] == [("no_end", 5, "warning")]
    assert "cut off" in report.problems[0].detail  # ...but the reader is told the end is missing


def test_a_live_writers_file_is_open_not_cut(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit", "t")
    log.write("call", {"call_id": "1", "tool": "t.x"})
    log.write("result", {"call_id": "1", "tool": "t.x", "status": "ok"})
    assert log.path is not None
    report = verify_file(log.path)
    assert report.ok and report.open and report.problems == []
    log.close()
    assert not verify_file(log.path).open


def test_the_hash_covers_the_lines_own_bytes(tmp_path: Path) -> None:
    # The same record re-serialised (spaces, key order) is not the line that was written.
    path = write_log(tmp_path)
    content = lines(path)
    record = json.loads(content[3])
    content[3] = json.dumps(record, indent=None, separators=(", ", ": ")) + "\n"
    path.write_text("".join(content), encoding="utf-8")
    assert [(p.line, p.kind) for p in verify_file(path).problems] == [(4, "edited")]


def test_a_file_from_a_writer_that_sorted_the_hash_in_still_verifies(tmp_path: Path) -> None:
    # Older writers put `hash` among the sorted keys; the reader falls back to the canonical form.
    path = write_log(tmp_path)
    records = verify_file(path).records
    path.write_text("".join(canonical(r) + "\n" for r in records), encoding="utf-8")
    report = verify_file(path)
    assert report.ok and report.problems == [] and report.count == len(records)


def test_last_records_reads_a_files_end_only(tmp_path: Path) -> None:
    path = write_log(tmp_path)
    every = verify_file(path).records
    for n in (0, 1, 3, len(every), len(every) + 5):
        assert last_records(path, n, block=64) == every[len(every) - min(n, len(every)) :], n
    path.write_text(path.read_text(encoding="utf-8") + '{"seq": 8, "ty', encoding="utf-8")
    assert last_records(path, 2, block=50) == every[-2:]  # a torn tail is not a record


def test_verify_dir_reads_every_file(tmp_path: Path) -> None:
    write_log(tmp_path)
    write_log(tmp_path)
    reports = verify_dir(tmp_path / "audit")
    assert len(reports) == 2 and all(r.ok for r in reports)
    assert len({r.file for r in reports}) == 2


def test_batched_fsync_happens_off_the_writers_thread_within_the_batch_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    import common.audit as audit_module

    synced: list[str] = []
    real_fsync = audit_module.os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(audit_module.os, "fsync", recording_fsync)
    log = AuditLog(tmp_path / "audit", "t", fsync="batch", batch_ms=50)
    for i in range(20):
        log.write("call", {"call_id": str(i)})
    assert synced == []  # the writes themselves never wait for the disk
    deadline = time.monotonic() + 5
    while not synced and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(synced) == 1 and synced[0] != threading.current_thread().name
    log.write("call", {"call_id": "late"})
    log.close()  # close syncs what is left, on the caller's thread
    assert synced[-1] == threading.current_thread().name
    assert verify_file(log.path).ok  # type: ignore[arg-type]
