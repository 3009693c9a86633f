"""run_tests and friends through the in-memory Client, on fixture projects made in tmp_path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import err, first_text, git, make_repo, ok
from tests.testing.conftest import FAILING, Call

pytestmark = pytest.mark.anyio


async def test_tools_have_truthful_annotations(failing: Call) -> None:
    tools = {t.name: t for t in await failing.server.list_tools()}  # type: ignore[attr-defined]
    assert set(tools) == {
        "discover_tests",
        "run_tests",
        "run_affected_tests",
        "lint",
        "fix_lint",
        "format_check",
        "check_flaky",
        "test_history",
    }
    assert tools["lint"].annotations.read_only_hint is True
    assert tools["fix_lint"].annotations.destructive_hint is True
    assert tools["format_check"].annotations.read_only_hint is True
    assert tools["test_history"].annotations.read_only_hint is True
    assert (
        tools["run_tests"].annotations.read_only_hint is False
        and tools["run_tests"].annotations.destructive_hint is False
    )
    for tool in tools.values():
        assert tool.output_schema is not None and tool.description
        for name, prop in tool.input_schema.get("properties", {}).items():
            assert prop.get("description"), f"{tool.name}.{name}"


async def test_a_failing_run_reports_counts_failures_and_one_group_per_cause(failing: Call) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        seen.append((done, total, message))

    data = ok(await failing("run_tests", progress=progress))
    assert data["status"] == "failed"
    assert data["counts"] == {
        "passed": 6,
        "failed": 9,
        "errors": 1,
        "skipped": 1,
        "xfailed": 1,
        "xpassed": 1,
        "tests": 19,
    }
    # The envelope counts the result's list, the failures: no second "total" beside counts.
    assert data["total"] == data["returned"] == len(data["failures"]) == 10
    groups = data["failure_groups"]
    assert groups[0]["count"] == 8 and groups[0]["cause"].startswith("TypeError")
    assert groups[0]["location"] == "calc.py:6" and len(groups[0]["node_ids"]) == 5
    assert {g["cause"] for g in groups[1:]} == {"assert 4 == 5", "RuntimeError: fixture broke"}
    kinds = {f["node_id"]: f["kind"] for f in data["failures"]}
    assert kinds["tests/test_calc.py::test_uses_broken"] == "error"
    assert kinds["tests/test_calc.py::test_wrong"] == "failed"
    wrong = next(f for f in data["failures"] if f["node_id"].endswith("test_wrong"))
    assert "assert 4 == 5" in wrong["traceback"] and wrong["location"] == "tests/test_calc.py:16"
    assert data["interpreter"].endswith("(onrecord's own interpreter)")
    assert Path(data["report"]).exists() and data["run_id"] in data["report"]
    assert [round(d) for d, _, _ in seen] == list(range(1, 20)) and seen[-1][1] == 19
    odd = ok(await failing("run_tests", keyword="odd_ids"))
    assert odd["status"] == "passed" and odd["counts"]["passed"] == 5


async def test_counts_equal_pytests_own_junit_xml(failing: Call, tmp_path: Path) -> None:
    data = ok(await failing("run_tests"))
    xml = tmp_path / "junit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junit-xml={xml}"],
        cwd=failing.root,  # type: ignore[attr-defined]
        capture_output=True,
        check=False,
    )
    suite = ET.parse(xml).getroot().find("testsuite")  # noqa: S314 - our own pytest wrote it
    assert suite is not None
    c = data["counts"]
    assert int(suite.get("tests") or -1) == c["tests"]
    assert int(suite.get("failures") or -1) == c["failed"]
    assert int(suite.get("errors") or -1) == c["errors"]
    assert int(suite.get("skipped") or -1) == c["skipped"] + c["xfailed"]


async def test_selection_options_reach_pytest_as_validated_arguments(failing: Call) -> None:
    one = ok(await failing("run_tests", targets=["tests/test_calc.py::test_add"]))
    assert one["status"] == "passed" and one["counts"]["tests"] == 1
    stopped = ok(await failing("run_tests", max_failures=2))
    assert stopped["counts"]["failed"] == 2 and stopped["status"] == "failed"
    nothing = ok(await failing("run_tests", keyword="no_such_test_name"))
    assert nothing["status"] == "no_tests" and "no tests were selected" in nothing["note"]
    try:
        import xdist  # noqa: F401  # pyright: ignore[reportMissingImports]
    except ImportError:
        assert "needs the 'xdist' package" in err(await failing("run_tests", workers=2))
    again = ok(await failing("run_tests", last_failed=True))
    assert again["counts"]["passed"] == 0 and again["counts"]["failed"] == 2
    for bad in (
        {"targets": ["--collect-only"]},
        {"targets": ["../outside.py"]},
        {"keyword": "x; import os"},
        {"marker": "--pdb"},
        {"max_failures": 0},
        {"workers": 1000},
    ):
        text = err(await failing("run_tests", **bad))
        assert "Error executing tool run_tests" in text, bad


async def test_a_collection_error_is_an_error_with_its_message(make_client: Callable[..., Any]) -> None:
    files = {
        "tests/test_ok.py": "def test_fine():\n    pass\n",
        "tests/test_broken.py": "import no_such_module\n",
    }
    async with make_client(files) as call:
        data = ok(await call("run_tests"))
        assert data["status"] == "error" and data["counts"]["errors"] == 1
        failure = data["failures"][0]
        assert failure["kind"] == "collection_error" and "no_such_module" in failure["message"]
        found = ok(await call("discover_tests"))
        assert found["node_ids"] == ["tests/test_ok.py::test_fine"]
        assert "no_such_module" in found["collection_errors"][0]["message"]


async def test_collection_errors_name_the_exception_and_the_project_file_and_line(
    make_client: Callable[..., Any],
) -> None:
    files = {
        "tests/test_imp.py": "import no_such_module\n\ndef test_a():\n    pass\n",
        "tests/helper.py": 'def boom():\n    return {}["missing"]\n\nVALUE = boom()\n',
        "tests/test_rt.py": "import helper\n\ndef test_c():\n    pass\n",
        "tests/test_syn.py": "def test_b():\n    x = (1,\n    assert x\n",
        "tests/test_skip.py": 'import pytest\npytest.skip("nope")\n\ndef test_d():\n    pass\n',
        "t2/conftest.py": 'import json\nCONFIG = json.loads("{bad")\n',
        "t2/test_z.py": "def test_z():\n    pass\n",
    }
    async with make_client(files) as call:
        data = ok(await call("run_tests", targets=["tests"]))
        by_node = {f["node_id"]: f for f in data["failures"]}
        assert data["status"] == "error" and data["counts"]["errors"] == 4, data
        expected = {
            "tests/test_imp.py": (
                "ModuleNotFoundError: No module named 'no_such_module'",
                "tests/test_imp.py:1",
            ),
            "tests/test_rt.py": ("KeyError: 'missing'", "tests/helper.py:2"),
            "tests/test_syn.py": ("SyntaxError: '(' was never closed", "tests/test_syn.py:2"),
            "tests/test_skip.py": ("Using pytest.skip outside of a test", "tests/test_skip.py:2"),
        }
        for node, (message, location) in expected.items():
            failure = by_node[node]
            assert failure["kind"] == "collection_error" and failure["phase"] == "collect"
            assert failure["message"].startswith(message) and failure["location"] == location, failure
            # The traceback is the project's frames, from a frame's start: no pytest or importlib
            # internals, never a line that begins mid-frame.
            trace = failure["traceback"]
            assert "_pytest" not in trace and "importlib" not in trace and "^" not in trace.splitlines()[0]
        assert 'return {}["missing"]' in by_node["tests/test_rt.py"]["traceback"]
        found = ok(await call("discover_tests", path="tests"))
        assert {e["nodeid"]: e["location"] for e in found["collection_errors"]} == {
            n: loc for n, (_, loc) in expected.items()
        }
        # A conftest that fails to import stops pytest before its session: still the project's error.
        broken = ok(await call("run_tests", targets=["t2"]))
        assert broken["status"] == "error" and broken["counts"]["errors"] == 1
        (failure,) = broken["failures"]
        assert failure["node_id"] == "t2/conftest.py" and failure["location"] == "t2/conftest.py:2"
        assert failure["message"].startswith("json.decoder.JSONDecodeError: Expecting property name")
        assert (
            ok(await call("discover_tests", path="t2"))["collection_errors"][0]["location"]
            == "t2/conftest.py:2"
        )


async def test_a_long_traceback_is_cut_where_a_frame_starts_and_says_so(
    make_client: Callable[..., Any],
) -> None:
    files = {
        "test_deep.py": """\
            def down(n):
                if n == 0:
                    return {}["bottom"] + 1
                return down(n - 1) + 1


            def test_deep():
                assert down(80) == 0
            """
    }
    async with make_client(files) as call:
        (failure,) = ok(await call("run_tests"))["failures"]
        first, second, *_ = failure["traceback"].splitlines()
        assert re.fullmatch(r"\(\d+ earlier lines left out\)", first), first
        assert not second[0].isspace() and not second.startswith(("^", "E ")), second
        assert "E           KeyError: 'bottom'" in failure["traceback"]


def hanging_test(marker: Path, name: str) -> str:
    """A test that starts a grandchild (its pid written to marker), then hangs."""
    return f"""\
