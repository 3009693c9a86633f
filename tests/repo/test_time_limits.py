"""Slow inputs are stopped by limits.call_timeout_s, and never hold up another call meanwhile."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from mcp import Client

from servers.repo.server import build_server
from tests.helpers import first_text, make_repo, settings_for

pytestmark = pytest.mark.anyio

BODY = "".join(f"def target_{i}(x):\n    return target(x) + {i}\n\n" for i in range(400))


@pytest.fixture(scope="module")
def big_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    files: dict[str, str | bytes] = {
        f"pkg/m{i:04d}.py": BODY + "\ndef target(x):\n    return x\n" for i in range(600)
    }
    files["README.md"] = "hello\n"
    return make_repo(tmp_path_factory.mktemp("big") / "proj", files)


async def test_a_slow_find_symbol_is_stopped_by_the_call_limit_while_other_calls_answer(
    big_repo: Path, tmp_path: Path
) -> None:
    server = build_server(settings_for(big_repo, "[limits]\ncall_timeout_s = 1\n", tmp=tmp_path))
    slow: dict[str, float | str] = {}
    quick: list[float] = []
    async with Client(server, mode="legacy") as client:

        async def find() -> None:
            started = time.monotonic()
            result = await client.call_tool("find_symbol", {"name": "target", "include_references": True})
            slow["seconds"] = time.monotonic() - started
            slow["text"] = first_text(result)  # type: ignore[union-attr]

        async def read_while_it_runs() -> None:
            await anyio.sleep(0.3)
            for _ in range(3):
                started = time.monotonic()
                result = await client.call_tool("read_file", {"path": "README.md"})
                quick.append(time.monotonic() - started)
                assert not result.is_error

        async with anyio.create_task_group() as tg:
            tg.start_soon(find)
            tg.start_soon(read_while_it_runs)
    assert "call limit" in str(slow["text"]), slow
    assert float(slow["seconds"]) < 1 + 2
    assert max(quick) < 0.9, quick
