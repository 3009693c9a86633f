"""Readable views of the audit log for the terminal: sessions, timelines, verification."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from common.audit import FileReport, audit_files, verify_file
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


def session_summary(report: FileReport) -> dict[str, Any]:
    records = report.records
    start = records[0] if records and records[0].get("type") == "session_start" else {}
    calls = [r for r in records if r.get("type") == "call"]
    results = [r for r in records if r.get("type") == "result"]
    return {
        "session": Path(report.file).stem,
        "file": report.file,
        "server": start.get("server"),
        "started": start.get("started"),
        "user": start.get("os_user"),
        "root": start.get("root"),
        "calls": len(calls),
        "denied": sum(1 for r in results if r.get("status") == "denied"),
        "asked": sum(1 for r in calls if (r.get("decision") or {}).get("action") == "ask"),
        "errors": sum(1 for r in results if r.get("status") not in ("ok", "denied")),
        "last": records[-1].get("ts") if records else None,
        "verified": report.ok,
    }


def sessions(directory: Path) -> list[dict[str, Any]]:
    return [session_summary(verify_file(p)) for p in audit_files(directory)]


def render_sessions(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no audit sessions yet"
    return table(
        ["session", "server", "started", "user", "calls", "denied", "asked", "errors", "chain"],
        [
            [
                r["session"],
                r["server"],
                r["started"],
                r["user"],
                r["calls"],
                r["denied"],
                r["asked"],
                r["errors"],
                "ok" if r["verified"] else "BROKEN",
            ]
            for r in rows
        ],
    )


def only(records: list[dict[str, Any]], which: str) -> list[dict[str, Any]]:
    """The call and result records of the calls that were denied, asked a human, or ended in error."""
    results = {r.get("call_id"): r for r in records if r.get("type") == "result"}
    picked: set[object] = set()
    for r in records:
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
    return [
        r for r in records if r.get("type") in ("call", "result", "approval") and r.get("call_id") in picked
    ]


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
            rows.append([r.get("seq"), _time(r), "session", "", "", detail])
        elif kind == "call":
            d = r.get("decision") or {}
            action = d.get("action", "")
            if d.get("enforced") is False and action != "allow":
                action = f"{action} (shadow)"
            args = json.dumps(r.get("arguments"), ensure_ascii=False, sort_keys=True)
            rows.append([r.get("seq"), _time(r), "call", r.get("tool"), action, _clip(args, 70)])
        elif kind == "result":
            detail = r.get("error") or (f"{r.get('size')} bytes" if r.get("size") is not None else "")
            rows.append(
                [
                    r.get("seq"),
                    _time(r),
                    "result",
                    r.get("tool"),
                    r.get("status"),
                    f"{r.get('duration_ms')} ms  {_clip(str(detail), 60)}",
                ]
            )
        elif kind == "approval":
            who = f" by {r['by']}" if r.get("by") else ""
            ident = f" {r['approval_id']}" if r.get("approval_id") else ""
            rows.append(
                [r.get("seq"), _time(r), "approval", "", r.get("action"), f"via {r.get('via')}{ident}{who}"]
            )
    return rows


def render_timeline(records: list[dict[str, Any]]) -> str:
    return table(["seq", "time", "record", "tool", "decision/status", "detail"], timeline_rows(records))


def render_verify(reports: list[FileReport]) -> str:
    if not reports:
        return "no audit files to verify"
    lines = []
    for rep in reports:
        errors = [p for p in rep.problems if p.severity == "error"]
        warnings = [p for p in rep.problems if p.severity == "warning"]
        state = "chain verified" if not errors else f"CHAIN BROKEN ({len(errors)} problem(s))"
        extra = f", {len(warnings)} warning(s)" if warnings else ""
        lines.append(f"{rep.file}: {len(rep.records)} records, {state}{extra}")
        lines += [f"  {p}" for p in rep.problems]
    bad = sum(1 for r in reports if not r.ok)
    total = sum(len(r.records) for r in reports)
    lines.append(
        f"{len(reports)} file(s), {total} records: "
        + ("chain verified" if not bad else f"{bad} file(s) with a broken chain")
    )
    return "\n".join(lines)


def _time(record: dict[str, Any]) -> str:
    ts = str(record.get("ts", ""))
    return ts[11:23] if len(ts) >= 23 else ts


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