import subprocess, sys, time

def test_quick():
    pass

def {name}():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    open({str(marker)!r}, "w").write(str(child.pid))
    time.sleep(120)
"""


async def test_a_hung_test_times_out_names_the_test_and_leaves_no_process(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    marker = tmp_path / "child.pid"
    files = {"tests/test_hang.py": hanging_test(marker, "test_hangs")}
    async with make_client(files) as call:
        started = time.monotonic()
        data = ok(await call("run_tests", timeout_s=5))
        elapsed = time.monotonic() - started
    assert data["status"] == "timeout" and elapsed < 15
    assert data["running_at_timeout"] == "tests/test_hang.py::test_hangs"
    assert data["counts"]["passed"] == 1
    child = int(marker.read_text(encoding="utf-8"))
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    assert _running_in(tmp_path) == []  # pytest and its children ran in the project: none is left


def _running_in(folder: Path) -> list[int]:
    """Live processes whose working directory is inside folder (only this test's, whatever else runs)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if (cwd == str(folder) or cwd.startswith(f"{folder}/")) and _alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().split()[2] != "Z"
    except (ProcessLookupError, OSError):
        return False


async def test_the_projects_own_venv_is_used_and_named(make_client: Callable[..., Any]) -> None:
    files = {"test_env.py": "import sys\n\ndef test_where():\n    print(sys.executable)\n"}
    async with make_client(files) as call:
        venv_python = call.root / ".venv" / "bin" / "python"  # type: ignore[attr-defined]
        venv_python.parent.mkdir(parents=True)
        venv_python.symlink_to(sys.executable)
        data = ok(await call("run_tests"))
    assert data["status"] == "passed"
    assert data["interpreter"] == f"{venv_python} (the project's .venv)"


async def test_a_missing_pytest_is_a_clear_error_naming_the_interpreter(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    bare = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    # A venv made from inside a venv points at the base interpreter, which has no pytest.
    async with make_client(
        {"test_x.py": "def test_x():\n    pass\n"}, python=str(bare / "bin" / "python")
    ) as call:
        text = err(await call("run_tests"))
    assert "pytest is not installed for the interpreter" in text and str(bare / "bin" / "python") in text


async def test_history_and_flakiness_come_from_recorded_runs(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    counter = tmp_path / "count.txt"
    files = {
        "test_flaky.py": f"""\
            from pathlib import Path

            def test_alternates():
                p = Path({str(counter)!r})
                n = int(p.read_text()) if p.exists() else 0
                p.write_text(str(n + 1))
                assert n % 2 == 0

            def test_stable():
                pass
            """
    }
    async with make_client(files) as call:
        root = call.root  # type: ignore[attr-defined]
        make_repo(root, {})
        # Bytecode and pytest's cache are what runs leave behind: the tree stays clean with them.
        for cache in ("__pycache__/test_flaky.cpython-311.pyc", "pkg/__pycache__/m.pyc", ".pytest_cache/v"):
            (root / cache).parent.mkdir(parents=True, exist_ok=True)
            (root / cache).write_bytes(b"\0")
        flaky = ok(await call("check_flaky", node_id="test_flaky.py::test_alternates", runs=4))
        assert flaky["verdict"] == "flaky" and flaky["history_flaky_rate"] == 1.0
        assert [r["outcome"] for r in flaky["runs"]] == ["passed", "failed", "passed", "failed"]
        stable = ok(await call("check_flaky", node_id="test_flaky.py::test_stable", runs=2))
        assert stable["verdict"] == "stable_pass"
        history = ok(await call("test_history", node_id="test_flaky.py::test_alternates"))
        assert [r["outcome"] for r in history["runs"]] == ["failed", "passed", "failed", "passed"]
        assert history["flaky_rate"] == 1.0 and history["flaky_pairs"] == 3 and history["pass_rate"] == 0.5
        head = history["runs"][0]["head"]
        assert len(head) == 40 and history["runs"][0]["dirty"] is False and history["dirty_runs"] == []

        # The agent's uncommitted edit breaks the stable test: a failure on a dirty tree is not flakiness.
        (root / "test_flaky.py").write_text(
            (root / "test_flaky.py").read_text(encoding="utf-8").replace("    pass", "    assert 0"),
            encoding="utf-8",
        )
        assert ok(await call("run_tests", targets=["test_flaky.py::test_stable"]))["status"] == "failed"
        # So is a new untracked module, even with the tracked files restored.
        git(root, "checkout", "--", "test_flaky.py")
        (root / "helper.py").write_text("X = 1\n", encoding="utf-8")
        await call("run_tests", targets=["test_flaky.py::test_stable"])
        history = ok(await call("test_history", node_id="test_flaky.py::test_stable"))
        assert [r["outcome"] for r in history["dirty_runs"]] == ["passed", "failed"]
        assert all(r["dirty"] is True and r["head"] == head for r in history["dirty_runs"])
        assert [r["outcome"] for r in history["runs"]] == ["passed"] * 2
        assert history["flaky_rate"] == 0.0 and history["pass_rate"] == 1.0
        assert history["total"] == 4 and history["returned"] == 4

        unknown = ok(await call("test_history", node_id="test_flaky.py::nope"))
        assert unknown["runs"] == [] and "no recorded run" in unknown["note"]


async def test_history_outside_git_gives_no_flaky_rate_and_says_why(make_client: Callable[..., Any]) -> None:
    async with make_client({"test_x.py": "def test_x():\n    pass\n"}) as call:
        for _ in range(3):
            await call("run_tests")
        history = ok(await call("test_history", node_id="test_x.py::test_x"))
        assert history["runs"] == [] and len(history["dirty_runs"]) == 3
        assert history["flaky_rate"] is None and history["flaky_pairs"] == 0 and history["pass_rate"] is None
        assert "two runs of the same commit on a clean tree" in history["note"]
        assert "3 on uncommitted changes or outside git" in history["note"]


async def test_the_failure_list_is_cut_to_budget_but_status_and_counts_are_not(
    make_client: Callable[..., Any],
) -> None:
    files = {
        "test_many.py": """\
            import pytest

            @pytest.mark.parametrize("i", range(400))
            def test_many(i):
                assert i < 0, "x" * 400 + str(i)
            """
    }
    async with make_client(files) as call:
        data = ok(await call("run_tests"))
    assert data["status"] == "failed" and data["counts"]["failed"] == 400
    assert data["truncated"] and data["returned"] < 400 and data["total"] == 400
    assert "in the report" in data["note"] and len(data["failure_groups"]) == 1
    assert data["failure_groups"][0]["count"] == 400


async def test_run_affected_tests_selects_by_change_and_import(make_client: Callable[..., Any]) -> None:
    from tests.helpers import commit, git

    files = {
        "pkg/__init__.py": "",
        "pkg/core.py": "def core():\n    return 1\n",
        "pkg/api.py": "from pkg.core import core\n\ndef api():\n    return core()\n",
        "pkg/other.py": "def other():\n    return 2\n",
        "tests/test_api.py": "from pkg.api import api\n\ndef test_api():\n    assert api() == 1\n",
        "tests/test_other.py": "from pkg.other import other\n\ndef test_other():\n    assert other() == 2\n",
    }
    async with make_client(files) as call:
        root = call.root  # type: ignore[attr-defined]
        git(root, "init", "-q", "-b", "main")
        commit(root, {}, "initial")
        nothing = ok(await call("run_affected_tests"))
        assert nothing["selected"] == [] and nothing["run"] is None and "nothing changed" in nothing["note"]
        (root / "pkg" / "core.py").write_text("def core():\n    return 2\n", encoding="utf-8")
        data = ok(await call("run_affected_tests"))
        assert [s["path"] for s in data["selected"]] == ["tests/test_api.py"]
        assert data["selected"][0]["reasons"] == ["imports pkg.api -> pkg.core (changed)"]
        assert data["run"]["status"] == "failed" and data["run"]["counts"]["failed"] == 1
        assert "Error executing tool" in err(await call("run_affected_tests", base="--output=x"))


async def test_lint_and_format_check_report_ruff_findings(make_client: Callable[..., Any]) -> None:
    files = {
        "pyproject.toml": '[tool.ruff.lint]\nselect = ["F", "E"]\n',
        "mod.py": "import os\nimport sys\n\n\ndef f( x ):\n    return x==1\n",
        "clean.py": "def g():\n    return 1\n",
    }
    async with make_client(files) as call:
        root = call.root  # type: ignore[attr-defined]
        data = ok(await call("lint"))
        assert data["counts_by_rule"] == {"F401": 2} and data["files"][0]["path"] == "mod.py"
        assert data["files"][0]["diagnostics"][0]["fixable"] is True
        only = ok(await call("lint", select=["E"]))
        assert only["total"] == 0
        assert "rule codes" in err(await call("lint", select=["--fix"]))
        assert "outside the workspace root" in err(await call("lint", paths=["../x.py"]))
        fmt = ok(await call("format_check"))
        assert fmt["would_reformat"] == ["mod.py"] and "-def f( x ):" in fmt["diffs"][0]["diff"]
        assert (root / "mod.py").read_text(encoding="utf-8").startswith("import os")  # nothing written
        assert "fix" in err(await call("lint", fix=True))  # unknown arguments are not silently dropped
        fixed = await call("fix_lint")
        assert fixed.is_error and "Needs approval" in first_text(fixed)  # a write asks first
        assert (root / "mod.py").read_text(encoding="utf-8").startswith("import os")


async def test_lint_never_runs_a_ruff_binary_the_repository_supplies(make_client: Callable[..., Any]) -> None:
    # A clone that ships .venv/bin/ruff must not get it run by a read-only tool the policy allows.
    trap = '#!/bin/sh\ntouch "$(dirname "$0")/../../ran"\necho \'[]\'\n'
    files = {"mod.py": "import os\n", ".venv/bin/ruff": trap, "venv/bin/ruff": trap}
    async with make_client(files) as call:
        root = call.root  # type: ignore[attr-defined]
        for name in (".venv/bin/ruff", "venv/bin/ruff"):
            (root / name).chmod(0o755)
        for tool in ("lint", "format_check"):
            data = ok(await call(tool))
            assert str(root) not in data["tool"], data["tool"]
        assert ok(await call("lint"))["counts_by_rule"] == {"F401": 1}  # the real ruff ran
        assert not (root / "ran").exists()


async def test_lint_fix_applies_fixes_once_approved(make_client: Callable[..., Any]) -> None:
    from mcp import Client
    from mcp.types import ElicitResult

    files = {"pyproject.toml": '[tool.ruff.lint]\nselect = ["F"]\n', "mod.py": "import os\n\nx = 1\n"}
    session = make_client(files)

    async def approve(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"approve": True})

    async with Client(session.server, mode="legacy", elicitation_callback=approve) as client:
        result = await client.call_tool("fix_lint", {})
    data = ok(result)
    assert data["fixed"] == 1 and "-import os" in data["diffs"][0]["diff"] and data["remaining"]["total"] == 0
    assert (session.root / "mod.py").read_text(encoding="utf-8") == "\nx = 1\n"


async def test_run_tests_over_real_stdio(tmp_path: Path) -> None:
    from tests.testing.conftest import project

    root = project(tmp_path / "stdio-proj", {"test_s.py": "def test_s():\n    assert 1\n"})
    out = subprocess.run(
        [sys.executable, "-m", "clients.cli", "call", "testing", "run_tests", "{}", "--root", str(root)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stderr
    assert '"status": "passed"' in out.stdout and '"passed": 1' in out.stdout


def test_fixture_project_is_what_the_tests_assume() -> None:
    assert "def test_wrong" in FAILING["tests/test_calc.py"]


async def test_cancelling_a_run_kills_pytest_and_its_children(
    make_client: Callable[..., Any], tmp_path: Path
) -> None:
    import anyio

    marker = tmp_path / "grandchild.pid"
    files = {"test_slow.py": hanging_test(marker, "test_slow")}
    async with make_client(files) as call:
        with anyio.move_on_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "run_tests")
                with anyio.fail_after(15):
                    while not marker.exists() or not marker.read_text(encoding="utf-8"):
                        await anyio.sleep(0.05)
                tg.cancel_scope.cancel()
        child = int(marker.read_text(encoding="utf-8"))
        with anyio.fail_after(10):
            while _alive(child):
                await anyio.sleep(0.05)
        records = [r for r in (call.server.audit.path.read_text(encoding="utf-8").splitlines())]  # type: ignore[attr-defined]
    assert any('"status":"cancelled"' in r for r in records)
    leftover = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, encoding="utf-8").stdout
    assert "test_slow.py" not in leftover


@pytest.mark.parametrize("tool", ["discover_tests", "run_tests"])
async def test_a_malformed_keyword_expression_is_an_error_not_every_test(
    make_client: Callable[..., Any], tool: str
) -> None:
    async with make_client({"test_a.py": "def test_a():\n    assert 1\n"}) as call:
        text = err(await call(tool, keyword="a and ("))
    assert "pytest refused the run" in text and "Wrong expression passed to '-k'" in text


async def test_check_flaky_refuses_a_node_id_that_names_no_test_and_out_of_range_runs(
    make_client: Callable[..., Any],
) -> None:
    async with make_client({"test_a.py": "def test_a():\n    assert 1\n"}) as call:
        text = err(await call("check_flaky", node_id="test_a.py::test_missing"))
        assert "names no test pytest collects" in text and "discover_tests" in text
        text = err(await call("check_flaky", node_id="test_a.py::test_a", runs=1000))
        assert "argument 'runs'" in text and "less than or equal to 20" in text
        tools = {t.name: t for t in await call.server.list_tools()}  # type: ignore[attr-defined]
        assert tools["check_flaky"].input_schema["properties"]["runs"]["maximum"] == 20
        assert not (await call("check_flaky", node_id="test_a.py::test_a", runs=2)).is_error


SLOW = {"test_slow.py": "import time\n\n\ndef test_slow():\n    time.sleep(2)\n"}


class Heard:
    """Progress notifications as a client gets them."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.values: list[float] = []

    async def __call__(self, done: float, total: float | None, message: str | None) -> None:
        self.values.append(done)
        self.messages.append(message or "")

    def beats(self) -> list[str]:
        return [m for m in self.messages if m.startswith("still running (")]


async def test_a_slow_test_still_sends_progress_saying_what_runs(make_client: Callable[..., Any]) -> None:
    heard = Heard()
    async with make_client(SLOW) as call:
        call.server.config.heartbeat_s = 0.3  # type: ignore[attr-defined]
        assert ok(await call("run_tests", progress=heard))["status"] == "passed"
    assert len(heard.beats()) >= 3, heard.messages
    assert any(m.endswith("): test_slow.py::test_slow") for m in heard.beats())
    assert heard.messages[-1] == "test_slow.py::test_slow: passed"
    assert all(a < b for a, b in zip(heard.values, heard.values[1:], strict=False))


async def test_check_flaky_heartbeats_name_the_run_and_the_test(make_client: Callable[..., Any]) -> None:
    heard = Heard()
    async with make_client(SLOW) as call:
        call.server.config.heartbeat_s = 0.3  # type: ignore[attr-defined]
        data = ok(await call("check_flaky", node_id="test_slow.py::test_slow", runs=2, progress=heard))
    assert data["verdict"] == "stable_pass"
    beats = heard.beats()
    assert any(m.endswith("): run 1 of 2 > test_slow.py::test_slow") for m in beats), heard.messages
    assert any(m.endswith("): run 2 of 2 > test_slow.py::test_slow") for m in beats), heard.messages
    # Only check_flaky's own counts are sent: runs, not the tests inside each run.
    assert [m for m in heard.messages if not m.startswith("still running")] == [
        "run 1: passed",
        "run 2: passed",
    ]


async def test_slow_collection_sends_heartbeats(make_client: Callable[..., Any]) -> None:
    heard = Heard()
    files = {"conftest.py": "import time\n\ntime.sleep(1.5)\n", "test_a.py": "def test_a():\n    pass\n"}
    async with make_client(files) as call:
        call.server.config.heartbeat_s = 0.3  # type: ignore[attr-defined]
        assert ok(await call("discover_tests", progress=heard))["node_ids"] == ["test_a.py::test_a"]
    assert len(heard.beats()) >= 2, heard.messages
    # Before pytest starts, the heartbeat names the tool; then what pytest is doing.
    named = {m.split("): ", 1)[1] for m in heard.beats()}
    said = {"testing.discover_tests", "pytest starting and collecting tests", "pytest finishing the session"}
    assert "pytest starting and collecting tests" in named and named <= said, heard.messages


async def test_affected_selection_ignores_untracked_non_source_and_flags_dynamic_imports(
    make_client: Callable[..., Any],
) -> None:
    from tests.helpers import git

    files = {
        "calc.py": "def add(a, b):\n    return a + b\n",
        "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
        "test_dynamic.py": "import importlib\n\n\ndef test_dyn():\n    assert importlib.import_module('calc')\n",
    }
    session = make_client(files)
    git(session.root, "init", "-q", "-b", "main")
    git(session.root, "add", "-A")
    git(session.root, "commit", "-q", "-m", "initial")
    async with session as call:
        (session.root / "cache.pyc").write_bytes(b"\x00")
        (session.root / "notes.txt").write_text("x\n", encoding="utf-8")
        quiet = ok(await call("run_affected_tests"))
        assert quiet["changed"] == [] and quiet["run"] is None
        assert "may be incomplete" in quiet["note"] and "test_dynamic.py" in quiet["note"]
        (session.root / "calc.py").write_text("def add(a, b):\n    return b + a\n", encoding="utf-8")
        data = ok(await call("run_affected_tests"))
        assert data["changed"] == ["calc.py"] and [s["path"] for s in data["selected"]] == ["test_calc.py"]
