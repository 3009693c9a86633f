"""The testing server: the project's own pytest and ruff. The only testing module that imports mcp."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.types import ToolAnnotations
from pydantic import Field

from common import kinds
from common.config import Settings
from common.server import AccountableServer
from servers.testing import run, tools
from servers.testing.models import (
    AffectedResult,
    Discovery,
    FixResult,
    FlakyResult,
    FormatResult,
    HistoryResult,
    LintResult,
    RunResult,
)
from servers.testing.project import Project

NAME = "testing"
INSTRUCTIONS = (
    "Runs the project's own pytest and ruff in the project's environment. run_tests returns a status "
    "computed before anything is cut, counts, failures with trimmed tracebacks and failure_groups "
    "(many failures, one cause); run_affected_tests picks the tests your change can break; lint and "
    "format_check report ruff findings grouped by rule and file."
)
RUNS_CODE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
COLLECTS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
)
READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)

Targets = Annotated[
    list[str] | None,
    Field(
        description="Node ids or paths, e.g. ['tests/test_api.py::test_login', 'tests/unit']; default: all"
    ),
    kinds.NODE_IDS,
]
Keyword = Annotated[str | None, Field(description="pytest -k expression, e.g. 'login and not slow'")]
Marker = Annotated[str | None, Field(description="pytest -m expression, e.g. 'not integration'")]
LastFailed = Annotated[bool, Field(description="Run only the tests that failed last time (all if none did)")]
MaxFailures = Annotated[int | None, Field(description="Stop after this many failures")]
Timeout = Annotated[int, Field(description="Seconds before the run is stopped (1 to 86400)")]
Workers = Annotated[
    int | Literal["auto"] | None, Field(description="Parallel workers (needs pytest-xdist in the project)")
]
Paths = Annotated[
    list[str] | None,
    Field(description="Files or directories, relative to the root; default: all"),
    kinds.PATHS,
]
Select = Annotated[list[str] | None, Field(description="Only these rule codes, e.g. ['F', 'E501']")]
NodeId = Annotated[
    str, Field(description="One test's node id, e.g. 'tests/test_api.py::test_login'"), kinds.NODE_ID
]


def _progress(ctx: Context[Any, Any]) -> run.Progress:
    async def report(done: int, total: int | None, message: str) -> None:
        await ctx.report_progress(done, total, message)

    return report


def register(server: AccountableServer, settings: Settings) -> None:
    """Add the testing tools to `server`."""
    project = Project.create(
        settings.root, settings.state_dir, settings.servers.get(NAME, {}), settings.max_result_tokens
    )

    async def discover_tests(
        path: Annotated[
            str | None, Field(description="A file or directory to collect from"), kinds.PATH
        ] = None,
        keyword: Keyword = None,
        marker: Marker = None,
        limit: Annotated[int, Field(description="Node ids per page (at most 5000)")] = 500,
        cursor: Annotated[str | None, Field(description="next_cursor of a previous call")] = None,
    ) -> Discovery:
        """Collect tests without running them: node ids and collection errors with their messages.
        Collection imports the project's test modules."""
        return await tools.discover_tests(project, path, keyword, marker, limit, cursor)

    async def run_tests(
        ctx: Context[Any, Any],
        targets: Targets = None,
        keyword: Keyword = None,
        marker: Marker = None,
        last_failed: LastFailed = False,
        max_failures: MaxFailures = None,
        timeout_s: Timeout = 600,
        workers: Workers = None,
    ) -> RunResult:
        """Run tests and return status (passed, failed, error, timeout, no_tests, interrupted), counts,
        failures with trimmed tracebacks, failure_groups (failures sharing one cause), the slowest tests
        and the run id. Sends progress notifications per finished test."""
        return await run.run_tests(
            project, targets, keyword, marker, last_failed, max_failures, timeout_s, workers, _progress(ctx)
        )

    async def run_affected_tests(
        ctx: Context[Any, Any],
        base: Annotated[
            str, Field(description="Compare the working tree with this revision"), kinds.REV
        ] = "HEAD",
        keyword: Keyword = None,
        marker: Marker = None,
        last_failed: LastFailed = False,
        max_failures: MaxFailures = None,
        timeout_s: Timeout = 600,
        workers: Workers = None,
    ) -> AffectedResult:
        """Run only the tests a change can affect: changed test files, and tests whose modules import
        changed modules (transitively). Says why each test file was selected, then the run_tests result."""
        return await tools.run_affected_tests(
            project,
            base,
            _progress(ctx),
            keyword=keyword,
            marker=marker,
            last_failed=last_failed,
            max_failures=max_failures,
            timeout_s=timeout_s,
            workers=workers,
        )

    async def lint(paths: Paths = None, select: Select = None) -> LintResult:
        """ruff check: diagnostics grouped by file, counts by rule. Reads only (ruff runs with --no-fix,
        whatever the project's configuration says); fix_lint applies fixes."""
        return await tools.lint(project, paths, select)

    async def fix_lint(paths: Paths = None, select: Select = None) -> FixResult:
        """Apply ruff's safe fixes to the files (a write): what changed per file, how many diagnostics
        were fixed, and the diagnostics left."""
        return await tools.fix_lint(project, paths, select)

    async def format_check(paths: Paths = None) -> FormatResult:
        """ruff format --check: the files ruff would reformat, with a bounded diff. Writes nothing."""
        return await tools.format_check(project, paths)

    async def check_flaky(
        ctx: Context[Any, Any],
        node_id: NodeId,
        runs: Annotated[int, Field(description="How many times to run it (2 to 20)")] = 5,
    ) -> FlakyResult:
        """Run one test several times: the outcome of each run and a verdict (stable_pass, stable_fail, flaky)."""
        return await tools.check_flaky(project, node_id, runs, _progress(ctx))

    async def test_history(
        node_id: NodeId,
        limit: Annotated[int, Field(description="Recent runs to return (at most 500)")] = 20,
    ) -> HistoryResult:
        """Recent recorded outcomes of one test (with HEAD and dirty flag), its pass rate and flaky rate."""
        return await tools.test_history(project, node_id, limit)

    for fn, hints, title in [
        (discover_tests, COLLECTS, "Discover tests"),
        (run_tests, RUNS_CODE, "Run tests"),
        (run_affected_tests, RUNS_CODE, "Run affected tests"),
        (lint, READ_ONLY, "Lint with ruff"),
        (fix_lint, WRITES, "Apply ruff's safe fixes"),
        (format_check, READ_ONLY, "Check formatting"),
        (check_flaky, RUNS_CODE, "Check a test for flakiness"),
        (test_history, READ_ONLY, "Test history"),
    ]:
        server.add_tool(fn, title=title, annotations=hints, structured_output=True, server=NAME)


def build_server(settings: Settings) -> AccountableServer:
    from servers import build

    return build(NAME, settings)
