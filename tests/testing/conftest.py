from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from servers.testing.server import build_server
from tests.helpers import settings_for

Call = Callable[..., Awaitable[CallToolResult]]

# The fixture projects carry their own conftest and no pytest config of ours.
FAILING = {
    "calc.py": """\
        def add(a, b):
            return a + b


        def scale(v):
            return v * "x" + 1
        """,
    "tests/test_calc.py": """\
        import pytest

        from calc import add, scale


        def test_add():
            assert add(1, 2) == 3


        @pytest.mark.parametrize("v", list(range(8)))
        def test_scale(v):
            scale(v)


        def test_wrong():
            assert add(2, 2) == 5


        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert False


        @pytest.mark.xfail(reason="fixed already")
        def test_xpass():
            assert add(1, 1) == 2


        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass


        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")


        def test_uses_broken(broken):
            pass


        @pytest.mark.parametrize("name", ["a b", "c::d", "e/f", "ü", "[x]"])
        def test_odd_ids(name):
            assert name
        """,
}


def project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


@pytest.fixture
def make_client(tmp_path: Path) -> Callable[..., Any]:
    """An in-memory client for a fixture project made from files."""

    def factory(files: dict[str, str], name: str = "proj", **options: Any) -> Any:
        root = project(tmp_path / name, files)
        settings = settings_for(root, tmp=tmp_path)
        if options:
            settings.servers["testing"] = options
        server = build_server(settings)

        class Session:
            def __init__(self) -> None:
                self.root = root
                self.server = server

            async def __aenter__(self) -> Call:
                self.client = Client(server, mode="legacy")
                c = await self.client.__aenter__()

                async def call(tool: str, progress: Any = None, **arguments: Any) -> CallToolResult:
                    return await c.call_tool(tool, arguments, progress_callback=progress)

                call.root = root  # type: ignore[attr-defined]
                call.server = server  # type: ignore[attr-defined]
                return call

            async def __aexit__(self, *exc: Any) -> None:
                await self.client.__aexit__(*exc)

        return Session()

    return factory


@pytest.fixture
async def failing(make_client: Callable[..., Any]) -> AsyncIterator[Call]:
    async with make_client(FAILING) as call:
        yield call
