"""Readable views of the audit log for the terminal: sessions, timelines, verification."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.approvals import format_targets
from common.audit import FileReport, audit_files, last_records, verify_file
from common.errors import OnrecordError
from common.visible import visible


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain aligned text table."""
    # Every cell is data from a record: control characters cannot move the cursor or reorder text.
    body = [[("" if c is None else visible(str(c))) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in body]
    return "\n".join(out)


class _Tally:
    """A session's counts, gathered record by record while its file is verified."""

    def __init__(self) -> None:
        self.start: dict[str, Any] = {}
        self.calls = self.denied = self.asked = self.errors = self.refused = 0
        self.last: str | None = None

    def __call__(self, r: dict[str, Any]) -> None:
        kind = r.get("type")
        if kind == "session_start" and not self.start:
            self.start = r
        elif kind == "call":
            self.calls += 1
            self.asked += (r.get("decision") or {}).get("action") == "ask"
        elif kind == "result":
            status = r.get("status")
            self.denied += status == "denied"
            self.errors += status not in ("ok", "denied")
        elif kind == "refusal":
            self.refused += 1
        self.last = r.get("ts") if isinstance(r.get("ts"), str) else self.last


def session_summary(path: Path) -> dict[str, Any]:
    """One session's row: who, where, counts, and the state of its chain (read as a stream)."""
    tally = _Tally()
    report = verify_file(path, keep=False, visit=tally)
    start = tally.start
    return {
        "session": path.stem,
        "file": str(path),
        "server": start.get("server"),
        "started": start.get("started"),
        "user": start.get("os_user"),
        "client": start.get("client"),
        "root": start.get("root"),
        "records": report.count,
        "calls": tally.calls,
        "denied": tally.denied,
        "asked": tally.asked,
        "errors": tally.errors,
        "refused": tally.refused,
        "last": tally.last,
        "verified": report.ok,
        "ended": "open"
        if report.open
        else "no"
        if any(p.kind == "no_end" for p in report.problems)
        else "yes",
    }


CACHE = ".summaries.json"  # beside the day folders; audit_files never reads it as a session


def sessions(directory: Path) -> list[dict[str, Any]]:
    """Every session's summary, oldest first. A file is read again only when it changed: its row is
    kept in a small cache keyed by inode, size, mtime and ctime (ctime cannot be set back by hand),
    so an edited file is always re-verified. `audit verify` never uses the cache."""
    cache_path = directory / CACHE
    try:
        cached = json.loads(cache_path.read_text(encoding="utf-8"))
        if not isinstance(cached, dict):
            cached = {}
    except (OSError, ValueError):
        cached = {}
    rows, fresh, changed = [], {}, False
    for path in audit_files(directory):
        st = path.stat()
        key = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        name = path.relative_to(directory).as_posix()
        hit = cached.get(name)
        if isinstance(hit, dict) and hit.get("key") == key and isinstance(hit.get("row"), dict):
            row = hit["row"]
            if row.get("ended") == "open":  # its writer may have stopped since
                row = session_summary(path)
        else:
            row, changed = session_summary(path), True
        fresh[name] = {"key": key, "row": row}
        rows.append(row)
    if changed or len(fresh) != len(cached):
        _save(cache_path, fresh)
    return rows


def _save(path: Path, data: dict[str, Any]) -> None:
    """Write the cache atomically; a reviewer with read-only access simply goes without it."""
    try:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
        tmp.replace(path)
    except OSError:
        return


def render_sessions(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no audit sessions yet in this directory"
    return table(
        [
            "session",
            "server",
            "started",
            "user",
            "root",
            "calls",
            "denied",
            "asked",
            "errors",
            "refused",
            "chain",
            "ended",
        ],
        [
            [
                r["session"],
                r["server"],
                r["started"],
                r["user"],
                r["root"],
                r["calls"],
                r["denied"],
                r["asked"],
                r["errors"],
                r.get("refused"),  # None in a row cached before refusal records existed
                "ok" if r["verified"] else "BROKEN",
                r.get("ended"),
            ]
            for r in rows
        ],
    )


LINKED = ("call", "refusal", "result", "approval")  # the record types that belong to one call


def only(records: list[dict[str, Any]], which: str) -> list[dict[str, Any]]:
    """The records of the calls that were denied, asked a human, or ended in error; a call whose
    tool the policy kept from a target inside the call (a `refusal`: deny or ask) counts as denied
    or asked too."""
    results = {r.get("call_id"): r for r in records if r.get("type") == "result"}
    picked: set[object] = set()
    for r in records:
        if r.get("type") == "refusal":
            action = (r.get("decision") or {}).get("action")
            if (which, action) in (("denied", "deny"), ("asked", "ask")):
                picked.add(r.get("call_id"))
            continue
        if r.get("type") != "call":
            continue
        decision = (r.get("decision") or {}).get("action")
        status = (results.get(r.get("call_id")) or {}).get("status")
        if (
            (which == "denied" and (decision == "deny" or status == "denied"))
            or (which == "asked" and decision == "ask")
            or (
                which == "errors"
                and status not in (None, "ok", "denied", "pending_approval", "input_required")
            )
        ):
            picked.add(r.get("call_id"))
    return [r for r in records if r.get("type") in LINKED and r.get("call_id") in picked]


def timeline_rows(records: list[dict[str, Any]]) -> list[list[object]]:
    """One row per record: what happened, in order."""
    rows: list[list[object]] = []
    for r in records:
        kind = r.get("type")
        if kind == "session_start":
            parts = [f"{r.get('server')} pid {r.get('pid')}", f"user {r.get('os_user')}"]
            parts += [f"root {r['root']}"] if r.get("root") else []
            parts += [f"policy {r['policy_mode']}"] if r.get("policy_mode") else []
            parts += [f"client {r['client']}"] if r.get("client") else []
            detail = " ".join(parts)
            rows.append([r.get("seq"), clock(r), "session", "", "", detail])
        elif kind == "call":
            d = r.get("decision") or {}
            action = d.get("action", "")
            if d.get("enforced") is False and action != "allow":
                action = f"{action} (shadow)"
            args = json.dumps(r.get("arguments"), ensure_ascii=False, sort_keys=True)
            rows.append([r.get("seq"), clock(r), "call", r.get("tool"), action, clip(args, 70)])
            if d:  # which rule decided, from which file, and why: the reviewer's first question
                # The reason names the rule that matched (or says none did); the source is its file.
                source = f" [from {d['source']}]" if d.get("source") else ""
                rows.append(["", "", "", "", "", clip(f"  why: {d.get('reason')}{source}", REFUSAL_WIDTH)])
            if isinstance(r.get("targets"), dict):  # what the call acted on, as the policy matched it
                rows.append(["", "", "", "", "", f"  acts on: {format_targets(r['targets'])}"])
        elif kind == "result":
            detail = r.get("error") or (f"{r.get('size')} bytes" if r.get("size") is not None else "")
            rows.append(
                [
                    r.get("seq"),
                    clock(r),
                    "result",
                    r.get("tool"),
                    r.get("status"),
                    f"{r.get('duration_ms')} ms  {clip(str(detail), 60)}",
                ]
            )
        elif kind == "refusal":
            rows += refusal_rows(r)
        elif kind == "session_end":
            rows.append([r.get("seq"), clock(r), "session", "", "ended", f"{r.get('records')} records"])
        elif kind == "approval":
            who = f" by {r['by']}" if r.get("by") else ""
            ident = f" {r['approval_id']}" if r.get("approval_id") else ""
            rows.append(
                [r.get("seq"), clock(r), "approval", "", r.get("action"), f"via {r.get('via')}{ident}{who}"]
            )
    return rows


REFUSAL_WIDTH = 160  # a refusal's target and reason lines in the terminal timeline


def refusal_rows(r: dict[str, Any]) -> list[list[object]]:
    """A refusal inside a call: what the tool was kept from, and which rule kept it, and why."""
    d = r.get("decision") or {}
    action = str(d.get("action", ""))
    shadow = d.get("enforced") is False
    via = f"via {r['via']}, " if r.get("via") else ""
    rows: list[list[object]] = [
        [
            r.get("seq"),
            clock(r),
            "refusal",
            r.get("tool"),
            f"{action} (shadow)" if shadow else action,
            f"{via}call {r.get('call_id')}",
        ]
    ]
    what = "followed (shadow mode; the policy would refuse it)" if shadow else "not reached"
    if isinstance(r.get("targets"), dict) and r["targets"]:
        rows.append(["", "", "", "", "", clip(f"  {what}: {format_targets(r['targets'])}", REFUSAL_WIDTH)])
    if isinstance(r.get("arguments"), dict):
        args = json.dumps(r["arguments"], ensure_ascii=False, sort_keys=True)
        rows.append(["", "", "", "", "", f"  {what} with: {clip(args, 70)}"])
    source = f" [from {d['source']}]" if d.get("source") else ""
    rows.append(["", "", "", "", "", clip(f"  why: {d.get('reason')}{source}", REFUSAL_WIDTH)])
    return rows


def render_timeline(records: list[dict[str, Any]]) -> str:
    return table(["seq", "time", "record", "tool", "decision/status", "detail"], timeline_rows(records))


def tail(directory: Path, n: int, which: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """The last n records of all sessions by time, each with its file. Files are read from their
    end, newest first, and reading stops at a file whose last change (ctime, which cannot be set
    back) is older than the n records found: a million records cost a few small reads. With
    `which`, whole files are read as streams (a call's decision and its result are both needed)."""
    files = sorted(audit_files(directory), key=lambda p: p.stat().st_ctime_ns, reverse=True)
    found: list[tuple[str, Path, dict[str, Any]]] = []
    for path in files:
        if len(found) >= n > 0:
            oldest = sorted(ts for ts, _, _ in found)[-n]
            changed = path.stat().st_ctime_ns / 1e9
            if _epoch(oldest) > changed + 1:  # a second of slack for clocks and rounding
                break
        records = only(verify_file(path).records, which) if which else last_records(path, n)
        found += [(str(r.get("ts")), path, r) for r in records]
    found.sort(key=lambda item: item[0])
    return [(path, r) for _, path, r in found[-n:]] if n > 0 else []


def render_tail(rows: list[tuple[Path, dict[str, Any]]]) -> str:
    """The tail's records with the session and root each belongs to."""
    roots: dict[Path, str] = {}
    out = []
    for path, record in rows:
        if path not in roots:
            roots[path] = str(_first_record(path).get("root") or "")
        for row in timeline_rows([record]):
            out.append([path.stem if row[0] != "" else "", roots[path] if row[0] != "" else "", *row])
    return table(["session", "root", "seq", "time", "record", "tool", "decision/status", "detail"], out)


def _first_record(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            record = json.loads(f.readline(1 << 20) or b"{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _epoch(ts: str) -> float:
    try:
        return datetime.strptime(ts[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def render_verify(reports: list[FileReport]) -> str:
    if not reports:
        return "no audit files to verify"
    lines = []
    for rep in reports:
        errors = [p for p in rep.problems if p.severity == "error"]
        warnings = [p for p in rep.problems if p.severity == "warning"]
        state = "chain verified" if not errors else f"CHAIN BROKEN ({len(errors)} problem(s))"
        extra = f", {len(warnings)} warning(s)" if warnings else ""
        lines.append(f"{rep.file}: {rep.count} records, {state}{extra}")
        lines += [f"  {p}" for p in rep.problems]
    bad = sum(1 for r in reports if not r.ok)
    total = sum(r.count for r in reports)
    lines.append(
        f"{len(reports)} file(s), {total} records: "
        + ("chain verified" if not bad else f"{bad} file(s) with a broken chain")
    )
    return "\n".join(lines)


def clock(record: dict[str, Any]) -> str:
    ts = str(record.get("ts", ""))
    return ts[11:23] if len(ts) >= 23 else ts


def clip(text: str, width: int) -> str:
    """`text` in at most `width` characters; a cut ends in "…", so a reader sees it was cut. Every
    terminal table that bounds a cell uses this."""
    return text if len(text) <= width else text[: width - 1] + "…"


def for_commit(
    directory: Path, root: Path, rev: str
) -> tuple[dict[str, Any], list[tuple[Path, list[dict[str, Any]]]]]:
    """The commit `rev` names in the repository at root, and the calls made in that root since the
    commit before it (its first parent) up to it, grouped by session: what the agent did for it."""
    from common.git import Git, check_ref_text

    check_ref_text(rev, "commit")
    git = Git(root)
    shown = git.run_sync(
        [
            "log",
            "-1",
            "--no-show-signature",
            "--format=%H%x00%ct%x00%P%x00%s",
            "--end-of-options",
            f"{rev}^{{commit}}",
        ],
        check=False,
    )
    fields = shown.text().strip().split("\0")
    if shown.returncode != 0 or len(fields) != 4:
        raise OnrecordError(f"{rev!r} does not name a commit in {str(root)!r}")
    sha, committed, parents, subject = fields[0], int(fields[1]), fields[2].split(), fields[3]
    since = 0
    if parents:
        before = git.run_sync(["log", "-1", "--format=%ct", "--end-of-options", parents[0]])
        since = int(before.text().strip() or 0)
    commit = {
        "sha": sha,
        "subject": subject,
        "committed": _iso(committed),
        "since": _iso(since) if since else None,
    }
    where = str(root.resolve())
    found: list[tuple[Path, list[dict[str, Any]]]] = []
    for row in sessions(directory):
        if row.get("root") != where or not row.get("started") or not row.get("last"):
            continue
        if _epoch(str(row["started"])) > committed + 1 or _epoch(str(row["last"])) < since:
            continue
        path = Path(row["file"])
        picked = [
            r
            for r in verify_file(path).records
            if r.get("type") in LINKED and since <= _epoch(str(r.get("ts"))) <= committed + 1
        ]
        if picked:
            found.append((path, picked))
    return commit, found


def render_for_commit(commit: dict[str, Any], found: list[tuple[Path, list[dict[str, Any]]]]) -> str:
    since = f"since {commit['since']} (the commit before it)" if commit["since"] else "since the start"
    head = (
        f"commit {commit['sha'][:12]} {commit['subject']!r}, committed {commit['committed']}; calls {since}"
    )
    if not found:
        return visible(head) + "\nno recorded calls in this repository in that time"
    parts = [visible(head)]
    for path, records in found:
        calls = sum(1 for r in records if r.get("type") == "call")
        parts += ["", visible(f"session {path.stem}: {calls} call(s)"), render_timeline(records)]
    return "\n".join(parts)


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Call:
    """One call with what followed it: its `call` record, its `result` (None while it runs, or if
    the process died), and the approval and refusal records that name it."""

    call: dict[str, Any]
    result: dict[str, Any] | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def decision(self) -> dict[str, Any]:
        d = self.call.get("decision")
        return d if isinstance(d, dict) else {}

    @property
    def status(self) -> str:
        return str(self.result.get("status")) if self.result else "no result"


def calls(records: Iterable[dict[str, Any]]) -> list[Call]:
    """The calls in a session's records, in order, each joined with its result and approvals."""
    found: dict[object, Call] = {}
    for r in records:
        kind, call_id = r.get("type"), r.get("call_id")
        if kind == "call":
            found[call_id] = Call(r)
        elif kind == "result" and call_id in found:
            found[call_id].result = r
        elif kind == "approval" and call_id in found:
            found[call_id].approvals.append(r)
        elif kind == "refusal" and call_id in found:
            found[call_id].refusals.append(r)
    return list(found.values())


@dataclass(frozen=True)
class Commit:
    sha: str
    committed: str
    author: str
    subject: str
    during: bool  # made while the session ran (else after it)


def commits_since(root: Path, started: str, last: str | None, limit: int = 50) -> list[Commit]:
    """The commits in the repository at root made since a session started, newest first, each
    marked as made during the session or after it.

    Raises:
        OnrecordError: root is not a git repository (or git failed there).
    """
    from common.git import Git

    since = _epoch(started)
    if not since:
        raise OnrecordError(f"the session's start {started!r} is not a time")
    until = _epoch(last) if last else since
    try:
        git = Git(root)
        shown = git.run_sync(
            [
                "log",
                f"-{limit}",
                "--no-show-signature",
                f"--since={_iso(int(since))}",
                "--format=%H%x00%ct%x00%an%x00%s",
            ],
            check=False,
        )
    except OSError as exc:
        raise OnrecordError(f"{str(root)!r} cannot be read as a git repository ({exc})") from exc
    if shown.returncode != 0:
        raise OnrecordError(f"{str(root)!r} is not a git repository with commits")
    found = []
    for line in shown.text().splitlines():
        fields = line.split("\0")
        if len(fields) != 4 or not fields[1].isdigit():
            continue
        committed = int(fields[1])
        found.append(Commit(fields[0], _iso(committed), fields[2], fields[3], committed <= until + 1))
    return found
