"""Hostile arguments get clear errors, quickly: forged cursors, pathological globs."""

from __future__ import annotations

import time

import pytest

from common.budget import encode_cursor
from tests.helpers import err, ok
from tests.repo.conftest import Call

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("tool", "arguments", "kind", "key"),
    [
        ("list_files", {}, "list_files", {"path": ".", "pattern": None, "depth": None, "ignored": False}),
        (
            "git_log",
            {},
            "git_log",
            {"path": None, "rev": None, "author": None, "since": None, "until": None, "grep": None},
        ),
        ("search", {"query": "x"}, "search", {"q": "x", "re": False, "cs": False, "g": None, "c": 0}),
    ],
)
@pytest.mark.parametrize(
    "position",
    [None, "12", -5, 10**12, 1.5, [1], True],
)
async def test_a_forged_cursor_is_a_clear_error(
    call: Call, tool: str, arguments: dict[str, object], kind: str, key: dict[str, object], position: object
) -> None:
    state = dict(key)
    if position is not None:
        state["o"] = position
    forged = encode_cursor(kind, **state)
    text = err(await call(tool, **arguments, cursor=forged))
    assert "cursor" in text and "not one this server issued" in text


@pytest.mark.parametrize("cursor", ["!!!", "x" * 20_000, "eyJrIjoibGlzdF9maWxlcyJ9", "\ud800"])
async def test_garbage_cursors_are_clear_errors(call: Call, cursor: str) -> None:
    text = err(await call("list_files", cursor=cursor))
    assert "cursor" in text


async def test_a_pathological_glob_is_answered_at_once(call: Call, repo) -> None:
    (repo / ("a" * 200)).write_text("x\n", encoding="utf-8")
    started = time.monotonic()
    found = ok(await call("list_files", pattern="*a*a*a*a*a*a*a*a*a*a*a*ax", include_ignored=True))
    searched = ok(await call("search", query="x", path_glob="*a*a*a*a*a*a*a*a*a*a*a*ax"))
    assert time.monotonic() - started < 5
    assert found["entries"] == [] and searched["total"] == 0
    assert "not a valid pattern" in err(await call("list_files", pattern="[z-a]"))
