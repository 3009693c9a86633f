"""readiness_report and release_checklist on fixture projects; `onrecord readiness` for CI."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import commit, err, git, ok, write

pytestmark = pytest.mark.anyio

PROJECT = {
    "pyproject.toml": '[project]\nname = "shop"\nversion = "1.1.0"\n',
    "requirements.txt": "flask==3.0.3\n",
    "CHANGELOG.md": "# Changelog\n\n## 1.1.0\n- discounts\n\n## 1.0.0\n- first release\n",
    "shop/__init__.py": "",
    "shop/cart.py": "def total(prices):\n    return sum(prices)\n",
    "tests/test_cart.py": "from shop.cart import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n",
}


def _released(repo: Callable[..., Path]) -> Path:
    """A project tagged v1.0.0, then bumped to 1.1.0 with a changelog entry."""
    root = repo({**PROJECT, "pyproject.toml": '[project]\nname = "shop"\nversion = "1.0.0"\n'})
    git(root, "tag", "v1.0.0")
    commit(root, {"pyproject.toml": PROJECT["pyproject.toml"]}, "release 1.1.0")
    return root


def _by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in report["checks"]}


async def test_a_ready_project_passes_every_check_that_applies(
    repo: Callable[..., Path], session: Any
) -> None:
    root = _released(repo)
    async with session(root) as call:
        report = ok(await call("readiness_report"))
    checks = _by_id(report)
    assert set(checks) == {
        "tests", "lint", "worktree_clean", "pushed", "version_bumped", "changelog",
        "dependencies_pinned", "no_debug_added", "no_large_binaries", "secrets", "config",
    }  # fmt: skip
    assert checks["tests"]["status"] == "pass" and "1 passed" in checks["tests"]["summary"]
    assert checks["pushed"]["status"] == "skipped"  # no upstream: unknown, never a pass
    assert report["verdict"] == "inconclusive" and report["blocking"] == []
    assert report["base"] == "v1.0.0"
    others = [c for c in report["checks"] if c["id"] != "pushed"]
    assert all(c["status"] == "pass" for c in others), [(c["id"], c["summary"]) for c in others]


async def test_the_report_reads_the_same_tree_the_same_after_its_own_test_run(
    repo: Callable[..., Path], session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)  # as on a developer's machine
    root = _released(repo)  # no .gitignore: the report's own test run leaves __pycache__ untracked
    async with session(root) as call:
        first = ok(await call("readiness_report"))
        assert any(root.rglob("__pycache__"))
        second = ok(await call("readiness_report"))
        write(root, {"shop/new.py": "x = 1\n"})  # a real untracked file still counts
        third = ok(await call("readiness_report", checks=["worktree_clean"]))
    assert _by_id(second)["worktree_clean"]["status"] == "pass", _by_id(second)["worktree_clean"]
    assert second["verdict"] == first["verdict"] == "inconclusive"
    clean = _by_id(third)["worktree_clean"]
    assert clean["status"] == "fail" and [e["path"] for e in clean["evidence"]] == ["shop/new.py"]


async def test_failures_block_with_evidence_and_advisories_warn(
    repo: Callable[..., Path], session: Any
) -> None:
    root = _released(repo)
    token = "ghp_" + "Zq8Lm2Xv9Tr4Wb6Ny1Kc3Hd5Fg7Js0Pa2Qe4R"
    write(
        root,
        {
            "tests/test_cart.py": "from shop.cart import total\n\n\ndef test_total():\n    assert total([1, 2]) == 4\n",
            "shop/cart.py": "def total(prices):\n    # TODO: currencies\n    breakpoint()\n    return sum(prices)\n",
            "shop/keys.py": f'TOKEN = "{token}"\n',
            "assets/blob.bin": b"\0" * 2_000_000,
        },
    )
    async with session(root) as call:
        report = ok(await call("readiness_report"))
    checks = _by_id(report)
    assert report["verdict"] == "fail"
    assert set(report["blocking"]) == {"tests", "secrets", "worktree_clean"}
    assert checks["tests"]["evidence"][0]["path"] == "tests/test_cart.py"
    assert checks["secrets"]["evidence"][0]["path"] == "shop/keys.py" and token not in str(report)
    debug = checks["no_debug_added"]
    assert debug["status"] == "warn" and debug["severity"] == "advisory"
    assert {(e["path"], e["line"]) for e in debug["evidence"]} == {("shop/cart.py", 2), ("shop/cart.py", 3)}
    assert checks["no_large_binaries"]["status"] == "warn"
    assert checks["no_large_binaries"]["evidence"][0]["path"] == "assets/blob.bin"
    assert all(c["fix"] for c in report["checks"] if c["status"] in ("fail", "warn"))


async def test_version_not_bumped_and_missing_changelog_entry(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({**PROJECT, "pyproject.toml": '[project]\nname = "shop"\nversion = "1.0.0"\n'})
    git(root, "tag", "v1.0.0")
    commit(root, {"shop/cart.py": "def total(prices):\n    return sum(prices) + 0\n"}, "change")
    write(root, {"CHANGELOG.md": "# Changelog\n"})
    git(root, "commit", "-qam", "trim changelog")
    async with session(root, advisory=[]) as call:
        report = ok(
            await call("readiness_report", checks=["version_bumped", "changelog", "dependencies_pinned"])
        )
    checks = _by_id(report)
    assert list(checks) == ["version_bumped", "changelog", "dependencies_pinned"]  # in the order they run
    assert (
        checks["version_bumped"]["status"] == "warn" and "not bumped" in checks["version_bumped"]["summary"]
    )
    assert checks["changelog"]["status"] == "warn"
    assert checks["dependencies_pinned"]["status"] == "pass"
    assert report["verdict"] == "warn"


async def test_disabled_checks_do_not_run_and_bad_arguments_are_refused(
    repo: Callable[..., Path], session: Any
) -> None:
    root = _released(repo)
    async with session(root, disabled=["tests", "lint", "pushed"]) as call:
        report = ok(await call("readiness_report"))
        unknown = err(await call("readiness_report", checks=["nope"]))
        bad_base = err(await call("readiness_report", checks=["no_debug_added"], base="--exec=sh"))
    assert {"tests", "lint", "pushed"}.isdisjoint(_by_id(report))
    assert report["verdict"] == "pass"
    assert "nope" in unknown
    assert "starts with '-'" in bad_base


async def test_outside_git_the_git_checks_are_skipped(tmp_path: Path, session: Any) -> None:
    root = tmp_path / "plain"
    write(root, {"app.yaml": "a: 1\n"})
    async with session(root) as call:
        report = ok(await call("readiness_report", checks=["worktree_clean", "config", "secrets"]))
    checks = _by_id(report)
    assert (
        checks["worktree_clean"]["status"] == "skipped"
        and "not a git repository" in checks["worktree_clean"]["summary"]
    )
    assert checks["config"]["status"] == "pass" and checks["secrets"]["status"] == "pass"
    assert report["verdict"] == "inconclusive"


async def test_release_checklist_answers_from_files_and_settings(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"docs/rollback.md": "# Rollback\n", ".github/CODEOWNERS": "* @shop-team\n"})
    async with session(root, checklist={"monitoring": "https://grafana.example.com/d/shop"}) as call:
        listed = ok(await call("release_checklist"))
    answers = {i["id"]: (i["status"], i["answer"]) for i in listed["items"]}
    assert answers == {
        "rollback_plan": ("answered", "docs/rollback.md"),
        "owner": ("answered", ".github/CODEOWNERS"),
        "monitoring": ("answered", "https://grafana.example.com/d/shop"),
        "staged_rollout": ("open", None),
    }
    assert listed["open"] == ["staged_rollout"]


def test_onrecord_readiness_exits_non_zero_on_a_failing_verdict(repo: Callable[..., Path]) -> None:
    root = _released(repo)
    cli = [
        sys.executable,
        "-m",
        "clients.cli",
        "readiness",
        "--checks",
        "changelog,secrets,config",
        "--root",
        str(root),
    ]
    passing = subprocess.run(cli, capture_output=True, text=True, encoding="utf-8", timeout=60)
    write(root, {"leak.ini": "aws_access_key_id = AKIA" + "Q7XM2LB5ZP4KD9WF\n"})
    failing = subprocess.run(cli, capture_output=True, text=True, encoding="utf-8", timeout=60)
    assert passing.returncode == 0, passing.stderr
    assert "verdict: pass" in passing.stderr
    assert failing.returncode == 1 and "verdict: fail" in failing.stderr
    assert "Q7XM2LB5ZP4KD9WF" not in failing.stdout


async def test_a_slow_test_inside_the_report_still_sends_heartbeats_naming_check_and_test(
    repo: Callable[..., Path], session: Any
) -> None:
    from mcp import Client

    slow = "import time\n\n\ndef test_slow():\n    time.sleep(2)\n"
    root = repo({**PROJECT, "tests/test_slow.py": slow})
    heard: list[tuple[float, float | None, str]] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        heard.append((progress, total, message or ""))

    made = session(root)
    made.server.config.heartbeat_s = 0.3
    async with Client(made.server, mode="legacy") as client:
        result = await client.call_tool(
            "readiness_report", {"checks": ["tests", "lint"]}, progress_callback=progress
        )
    assert _by_id(ok(result))["tests"]["status"] == "pass"
    beats = [m for _, _, m in heard if m.startswith("still running (")]
    assert any(m.endswith("): tests (Tests pass) > tests/test_slow.py::test_slow") for m in beats), heard
    # The report's own steps are what the counts say: checks of 2, never the tests inside one.
    assert [m for _, _, m in heard if not m.startswith("still running")] == [
        "tests: Tests pass",
        "lint: Lint is clean",
    ]
    assert all(total == 2 for _, total, _ in heard)
    assert all(a < b for (a, _, _), (b, _, _) in itertools.pairwise(heard))
