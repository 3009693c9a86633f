"""The audit log: one hash-chained JSONL file per server process (DESIGN §4).

Each line is one record, canonical JSON with sorted keys. `hash` is
sha256(previous record's hash + canonical JSON of this record without `hash`); the first
record's previous hash is the empty string. `seq` counts records from 0 in each file.

Record types: `session_start` (opens every file), `call` (before the tool runs), `result` (after),
`approval` (a human granted or declined a pending call).

Every record reaches the operating system in one write() before `write` returns, so a killed
process loses nothing it reported; fsync (for power loss) is per record, per batch, or off.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

RecordType = Literal["session_start", "call", "result", "approval"]
Severity = Literal["error", "warning"]
FsyncMode = Literal["record", "batch", "off"]


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical(record: dict[str, Any]) -> str:
    return _ENCODER.encode(record)


def chain_hash(prev: str, record: dict[str, Any]) -> str:
    return hashlib.sha256((prev + canonical(record)).encode("utf-8")).hexdigest()


def utc_now() -> str:
    now = time.time()
    seconds = int(now)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((now - seconds) * 1e6):06d}Z"


def host_identity() -> dict[str, Any]:
    """Who and where, for the session_start record."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return {"os_user": user, "host": socket.gethostname(), "pid": os.getpid()}


class AuditLog:
    """Writer for one process's audit file; opened on the first record."""

    def __init__(
        self,
        directory: Path,
        server: str,
        *,
        fsync: FsyncMode = "batch",
        batch_ms: int = 200,
        session: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.server = server
        self.fsync = fsync
        self.batch_s = batch_ms / 1000
        self.session = session or dict
        self.path: Path | None = None
        self._fd: int | None = None
        self._seq = 0
        self._prev = ""
        self._timer: threading.Timer | None = None
        self._dirty = False
        self._lock = threading.Lock()

    def _open(self) -> None:
        now = datetime.now(UTC)
        day = self.directory / now.strftime("%Y-%m-%d")
        day.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond:06d}Z"
        for attempt in range(100):
            suffix = f"-{attempt}" if attempt else ""
            path = day / f"{self.server}-{os.getpid()}-{stamp}{suffix}.jsonl"
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            except FileExistsError:
                continue
            self.path = path
            break
        else:  # pragma: no cover - a hundred files in one microsecond
            raise OSError(f"cannot create a new audit file in {day}")
        self._append(
            "session_start",
            {"server": self.server, "started": utc_now(), **host_identity(), **self.session()},
        )

    def write(self, kind: RecordType, fields: dict[str, Any]) -> dict[str, Any]:
        """Append one record, flushed to the OS before returning; returns it with seq and hash."""
        with self._lock:
            if self._fd is None:
                self._open()
            return self._append(kind, fields)

    def _append(self, kind: RecordType, fields: dict[str, Any]) -> dict[str, Any]:
        assert self._fd is not None
        record = {"seq": self._seq, "ts": utc_now(), "type": kind, **fields}
        body = canonical(record)
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (from a client that sent one) cannot be written as UTF-8: it is
            # recorded as U+FFFD, so the record is kept and stays valid, verifiable JSON.
            data = body.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode("utf-8")
        record["hash"] = hashlib.sha256(self._prev.encode("ascii") + data).hexdigest()
        # The line is the canonical body with the hash appended: one serialisation per record.
        line = data[:-1] + b',"hash":"' + record["hash"].encode("ascii") + b'"}\n'
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._seq += 1
        self._prev = record["hash"]
        self._dirty = True
        if self.fsync == "record":
            self._sync()
        elif self.fsync == "batch" and self._timer is None:
            # fsync off the caller's thread, at most batch_ms after the first unsynced record.
            self._timer = threading.Timer(self.batch_s, self._background_sync)
            self._timer.daemon = True
            self._timer.start()
        return record

    def _sync(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def _background_sync(self) -> None:
        with self._lock:
            self._timer = None
            if self._fd is None or not self._dirty:
                return
            self._dirty = False
            # A duplicate descriptor keeps the file open even if close() runs meanwhile, and the
            # fsync happens outside the lock, so writers never wait for the disk.
            fd = os.dup(self._fd)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def flush(self) -> None:
        with self._lock:
            if self.fsync != "off":
                self._sync()

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._fd is not None:
                if self.fsync != "off":
                    self._sync()
                os.close(self._fd)
                self._fd = None


# ---------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an audit file, at a line."""

    file: str
    line: int
    kind: str
    detail: str
    severity: Severity = "error"

    def as_record(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "kind": self.kind,
            "severity": self.severity,
            "detail": self.detail,
        }

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.kind}: {self.detail}"


