"""The testing server: the project's own pytest and ruff. The only testing module that imports mcp."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from common.config import Settings, server_section
from common.server import AccountableServer
from common.tools import READ_ONLY, Tool, register_all

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


def register(server: AccountableServer, settings: Settings) -> None:
    """Add the testing tools to `server`: the domain functions, bound to one Project."""
    from servers.testing.project import Project
    from servers.testing.settings import TestingSettings

    options = server_section(settings, NAME, TestingSettings)
    project = Project.create(settings.root, settings.state_dir, options, settings.max_result_tokens)
    register_all(server, NAME, project, table)


def table() -> list[Tool]:
    """The testing tools; their modules are imported when the table is read (common.tools.register_all)."""
    from servers.testing import run, tools

    return [
        (tools.discover_tests, COLLECTS, "Discover tests"),
        (run.run_tests, RUNS_CODE, "Run tests"),
        (tools.run_affected_tests, RUNS_CODE, "Run affected tests"),
        (tools.lint, READ_ONLY, "Lint with ruff"),
        (tools.fix_lint, WRITES, "Apply ruff's safe fixes"),
        (tools.format_check, READ_ONLY, "Check formatting"),
        (tools.check_flaky, RUNS_CODE, "Check a test for flakiness"),
        (tools.test_history, READ_ONLY, "Test history"),
    ]


def build_server(settings: Settings) -> AccountableServer:
    from servers import build

    return build(NAME, settings)
