from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from servers.repo.server import build_server
from tests.helpers import commit, make_repo, settings_for

Call = Callable[..., Awaitable[CallToolResult]]

SAMPLE: dict[str, str | bytes] = {
    "README.md": "# sample\n\nA sample project.\n",
    "pyproject.toml": '[project]\nname = "sample"\n',
    ".gitignore": "build/\n*.log\n",
    "pkg/__init__.py": '"""The sample package."""\n',
    "pkg/core.py": '''\
        """Core logic."""

        import os

        from pkg.util import helper

        LIMIT = 10


        class Engine:
            """Runs things."""

            def start(self, n: int) -> int:
                """Start the engine."""
                return helper(n) + LIMIT

            async def stop(self) -> None:
                return None


        def compute(x: int) -> int:
            """Compute a value."""
            return Engine().start(x)
        ''',
    "pkg/util.py": '"""Helpers."""\n\n\ndef helper(n: int) -> int:\n    return n * 2\n',
    "tests/test_core.py": "from pkg.core import compute\n\n\ndef test_compute():\n    assert compute(1) == 12\n",
    "web/app.ts": "export function render(x: number): string {\n  return String(x)\n}\nexport class View {}\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "proj", SAMPLE, "initial commit")
    commit(
        root,
        {"pkg/util.py": '"""Helpers."""\n\n\ndef helper(n: int) -> int:\n    return n * 2 + 0\n'},
        "tweak helper",
    )
    commit(
        root,
        {
            "pkg/core.py": (root / "pkg/core.py").read_text(encoding="utf-8") + "\n# note\n",
            "tests/test_core.py": (root / "tests/test_core.py").read_text(encoding="utf-8") + "\n",
        },
        "touch core and test",
    )
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("TOP SECRET outside the root\n", encoding="utf-8")
    return root


@pytest.fixture
async def call(repo: Path, tmp_path: Path) -> AsyncIterator[Call]:
    server = build_server(settings_for(repo, tmp=tmp_path))
    async with Client(server, mode="legacy") as client:

        async def _call(tool: str, **arguments: Any) -> CallToolResult:
            return await client.call_tool(tool, arguments)

        _call.server = server  # type: ignore[attr-defined]
        yield _call