@dataclass
class FileReport:
    """The verification of one file."""

    file: str
    records: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def audit_files(directory: Path) -> list[Path]:
    """Every audit file under directory, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*/*.jsonl"), key=lambda p: (p.parent.name, p.stat().st_mtime, p.name))


def verify_file(path: Path) -> FileReport:
    """Read one file, checking every line's JSON, sequence and hash chain."""
    report = FileReport(str(path))
    data = path.read_bytes()
    chunks = data.split(b"\n")
    complete_tail = chunks[-1] == b""
    if complete_tail:
        chunks.pop()
    prev = ""
    expected = 0
    resync = False
    open_calls: dict[str, int] = {}
    for lineno, raw in enumerate(chunks, start=1):
        last = lineno == len(chunks)
        if last and not complete_tail:
            report.problems.append(
                Problem(
                    report.file,
                    lineno,
                    "torn_tail",
                    f"the last line is incomplete ({len(raw)} bytes, no newline): the writing "
                    "process stopped mid-record",
                    "warning",
                )
            )
            break
        try:
            record = json.loads(raw.decode("utf-8"))
            if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
                raise ValueError("not a record with a hash")
        except (ValueError, UnicodeDecodeError) as exc:
            report.problems.append(
                Problem(
                    report.file,
                    lineno,
                    "unreadable",
                    f"the line is not a valid audit record ({exc}); it was edited or corrupted",
                )
            )
            resync = True
            expected += 1  # take the damaged line for one record, so one edit is one report
            continue
        stated = record.pop("hash")
        seq = record.get("seq")
        if lineno == 1 and (record.get("type") != "session_start" or seq != 0):
            report.problems.append(
                Problem(
                    report.file,
                    1,
                    "bad_start",
                    "the file does not open with session_start seq 0: its head is missing",
                )
            )
        if isinstance(seq, int) and seq != expected and not (lineno == 1 and seq != 0):
            if seq > expected:
                report.problems.append(
                    Problem(
                        report.file,
                        lineno,
                        "missing",
                        f"seq {seq} where {expected} was expected: {seq - expected} record(s) missing before this line",
                    )
                )
            else:
                report.problems.append(
                    Problem(
                        report.file,
                        lineno,
                        "reordered",
                        f"seq {seq} appears after seq {expected - 1}: lines are out of order or duplicated",
                    )
                )
        elif not resync and chain_hash(prev, record) != stated:
            report.problems.append(
                Problem(
                    report.file,
                    lineno,
                    "edited",
                    "the record does not match its hash: it was changed after writing",
                )
            )
        resync = False
        prev = stated
        expected = (seq + 1) if isinstance(seq, int) else expected + 1
        record["hash"] = stated
        report.records.append(record)
        if record.get("type") == "call":
            open_calls[str(record.get("call_id"))] = lineno
        elif record.get("type") == "result":
            open_calls.pop(str(record.get("call_id")), None)
    for call_id, lineno in open_calls.items():
        report.problems.append(
            Problem(
                report.file,
                lineno,
                "unfinished_call",
                f"call {call_id} has no result record: the process ended during the call",
                "warning",
            )
        )
    return report


def verify_dir(directory: Path) -> list[FileReport]:
    return [verify_file(p) for p in audit_files(directory)]


def iter_records(directory: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every readable record in every file, file by file (damaged lines are left to verify)."""
    for path in audit_files(directory):
        for record in verify_file(path).records:
            yield path, record


def find_session(directory: Path, session: str) -> Path | None:
    """The audit file whose name (without .jsonl) is or starts with `session`."""
    matches = [p for p in audit_files(directory) if p.stem == session]
    if not matches:
        matches = [p for p in audit_files(directory) if p.stem.startswith(session)]
    return matches[0] if len(matches) == 1 else None
