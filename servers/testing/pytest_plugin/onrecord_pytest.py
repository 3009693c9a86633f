"""onrecord's pytest plugin: one JSON line per event, for the testing server to read.

It runs inside the project's own interpreter, so it imports nothing but the standard library and
pytest's hook names. Enabled with `-p onrecord_pytest`; it writes to the file named by
$ONRECORD_PYTEST_EVENTS (and does nothing without it). Events:

    {"e": "collected", "count": N, "nodeids": [...]}      # nodeids only with --collect-only
    {"e": "collect_error", "nodeid": ..., "message": ...,
     "cause": {"type", "message", "path", "line", "traceback"}}   # cause when pytest saw the exception
    {"e": "start", "nodeid": ...}
    {"e": "report", "nodeid": ..., "when": "setup|call|teardown", "outcome": ..., "duration": ...,
     "wasxfail": bool, "message": ..., "crash": {"path", "line", "message"}, "longrepr": ...}
    {"e": "finish", "exitstatus": N}
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from typing import Any

_PATH = os.environ.get("ONRECORD_PYTEST_EVENTS")
_LONGREPR_CHARS = 20_000
_handle: Any = None
_worker = False  # under pytest-xdist the controller reports; workers only say what they collected
_causes: dict[str, dict[str, Any]] = {}  # nodeid -> the exception behind a collection error
_TRACEBACK_FRAMES = 8


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


def _ours(filename: str, root: str) -> bool:
    """A frame in the project's own code: under its root and not in an installed package."""
    if not os.path.isabs(filename):  # "<frozen importlib._bootstrap>", "<string>"
        return False
    path = os.path.normpath(filename)
    installed = ("site-packages", "dist-packages")
    return path.startswith(root + os.sep) and not any(part in installed for part in path.split(os.sep))


def _cause(node: Any, exc: BaseException) -> dict[str, Any]:
    """What the project raised while pytest imported a test module or conftest: the exception, the
    project file and line it came from, and a traceback of the project's own frames only."""
    # pytest wraps an import-time error in its CollectError: the cause is the project's exception,
    # unless pytest raised it itself (a module-level skip, a module name clash), where pytest's own
    # explanation says more.
    while type(exc).__name__ == "CollectError" and exc.__cause__ is not None:
        cause = exc.__cause__
        # pytest's outcomes (skip, fail, exit) are BaseExceptions that pose as builtins
        if not isinstance(cause, Exception) or type(cause).__module__.split(".")[0] in ("_pytest", "pytest"):
            break
        exc = exc.__cause__
    root = os.path.abspath(str(node.config.rootpath))
    innermost = exc
    while innermost.__cause__ is not None:
        innermost = innermost.__cause__
    frames = [f for f in traceback.extract_tb(innermost.__traceback__) if _ours(f.filename, root)]
    path, line = str(getattr(node, "path", "") or "") or None, None
    if frames:
        path, line = frames[-1].filename, frames[-1].lineno
    if isinstance(exc, SyntaxError) and exc.filename:
        path, line = exc.filename, exc.lineno
    if type(exc).__name__ == "CollectError":  # pytest's own explanation, e.g. a module-level skip
        message = " ".join(str(exc).split())
        text = "".join([*traceback.format_list(frames[-_TRACEBACK_FRAMES:]), str(exc)])
    else:
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
        text = "".join(
            [
                *traceback.format_list(frames[-_TRACEBACK_FRAMES:]),
                *traceback.format_exception_only(type(exc), exc),
            ]
        )
    return {
        "type": type(exc).__name__,
        "message": message[:500],
        "path": path,
        "line": line,
        "traceback": text[-_LONGREPR_CHARS:],
    }


def pytest_exception_interact(node: Any, call: Any, report: Any) -> None:
    if getattr(report, "when", None) == "collect" and call.excinfo is not None:
        try:
            _causes[report.nodeid] = _cause(node, call.excinfo.value)
        except Exception:  # never let our reporting break the project's run
            print("onrecord_pytest: could not describe a collection error", file=sys.stderr)


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _emit(
            "collect_error", nodeid=report.nodeid, message=_longrepr(report), cause=_causes.get(report.nodeid)
        )


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
