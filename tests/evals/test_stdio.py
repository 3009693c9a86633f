from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client

from clients.stdio import server_params
from common.audit import verify_dir
from tests.evals.conftest import Session, csv
from tests.helpers import make_repo

pytestmark = pytest.mark.anyio


async def test_evals_over_stdio_evaluates_records_and_gates(tmp_path: Path) -> None:
    rows = [[i % 2, 0.8 if i % 3 else 0.3] for i in range(60)]
    root = make_repo(tmp_path / "project", {"preds.csv": csv(["y", "s"], rows)})
    async with Client(server_params("evals", root), mode="legacy") as client:
        assert client.server_info is not None and client.server_info.name == "evals"
        tools = {t.name for t in (await client.list_tools()).tools}
        assert tools == {
            "evaluate_predictions",
            "record_run",
            "list_runs",
            "compare_runs",
            "check_gates",
            "evaluate_endpoint",
        }
        result = await client.call_tool(
            "evaluate_predictions",
            {"path": "preds.csv", "task": "binary", "label": "y", "score": "s", "name": "clf"},
        )
        assert result.is_error is False and result.structured_content is not None
        run = result.structured_content["run"]
        assert run["head"] and run["dirty"] is False
        gates = await client.call_tool(
            "check_gates", {"candidate": "clf@HEAD", "gates": {"acc": {"metric": "accuracy", "max": 2}}}
        )
        assert gates.is_error is False and gates.structured_content is not None
        assert gates.structured_content["verdict"] == "pass"
    assert (root / ".onrecord" / "evals" / "runs" / f"{run['id']}.json").is_file()
    reports = verify_dir(Path(os.environ["ONRECORD_STATE_DIR"]) / "audit")
    assert len(reports) == 1 and reports[0].ok


def _gates(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", "gates", *extra, "--root", str(root)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        env=os.environ.copy(),
    )


async def test_gates_command_exits_non_zero_on_a_failing_verdict(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "project",
        {".onrecord.toml": "[evals.gates.accuracy]\nmin = 0.9\n\n[evals.gates.mae]\nmax = 1.0\n"},
    )
    session = Session(root, {})
    async with session as call:
        good = (await call("record_run", name="m", metrics={"accuracy": 0.95})).structured_content
        bad = (await call("record_run", name="m", metrics={"accuracy": 0.5})).structured_content
    assert good and bad
    ok = _gates(root, good["run"]["id"])
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verdict"] == "pass"  # the missing mae is skipped, not failed
    failed = _gates(root, bad["run"]["id"])
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["verdict"] == "fail"
    missing = _gates(root, "m-20200101T000000Z-abcdef")
    assert missing.returncode == 2 and "no run" in missing.stdout
