from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from servers.evals.server import build_server
from tests.helpers import make_repo, settings_for

Call = Callable[..., Awaitable[CallToolResult]]


def csv(header: list[str], rows: list[list[Any]]) -> str:
    lines = [",".join(header)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


class Session:
    """An in-memory client for the evals server on a repository made from files."""

    def __init__(self, root: Path, options: dict[str, Any], policy: str | None = None) -> None:
        settings = settings_for(root, policy)
        if options or "evals" not in settings.servers:
            settings.servers["evals"] = {"bootstrap": 200, **options}
        self.root = root
        self.server = build_server(settings)

    async def __aenter__(self) -> Call:
        self.client = Client(self.server, mode="legacy")
        c = await self.client.__aenter__()

        async def call(tool: str, progress: Any = None, **arguments: Any) -> CallToolResult:
            return await c.call_tool(tool, arguments, progress_callback=progress)

        call.root = self.root  # type: ignore[attr-defined]
        return call

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.__aexit__(*exc)


@pytest.fixture
def make_client(tmp_path: Path) -> Callable[..., Session]:
    def factory(files: dict[str, str | bytes], name: str = "proj", **options: Any) -> Session:
        root = make_repo(tmp_path / name, {".gitignore": "", **files})
        return Session(root, options)

    return factory


@pytest.fixture
async def evals(make_client: Callable[..., Session]) -> AsyncIterator[Call]:
    async with make_client({"README.md": "eval project\n"}) as call:
        yield call
