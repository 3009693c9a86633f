"""No result exceeds the budget, whatever the arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from common.budget import estimate_tokens
from servers.repo.server import build_server
from tests.helpers import first_text, git, make_repo, settings_for, write

pytestmark = pytest.mark.anyio
BIG = 10**9  # a line number past any file's end: the window stops at the end


def big_project(root: Path) -> Path:
    files: dict[str, str | bytes] = {
        f"pkg/mod_{i:04d}.py": "".join(
            f"def get_{i}_{j}(value):\n    return value + {j}\n\n" for j in range(8)
        )
        for i in range(600)
    }
    files.update({f"data/item_{i:05d}.txt": f"{i}\n" for i in range(1100)})
    files["pkg/huge.py"] = "".join(
        f"class C{i}:\n    def get(self):\n        return {i}\n" for i in range(6000)
    )
    make_repo(root, files)
    write(root, {f"pkg/mod_{i:04d}.py": f"# edited {i}\n" + "x = 1\n" * 50 for i in range(120)})
    return root


async def test_every_tool_stays_within_budget_with_maximal_arguments(tmp_path: Path) -> None:
    root = big_project(tmp_path / "big")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "big rewrite")
    write(root, {f"pkg/mod_{i:04d}.py": "changed again\n" * 40 for i in range(200, 320)})
    calls: list[tuple[str, dict[str, Any]]] = [
        ("overview", {}),
        ("list_files", {"limit": 1000, "include_ignored": True}),
        ("read_file", {"path": "pkg/huge.py", "end_line": BIG}),
        ("search", {"query": "get", "limit": 500, "context_lines": 10}),
        ("outline", {"path": "pkg/huge.py"}),
        ("find_symbol", {"name": "get", "include_references": True, "limit": 500}),
        ("git_status", {}),
        ("git_diff", {"context_lines": 50}),
        ("git_log", {"limit": 100}),
        ("git_show", {"rev": "HEAD"}),
        ("git_blame", {"path": "pkg/huge.py", "end_line": BIG}),
        ("related_files", {"path": "pkg/mod_0001.py", "limit": 100}),
    ]
    server = build_server(settings_for(root, tmp=tmp_path))
    async with Client(server) as client:
        for tool, args in calls:
            result = await client.call_tool(tool, args)
            assert result.is_error is False, (tool, first_text(result))
            tokens = estimate_tokens(first_text(result))
            assert tokens < 22_000, (tool, tokens)
            data = result.structured_content
            if tool in (
                "list_files",
                "read_file",
                "search",
                "outline",
                "find_symbol",
                "git_diff",
                "git_show",
                "git_blame",
            ):
                assert data["truncated"] is True and data["note"], tool
