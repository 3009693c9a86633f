from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.evals.conftest import Call, Session
from tests.evals.test_evaluate import structured
from tests.helpers import commit, first_text, git

pytestmark = pytest.mark.anyio


async def test_record_run_writes_a_json_file_with_head_and_dirty_flag(evals: Call) -> None:
    root = evals.root  # type: ignore[attr-defined]
    head = git(root, "rev-parse", "HEAD").strip()
    out = structured(
        await evals(
            "record_run",
            name="churn",
            metrics={"accuracy": 0.91},
            params={"model": "gbm"},
            tags={"stage": "ci"},
        )
    )
    run = out["run"]
    assert run["head"] == head
    assert run["dirty"] is False  # the eval store's own files do not make the tree dirty
    assert out["path"].startswith(".onrecord/evals/runs/")
    stored = json.loads((root / out["path"]).read_text(encoding="utf-8"))
    assert stored["metrics"] == {"accuracy": 0.91}
    assert stored["params"] == {"model": "gbm"} and stored["tags"] == {"stage": "ci"}
    assert not [p for p in (root / ".onrecord/evals/runs").iterdir() if p.name.startswith(".tmp")]
    (root / "model.py").write_text("changed = True\n", encoding="utf-8")
    again = structured(await evals("record_run", name="churn", metrics={"accuracy": 0.92}))
    assert again["run"]["dirty"] is True


async def test_record_run_is_annotated_as_writing(evals: Any, make_client: Callable[..., Session]) -> None:
    async with make_client({"a.txt": "a\n"}, name="other") as call:
        del call
    session = make_client({"a.txt": "a\n"}, name="third")
    tools = {t.name: t for t in await session.server.list_tools()}
    for name in ("record_run", "evaluate_predictions"):
        ann = tools[name].annotations
        assert ann is not None
        assert ann.read_only_hint is False and ann.destructive_hint is False and ann.open_world_hint is False
    assert (
        tools["list_runs"].annotations is not None and tools["list_runs"].annotations.read_only_hint is True
    )


async def test_record_run_refuses_bad_names_and_values(evals: Call) -> None:
    result = await evals("record_run", name="../escape", metrics={"accuracy": 1.0})
    assert result.is_error
    result = await evals("record_run", name="ok", metrics={})
    assert result.is_error and "metrics is empty" in first_text(result)


async def test_list_runs_pages_newest_first(evals: Call) -> None:
    for i in range(5):
        structured(await evals("record_run", name="m", metrics={"accuracy": i / 10}))
    structured(await evals("record_run", name="other", metrics={"mae": 1.0}))
    first = structured(await evals("list_runs", name="m", limit=2))
    assert first["total"] == 5 and first["returned"] == 2 and first["truncated"]
    assert [r["headline"]["accuracy"] for r in first["runs"]] == [0.4, 0.3]
    second = structured(await evals("list_runs", name="m", limit=2, cursor=first["next_cursor"]))
    assert [r["headline"]["accuracy"] for r in second["runs"]] == [0.2, 0.1]
    wrong = await evals("list_runs", name="other", limit=2, cursor=first["next_cursor"])
    assert wrong.is_error and "cursor" in first_text(wrong)
    everything = structured(await evals("list_runs"))
    assert everything["total"] == 6 and everything["next_cursor"] is None


async def test_evaluation_is_recorded_as_a_run_with_items(evals: Call) -> None:
    root = evals.root  # type: ignore[attr-defined]
    (root / "p.csv").write_text("y,p\n1,1\n0,1\n", encoding="utf-8")
    commit(root, {"p.csv": "y,p\n1,1\n0,1\n"}, "predictions")
    out = structured(
        await evals(
            "evaluate_predictions", path="p.csv", task="binary", label="y", prediction="p", name="clf"
        )
    )
    assert out["run"]["name"] == "clf" and out["run"]["items"] is True and out["run"]["dirty"] is False
    listed = structured(await evals("list_runs", name="clf"))
    assert listed["runs"][0]["id"] == out["run"]["id"]
    assert listed["runs"][0]["headline"]["accuracy"] == 0.5


async def test_a_store_that_links_outside_the_root_is_refused(
    make_client: Callable[..., Session], tmp_path: Any
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    session = make_client({"a.txt": "a\n"}, name="linked")
    (session.root / ".onrecord").mkdir()
    (session.root / ".onrecord" / "evals").symlink_to(outside)
    async with session as call:
        result = await call("record_run", name="m", metrics={"accuracy": 1.0})
    assert result.is_error
    assert not list(outside.iterdir())
