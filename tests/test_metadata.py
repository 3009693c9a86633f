"""What clients read of every tool: strict input schemas and descriptions without indentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from servers import SERVERS, build
from tests.helpers import make_repo, settings_for

pytestmark = pytest.mark.anyio


async def test_every_tool_refuses_unknown_arguments_and_reads_cleanly(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"README.md": "x\n"})
    server = build("all", settings_for(root, tmp=tmp_path))
    tools = await server.list_tools()
    # `all` serves every server's tools, each once: as many as the servers serve on their own.
    alone = [await build(name, settings_for(root, tmp=tmp_path)).list_tools() for name in SERVERS]
    assert len(tools) == sum(len(t) for t in alone) == len({t.name for t in tools}) >= 32
    for tool in tools:
        assert tool.input_schema.get("additionalProperties") is False, tool.name
        assert tool.description and not any(
            line.startswith((" ", "\t")) for line in tool.description.splitlines()
        ), tool.name
