"""The testing tools never carry a denied file's content: not in diffs, diagnostics or tracebacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from servers.testing.server import build_server
from tests.helpers import all_audit_text, settings_for
from tests.testing.conftest import project

pytestmark = pytest.mark.anyio

CANARY = "ENVCANARY5e1f"


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content) + str(result.structured_content)


# A repository whose ruff configuration pulls the denied file in, and whose test quotes it.
FILES = {
    "ruff.toml": 'extend-include = [".env"]\nrespect-gitignore = false\n[lint]\nselect = ["F", "E"]\n',
    # Valid Python, badly formatted, with an unused name: format_check and lint both report it.
    ".env": f"import os\nTOKEN  =  '{CANARY}'\n",
    "secrets/conf.py": f"VALUE = '{CANARY}'\n\n\ndef check():\n    assert VALUE == 'x', '{CANARY}'\n",
    "test_uses_secret.py": ("from secrets_pkg import check\n\n\ndef test_it():\n    check()\n"),
    "secrets_pkg.py": f"def check():\n    value = '{CANARY}'\n    assert value == 'x'\n",
    "test_ok.py": "def test_ok():\n    assert 1\n",
}
POLICY = """
[policy]
deny = ["testing.*(path=secrets/**)", "testing.*(path=secrets_pkg.py)"]
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return project(tmp_path / "proj", FILES)


async def call_all(
    root: Path, tmp_path: Path, calls: list[tuple[str, dict[str, Any]]]
) -> list[CallToolResult]:
    server = build_server(settings_for(root, POLICY, tmp=tmp_path))
    out = []
    async with Client(server, mode="legacy") as c:
        for tool, arguments in calls:
            out.append(await c.call_tool(tool, arguments))
    assert CANARY not in all_audit_text(server.config.audit_path)
    return out


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("format_check", {"paths": [".env"]}),
        ("format_check", {"paths": '[".env"]'}),  # a list sent as a JSON string is parsed by the SDK
        ("lint", {"paths": ["src/../.env"]}),
        ("fix_lint", {"paths": [".env"]}),
        ("run_tests", {"targets": [".env"]}),
        ("run_tests", {"targets": ["secrets/conf.py::test_x"]}),
        ("check_flaky", {"node_id": "secrets/conf.py::check"}),
        ("discover_tests", {"path": "secrets"}),
        ("test_history", {"node_id": ".env::x"}),
    ],
)
async def test_every_path_like_argument_is_checked_whatever_its_name(
    root: Path, tmp_path: Path, tool: str, arguments: dict[str, Any]
) -> None:
    before = (root / ".env").read_text(encoding="utf-8")
    (result,) = await call_all(root, tmp_path, [(tool, arguments)])
    assert result.is_error and "Denied by policy" in text_of(result), text_of(result)
    assert CANARY not in text_of(result)
    assert (root / ".env").read_text(encoding="utf-8") == before


async def test_whole_tree_lint_and_format_withhold_the_denied_files_ruff_was_told_to_read(
    root: Path, tmp_path: Path
) -> None:
    lint, fmt = await call_all(root, tmp_path, [("lint", {}), ("format_check", {})])
    for result in (lint, fmt):
        assert not result.is_error
        assert CANARY not in text_of(result)
        data = result.structured_content
        assert data is not None and ".env" in data["excluded_files"]
        assert "withheld by policy" in data["note"]
    assert {d["path"] for d in fmt.structured_content["diffs"]}.isdisjoint({".env"})  # type: ignore[index]


async def test_a_failing_tests_traceback_that_quotes_a_denied_file_is_withheld_but_the_failure_stays(
    root: Path, tmp_path: Path
) -> None:
    (run,) = await call_all(root, tmp_path, [("run_tests", {})])
    data = run.structured_content
    assert data is not None and data["status"] == "failed"
    assert CANARY not in text_of(run)
    (failure,) = data["failures"]
    assert failure["node_id"] == "test_uses_secret.py::test_it"
    assert "withheld by policy" in failure["message"] and failure["traceback"] == ""
    assert "secrets_pkg.py" in data["excluded_files"]


async def test_a_rule_sees_the_validated_value_not_the_raw_json(tmp_path: Path) -> None:
    root = project(tmp_path / "proj", {"test_a.py": "def test_a():\n    assert 1\n"})
    server = build_server(
        settings_for(root, '[policy]\ndeny = ["testing.run_tests(last_failed=true)"]\n', tmp=tmp_path)
    )
    async with Client(server, mode="legacy") as c:
        for spelling in (True, "yes", "true", 1, "on"):
            result = await c.call_tool("run_tests", {"last_failed": spelling})
            assert result.is_error and "Denied by policy" in text_of(result), spelling
        assert not (await c.call_tool("run_tests", {"last_failed": "no"})).is_error


async def test_a_ruff_config_that_reaches_outside_the_root_is_refused_without_echoing_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    # Not valid TOML: ruff's parse error quotes the offending line.
    (home / ".aws" / "credentials").write_text(
        f"[default]\naws_secret_access_key = {CANARY}\n", encoding="utf-8"
    )
    root = project(
        tmp_path / "proj",
        {"ruff.toml": f'extend = "{home / ".aws" / "credentials"}"\n', "mod.py": "x = 1\n"},
    )
    server = build_server(settings_for(root, tmp=tmp_path))
    async with Client(server, mode="legacy") as c:
        for tool in ("lint", "format_check"):
            result = await c.call_tool(tool, {})
            assert result.is_error, text_of(result)
            assert CANARY not in text_of(result) and ".aws" not in text_of(result)
            assert "ruff.toml' sets extend to a path outside the project root" in text_of(result)
    assert CANARY not in all_audit_text(server.config.audit_path)


