from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from servers.deploy.server import build_server
from tests.helpers import make_repo, settings_for

Call = Callable[..., Awaitable[CallToolResult]]


class Session:
    """An in-memory client for the deploy server on a directory."""

    def __init__(self, root: Path, options: dict[str, Any], policy: str | None = None) -> None:
        settings = settings_for(root, policy)
        if options:
            settings.servers["deploy"] = {**settings.servers.get("deploy", {}), **options}
        self.root = root
        self.settings = settings
        self.server = build_server(settings)

    async def __aenter__(self) -> Call:
        self.client = Client(self.server, mode="legacy")
        c = await self.client.__aenter__()

        async def call(tool: str, progress: Any = None, **arguments: Any) -> CallToolResult:
            return await c.call_tool(tool, arguments, progress_callback=progress)

        return call

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.__aexit__(*exc)


@pytest.fixture
def repo(tmp_path: Path) -> Callable[..., Path]:
    def factory(files: dict[str, str | bytes], name: str = "proj") -> Path:
        return make_repo(tmp_path / name, {".gitignore": "ignored/\n", **files})

    return factory


@pytest.fixture
def session() -> Callable[..., Session]:
    def factory(root: Path, policy: str | None = None, **options: Any) -> Session:
        return Session(root, options, policy)

    return factory
