"""The audit log: one hash-chained JSONL file per server process (DESIGN §4).

Each line is one record, canonical JSON with sorted keys. `hash` is
sha256(previous record's hash + canonical JSON of this record without `hash`); the first
record's previous hash is the empty string. `seq` counts records from 0 in each file.

Record types: `session_start` (opens every file), `call` (before the tool runs), `result` (after),
`approval` (a human granted or declined a pending call), `refusal` (while a call runs, the policy
kept its tool from acting on something its arguments did not name, such as a redirect's target:
written between the call's `call` and `result` records, with its call_id), `session_end` (closes a
file on a clean shutdown: a file without one was cut off, or its process killed).

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

import pydantic_core

RecordType = Literal["session_start", "call", "result", "approval", "refusal", "session_end"]
Severity = Literal["error", "warning"]
FsyncMode = Literal["record", "batch", "off"]


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
# The same encoder's C core, built once (JSONEncoder.encode builds it on every call, which costs
# more than encoding a small record). No circular-reference markers: records are trees.
_C_ENCODE = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None,
        str,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        True,
        False,
        True,  # type: ignore[attr-defined]
    )
    if json.encoder.c_make_encoder is not None  # type: ignore[attr-defined]
    else None
)


def canonical(record: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text as is: the form every record's hash is taken over."""
    if _C_ENCODE is None or isinstance(record, str):
        return _ENCODER.encode(record)
    return "".join(_C_ENCODE(record, 0))


def chain_hash(prev: str, record: dict[str, Any]) -> str:
    return hashlib.sha256((prev + canonical(record)).encode("utf-8")).hexdigest()


# A JSON string exactly as `canonical` writes it (the encoder's own function).
quote: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]

