"""onrecord's pytest plugin: one JSON line per event, for the testing server to read.

It runs inside the project's own interpreter, so it imports nothing but the standard library and
pytest's hook names. Enabled with `-p onrecord_pytest`; it writes to the file named by
$ONRECORD_PYTEST_EVENTS (and does nothing without it). Events:

    {"e": "collected", "count": N, "nodeids": [...]}      # nodeids only with --collect-only
    {"e": "collect_error", "nodeid": ..., "message": ...}
    {"e": "start", "nodeid": ...}
    {"e": "report", "nodeid": ..., "when": "setup|call|teardown", "outcome": ..., "duration": ...,
     "wasxfail": bool, "message": ..., "crash": {"path", "line", "message"}, "longrepr": ...}
    {"e": "finish", "exitstatus": N}
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

_PATH = os.environ.get("ONRECORD_PYTEST_EVENTS")
_LONGREPR_CHARS = 20_000
_handle: Any = None
_worker = False  # under pytest-xdist the controller reports; workers only say what they collected


def pytest_configure(config: Any) -> None:
    global _worker
    _worker = hasattr(config, "workerinput")


def _emit(kind: str, **data: Any) -> None:
    global _handle
    if not _PATH or (_worker and kind != "collected"):
        return
    if _handle is None:
        _handle = open(_PATH, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives for the session
    _handle.write(json.dumps({"e": kind, "t": time.time(), **data}, default=str) + "\n")


def _longrepr(report: Any) -> str:
    try:
        text = report.longreprtext
    except Exception:
        text = str(getattr(report, "longrepr", ""))
    return text[-_LONGREPR_CHARS:]


def _crash(report: Any) -> dict[str, Any] | None:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    if crash is None:
        return None
    return {"path": str(crash.path), "line": crash.lineno, "message": crash.message}


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _emit("collect_error", nodeid=report.nodeid, message=_longrepr(report))


def pytest_collection_finish(session: Any) -> None:
    collect_only = bool(getattr(session.config.option, "collectonly", False))
    _emit(
        "collected",
        count=len(session.items),
        nodeids=[item.nodeid for item in session.items] if collect_only else None,
    )


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _emit("start", nodeid=nodeid)


def pytest_runtest_logreport(report: Any) -> None:
    data: dict[str, Any] = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": round(float(getattr(report, "duration", 0.0)), 6),
        "wasxfail": hasattr(report, "wasxfail"),
        "location": list(report.location) if getattr(report, "location", None) else None,
    }
    if report.failed:
        data["crash"] = _crash(report)
        data["longrepr"] = _longrepr(report)
    elif report.skipped and not hasattr(report, "wasxfail"):
        longrepr = getattr(report, "longrepr", None)
        data["message"] = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else None
    _emit("report", **data)


def pytest_sessionfinish(session: Any, exitstatus: Any) -> None:
    _emit("finish", exitstatus=int(exitstatus))
    if _handle is not None:
        _handle.flush()
