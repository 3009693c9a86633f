from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import CallToolResult

from servers.data.server import build_server
from tests.helpers import make_repo, settings_for

Call = Callable[..., Awaitable[CallToolResult]]
SECRET = "ENV-CANARY-5e1f"
OUTSIDE = "OUTSIDE-CANARY-90ab"

SALES = 'id,region,amount,note\n1,north,10.5,"big, order"\n2,south,0,\n3,north,7.25,"said ""hi"""\n4,east,,plain\n'


def datasets() -> dict[str, str | bytes]:
    """Fixture files with the quirks real data has."""
    jsonl = "".join(json.dumps({"k": i, "tag": "t" + str(i % 2)}) + "\n" for i in range(5))
    return {
        "data/sales.csv": SALES,
        "data/bom.csv": b"\xef\xbb\xbfid,name\n1,ann\n2,bob\n",
        "data/mixed.csv": "code,value\n1,10\n2,x\nabc,30\n4,\n",
        "data/empty.csv": "",
        "data/header_only.csv": "a,b,c\n",
        "data/tabs.tsv": "x\ty\n1\thello\n2\tworld\n",
        "data/events.jsonl": jsonl,
        "data/events.jsonl.gz": gzip.compress(jsonl.encode("utf-8")),
        "data/sales.csv.gz": gzip.compress(SALES.encode("utf-8")),
        "README.md": "# data project\n",
        ".env": f"TOKEN={SECRET}\n",
        "secrets.csv": f"token\n{SECRET}\n",
    }


def write_parquet(path: Path, sql: str) -> None:
    import duckdb

    with duckdb.connect() as conn:
        conn.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "proj", datasets())
    write_parquet(
        root / "data" / "numbers.parquet",
        "SELECT i AS id, i % 7 AS bucket, i * 1.5 AS score, 'n' || (i % 3) AS label FROM range(100) t(i)",
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text(f"token\n{OUTSIDE}\n", encoding="utf-8")
    (tmp_path / "proj-old").mkdir()
    (tmp_path / "proj-old" / "data.csv").write_text(f"token\n{OUTSIDE}\n", encoding="utf-8")
    (root / "data" / "link_out.csv").symlink_to(outside / "secret.csv")
    return root


DENY_SECRETS = """
[policy]
deny = ["data.*(path=secrets.csv)"]
ask = ["data.*(path=data/held/**)"]
"""


@pytest.fixture
async def call(project: Path, tmp_path: Path) -> AsyncIterator[Call]:
    server = build_server(settings_for(project, DENY_SECRETS, tmp=tmp_path))
    async with Client(server, mode="legacy") as client:

        async def _call(tool: str, **arguments: Any) -> CallToolResult:
            return await client.call_tool(tool, arguments)

        _call.server = server  # type: ignore[attr-defined]
        yield _call


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content) + str(result.structured_content)