_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def utc_now() -> str:
    global _second
    now = time.time()
    seconds = int(now)
    last = _second
    if last[0] != seconds:
        last = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{last[1]}.{int((now - seconds) * 1e6):06d}Z"


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

    def write_spliced(self, kind: RecordType, head: str, middle: str = "") -> str:
        """`write` for a record whose fields the caller has already written as canonical JSON, in
        canonical (sorted) order: `head` holds those sorting before `seq`, `middle` those between
        `seq` and `ts`, each as `"key":value,` (no field of ours sorts after `type`). The line is
        byte for byte what `write` makes of the decoded fields, without encoding the parts that
        repeat from call to call again, or sorting. Returns the record's hash."""
        with self._lock:
            if self._fd is None:
                self._open()
            return self._emit(f'{{{head}"seq":{self._seq},{middle}"ts":"{utc_now()}","type":"{kind}"}}')

    def _append(self, kind: RecordType, fields: dict[str, Any]) -> dict[str, Any]:
        record = {"seq": self._seq, "ts": utc_now(), "type": kind, **fields}
        record["hash"] = self._emit(canonical(record))
        return record

    def _emit(self, body: str) -> str:
        """Chain and write one record's canonical JSON (one write()); returns its hash."""
        assert self._fd is not None
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:
            # A lone surrogate (from a client that sent one) cannot be written as UTF-8: it is
            # recorded as U+FFFD, so the record is kept and stays valid, verifiable JSON.
            data = body.encode("utf-8", "surrogatepass").decode("utf-8", "replace").encode("utf-8")
        digest = hashlib.sha256(self._prev.encode("ascii") + data).hexdigest()
        # The line is the canonical body with the hash appended: one serialisation per record.
        line = data[:-1] + b',"hash":"' + digest.encode("ascii") + b'"}\n'
        view = memoryview(line)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._seq += 1
        self._prev = digest
        self._dirty = True
        if self.fsync == "record":
            self._sync()
        elif self.fsync == "batch" and self._timer is None:
            # fsync off the caller's thread, at most batch_ms after the first unsynced record.
            self._timer = threading.Timer(self.batch_s, self._background_sync)
            self._timer.daemon = True
            self._timer.start()
        return digest

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
                self._append("session_end", {"ended": utc_now(), "records": self._seq + 1})
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
    records: list[dict[str, Any]] = field(default_factory=list)  # empty when read with keep=False
    problems: list[Problem] = field(default_factory=list)
    count: int = 0  # readable records
    open: bool = False  # no session_end yet, and the process that writes it still runs

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def audit_files(directory: Path) -> list[Path]:
    """Every audit file under directory, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*/*.jsonl"), key=lambda p: (p.parent.name, p.stat().st_mtime, p.name))


# The writer appends the hash to the canonical body: `{...,"hash":"<64 hex>"}`.
_HASH_FIELD = b',"hash":"'
_TAIL = len(_HASH_FIELD) + 64 + len(b'"}')


def _line_hash(prev: str, raw: bytes, record: dict[str, Any], stated: str) -> str:
    """The chain hash of one line: over its own bytes when it has the writer's layout (one pass,
    no re-encoding), else over the canonical form of the parsed record (files from older writers)."""
    if len(raw) > _TAIL and raw[-_TAIL : -_TAIL + len(_HASH_FIELD)] == _HASH_FIELD and raw.endswith(b'"}'):
        return hashlib.sha256(prev.encode("ascii") + raw[:-_TAIL] + b"}").hexdigest()
    if canonical({**record, "hash": stated}).encode("utf-8") == raw:  # exactly what an older writer wrote
        return chain_hash(prev, record)
    return ""  # any other form of the line is not what was written


def _parse(raw: bytes) -> Any:
    """One line's JSON: the fast parser, or the standard one for what it refuses (an escaped lone
    surrogate, which the standard library reads)."""
    try:
        return pydantic_core.from_json(raw)
    except ValueError:
        return json.loads(raw.decode("utf-8"))


def _still_written(record: dict[str, Any], path: Path) -> bool:
    """Whether the process that opened a file still has it open (so a missing session_end means
    "not finished", not "cut off"): on Linux, one of its descriptors points at the file; elsewhere
    the process is alive on this host."""
    import socket

    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # it exists but belongs to someone else
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return not Path("/proc/self/fd").is_dir()  # no /proc here: alive is all one can tell
    target = str(path.resolve())
    for fd in fds:
        try:
            if os.readlink(fd) == target:
                return True
        except OSError:  # closed meanwhile
            continue
    return False


def verify_file(
    path: Path, *, keep: bool = True, visit: Callable[[dict[str, Any]], None] | None = None
) -> FileReport:
    """Read one file as a stream, checking every line's JSON, sequence and hash chain, and that it
    ends with session_end. `keep=False` keeps no records (constant memory); `visit` sees each one."""
    report = FileReport(str(path))
    prev = ""
    expected = 0
    resync = False
    open_calls: dict[str, int] = {}
    first: dict[str, Any] | None = None
    last_type: object = None
    lineno = 0
    with path.open("rb") as f:
        for raw in f:
            lineno += 1
            if not raw.endswith(b"\n"):
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
            raw = raw[:-1]
            try:
                record = _parse(raw)
                if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
                    raise ValueError("not a record with a hash")
            except ValueError as exc:
                report.problems.append(
                    Problem(
                        report.file,
                        lineno,
                        "unreadable",
                        f"the line is not a valid audit record ({str(exc)[:200]}); it was edited or corrupted",
                    )
                )
                resync = True
                expected += 1  # take the damaged line for one record, so one edit is one report
                continue
            stated = record.pop("hash")
            seq = record.get("seq")
            if lineno == 1:
                first = record
                if record.get("type") != "session_start" or seq != 0:
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
            elif not resync and _line_hash(prev, raw, record, stated) != stated:
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
            report.count += 1
            kind = last_type = record.get("type")
            if keep:
                report.records.append(record)
            if visit is not None:
                visit(record)
            if kind == "call":
                open_calls[str(record.get("call_id"))] = lineno
            elif kind == "result":
                open_calls.pop(str(record.get("call_id")), None)
            elif kind == "refusal" and str(record.get("call_id")) not in open_calls:
                report.problems.append(
                    Problem(
                        report.file,
                        lineno,
                        "stray_refusal",
                        f"refusal of call {record.get('call_id')} is outside that call (no call record "
                        "before it, or after its result)",
                        "warning",
                    )
                )
    for call_id, at in open_calls.items():
        report.problems.append(
            Problem(
                report.file,
                at,
                "unfinished_call",
                f"call {call_id} has no result record: the process ended during the call",
                "warning",
            )
        )
    if lineno == 0:
        report.problems.append(Problem(report.file, 0, "empty", "the file has no records", "warning"))
    elif last_type != "session_end":
        if first is not None and _still_written(first, path):
            report.open = True
        else:
            report.problems.append(
                Problem(
                    report.file,
                    lineno,
                    "no_end",
                    "the file ends without session_end: the process was killed, or the file's last "
                    "records were cut off",
                    "warning",
                )
            )
    return report


def verify_dir(directory: Path, *, keep: bool = True) -> list[FileReport]:
    return [verify_file(p, keep=keep) for p in audit_files(directory)]


def iter_records(directory: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every readable record in every file, file by file (damaged lines are left to verify)."""
    for path in audit_files(directory):
        for record in verify_file(path).records:
            yield path, record


def last_records(path: Path, n: int, block: int = 1 << 16) -> list[dict[str, Any]]:
    """The last n readable records of one file, read from its end (not verified: see verify_file);
    a torn or damaged line is skipped."""
    found: list[dict[str, Any]] = []
    if n <= 0:
        return found
    with path.open("rb") as f:
        position, rest = f.seek(0, os.SEEK_END), b""
        while len(found) < n and (position > 0 or rest):
            if position > 0:
                step = min(block, position)
                position -= step
                f.seek(position)
                parts = (f.read(step) + rest).split(b"\n")
                rest = parts[0]  # may begin in an earlier block: joined with it next time
                complete = parts[1:]
            else:
                complete, rest = [rest], b""
            for raw in reversed(complete):
                try:
                    record = _parse(raw) if raw else None
                except ValueError:
                    continue
                if isinstance(record, dict):
                    found.append(record)
                    if len(found) == n:
                        break
    return found[::-1]


def find_session(directory: Path, session: str) -> Path | None:
    """The audit file whose name (without .jsonl) is or starts with `session`."""
    matches = [p for p in audit_files(directory) if p.stem == session]
    if not matches:
        matches = [p for p in audit_files(directory) if p.stem.startswith(session)]
    return matches[0] if len(matches) == 1 else None