@pytest.mark.parametrize(
    ("config_name", "config"),
    [
        ("ruff.toml", 'src = ["../elsewhere"]\n'),
        ("ruff.toml", 'cache-dir = "/tmp/onrecord-ruff-cache-attack"\n'),
        ("ruff.toml", 'include = ["../../**/*.py"]\n'),
        ("pyproject.toml", '[tool.ruff]\nextend = "~/.config/ruff/ruff.toml"\n'),
        ("sub/.ruff.toml", 'extend = "../../outside.toml"\n'),
        ("ruff.toml", '[lint]\nnamespace-packages = ["/usr/lib"]\n'),
    ],
)
async def test_every_ruff_setting_that_names_a_path_is_kept_inside_the_root(
    tmp_path: Path, config_name: str, config: str
) -> None:
    root = project(tmp_path / "proj", {config_name: config, "mod.py": "x = 1\n", "sub/m.py": "y = 2\n"})
    server = build_server(settings_for(root, tmp=tmp_path))
    async with Client(server, mode="legacy") as c:
        for tool in ("lint", "format_check"):
            result = await c.call_tool(tool, {})
            assert result.is_error and "outside the project root" in text_of(result), (tool, text_of(result))


async def test_a_project_fix_setting_cannot_make_lint_write(tmp_path: Path) -> None:
    source = "import os\nimport sys\n\nx = 1\n"
    root = project(
        tmp_path / "proj",
        {"pyproject.toml": '[tool.ruff]\nfix = true\n[tool.ruff.lint]\nselect = ["F"]\n', "mod.py": source},
    )
    server = build_server(settings_for(root, tmp=tmp_path))
    async with Client(server, mode="legacy") as c:
        result = await c.call_tool("lint", {})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["total"] == 2  # both unused imports reported ...
    assert (root / "mod.py").read_text(encoding="utf-8") == source  # ... and nothing rewritten


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("run_tests", {"targets": ["@args.txt"]}),
        ("run_tests", {"targets": ["-p", "no:cacheprovider"]}),
        ("check_flaky", {"node_id": "@args.txt::x"}),
        ("discover_tests", {"path": "@args.txt"}),
        ("lint", {"paths": ["@args.txt"]}),
        ("format_check", {"paths": ["--diff"]}),
    ],
)
async def test_targets_that_read_as_options_or_argument_files_are_refused(
    tmp_path: Path, tool: str, arguments: dict[str, Any]
) -> None:
    outside = tmp_path / "written-by-attack"
    root = project(
        tmp_path / "proj",
        {
            "args.txt": f"--junitxml={outside}\n",
            "@args.txt": f"--junitxml={outside}\n",
            "test_a.py": "def test_a():\n    assert 1\n",
        },
    )
    server = build_server(settings_for(root, tmp=tmp_path))
    async with Client(server, mode="legacy") as c:
        result = await c.call_tool(tool, arguments)
    assert result.is_error and "not an option or an @file" in text_of(result), text_of(result)
    assert not outside.exists()


async def test_collection_errors_and_affected_runs_that_quote_a_denied_file_are_withheld(
    tmp_path: Path,
) -> None:
    from tests.helpers import git

    root = project(
        tmp_path / "proj",
        {
            "secrets_pkg.py": f"raise RuntimeError('{CANARY} at import')\n",
            "test_imports_secret.py": "import secrets_pkg\n\n\ndef test_x():\n    assert 1\n",
            "test_ok.py": "def test_ok():\n    assert 1\n",
        },
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    (root / "secrets_pkg.py").write_text(f"raise RuntimeError('{CANARY} changed')\n", encoding="utf-8")
    discovered, affected = await call_all(
        root, tmp_path, [("discover_tests", {}), ("run_affected_tests", {"base": "HEAD"})]
    )
    for result in (discovered, affected):
        assert not result.is_error, text_of(result)
        shown = text_of(result)
        where = shown.find(CANARY)
        assert where < 0, shown[max(0, where - 300) : where + 100]
    errors = discovered.structured_content["collection_errors"]  # type: ignore[index]
    assert [e["nodeid"] for e in errors] == ["test_imports_secret.py"]  # still reported, text withheld
    assert "withheld by policy" in errors[0]["message"]


async def test_a_ruff_config_hidden_in_an_ignored_folder_is_checked_when_ruff_would_read_it(
    tmp_path: Path,
) -> None:
    from tests.helpers import git

    root = project(
        tmp_path / "proj",
        {
            ".gitignore": "generated/\n",
            "ruff.toml": "respect-gitignore = false\n",
            "generated/ruff.toml": 'extend = "/etc/passwd"\n',
            "generated/m.py": "x = 1\n",
            "mod.py": "y = 2\n",
        },
    )
    git(root, "init", "-q", "-b", "main")
    (lint,) = await call_all(root, tmp_path, [("lint", {})])
    assert lint.is_error and "generated/ruff.toml' sets extend to a path outside" in text_of(lint)
    assert "root:" not in text_of(lint)  # nothing of /etc/passwd
