"""The sandbox: every way out is refused, and a refusal leaves nothing behind and leaks nothing.

Each test plants canaries in files outside the root or denied by policy, sends the attack, and
asserts the refusal, that no canary reaches the result or the audit log, and that no file changed.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from servers.data.server import build_server
from tests.data.conftest import DENY_SECRETS, OUTSIDE, SECRET, Call, text_of
from tests.helpers import all_audit_text, err, ok, settings_for

pytestmark = pytest.mark.anyio


def snapshot(*folders: Path) -> dict[str, tuple[int, float]]:
    found: dict[str, tuple[int, float]] = {}
    for folder in folders:
        for dirpath, _, filenames in os.walk(folder):
            for name in filenames:
                path = Path(dirpath) / name
                info = path.lstat()
                found[str(path)] = (info.st_size, info.st_mtime)
    return found


@pytest.fixture
def refused(call: Call, project: Path, tmp_path: Path) -> Callable[[str], Any]:
    """Send `sql`; assert it is refused, leaks no canary and changes no file. Returns the message."""

    async def check(sql: str) -> str:
        watched = (project, tmp_path / "outside", tmp_path / "proj-old")
        before = snapshot(*watched)
        result = await call("query", sql=sql)
        message = err(result)
        shown = text_of(result)
        assert OUTSIDE not in shown and SECRET not in shown, shown
        assert OUTSIDE not in all_audit_text(tmp_path / "state")
        assert SECRET not in all_audit_text(tmp_path / "state")
        assert snapshot(*watched) == before
        assert not list(tmp_path.glob("**/*.duckdb")) and not (project / "out.csv").exists()
        return message

    return check


@pytest.mark.parametrize(
    "template",
    [
        "SELECT * FROM read_csv('{outside}/secret.csv')",
        "SELECT * FROM '{outside}/secret.csv'",
        "SELECT * FROM '../outside/secret.csv'",
        "SELECT * FROM 'data/../../outside/secret.csv'",
        "SELECT * FROM read_csv('{root}/../outside/secret.csv')",
        "SELECT * FROM read_csv('{root}-old/data.csv')",  # a sibling whose name starts with the root's
        "SELECT * FROM '../proj-old/data.csv'",
        "SELECT * FROM 'data/link_out.csv'",  # a symlink inside the root pointing out
        "SELECT * FROM read_csv('{root}/data/link_out.csv')",
        "SELECT * FROM read_text('{outside}/secret.csv')",
        "SELECT * FROM read_blob('{outside}/secret.csv')",
        "SELECT * FROM glob('{outside}/*')",
        "SELECT * FROM glob('{root}/*')",
        "SELECT * FROM sniff_csv('{outside}/secret.csv')",
        "SELECT * FROM read_csv('{outside}/' || 'secret.csv')",
        "SELECT * FROM read_csv('data/*.csv')",
        "SELECT * FROM parquet_metadata('{outside}/secret.csv')",
        "SELECT * FROM read_text('/etc/passwd')",
    ],
)
async def test_reading_outside_the_root_is_refused(
    refused: Callable[[str], Any], project: Path, tmp_path: Path, template: str
) -> None:
    sql = template.format(outside=tmp_path / "outside", root=project)
    await refused(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM 'http://127.0.0.1:9/x.csv'",
        "SELECT * FROM read_csv('https://example.com/data.csv')",
        "SELECT * FROM read_parquet('s3://bucket/key.parquet')",
        "SELECT * FROM read_json('gcs://bucket/x.json')",
        "SELECT * FROM read_csv('hf://datasets/x/y.csv')",
    ],
)
async def test_network_urls_are_refused(refused: Callable[[str], Any], sql: str) -> None:
    await refused(sql)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("COPY (SELECT 1) TO 'out.csv'", "COPY"),
        ("COPY (SELECT * FROM 'data/sales.csv') TO '{outside}/stolen.csv'", "COPY"),
        ("EXPORT DATABASE 'exported'", "EXPORT"),
        ("ATTACH 'new.duckdb' AS n", "ATTACH"),
        ("ATTACH '{outside}/x.duckdb'", "ATTACH"),
        ("INSTALL httpfs", "LOAD"),
        ("LOAD httpfs", "LOAD"),
        ("FORCE INSTALL httpfs FROM 'http://127.0.0.1:9'", "LOAD"),
        ("SET enable_external_access = true", "SET"),
        ("SET allowed_directories = ['/']", "SET"),
        ("RESET lock_configuration", "SET"),
        ("SET VARIABLE x = 1", "SET"),
        ("PRAGMA enable_profiling", "PRAGMA"),
        ("CALL pragma_version()", "CALL"),
        ("CREATE TABLE t AS SELECT 1", "CREATE"),
        ("CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')", "CREATE"),
        ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN"),
        ("USE memory", "SET"),
        ("CHECKPOINT", "CALL"),
    ],
)
async def test_statements_that_are_not_reads_are_refused_before_running(
    refused: Callable[[str], Any], tmp_path: Path, sql: str, kind: str
) -> None:
    message = await refused(sql.format(outside=tmp_path / "outside"))
    assert f"{kind} statements are not allowed" in message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1; COPY (SELECT 1) TO 'out.csv'",
        "SELECT 1; SELECT 2",
        "SELECT 1;\n-- comment\nATTACH 'new.duckdb'",
    ],
)
async def test_more_than_one_statement_is_refused(refused: Callable[[str], Any], sql: str) -> None:
    assert "statements; pass exactly one" in await refused(sql)


async def test_a_read_statement_cannot_smuggle_another_through_query(refused: Callable[[str], Any]) -> None:
    await refused("SELECT * FROM query('COPY (SELECT 1) TO ''out.csv''')")
    await refused("SELECT * FROM query('SELECT * FROM ''../outside/secret.csv''')")


async def test_the_settings_cannot_be_changed_and_read_back_as_locked(call: Call) -> None:
    data = ok(
        await call(
            "query",
            sql="SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('enable_external_access', 'lock_configuration', 'autoload_known_extensions', "
            "'autoinstall_known_extensions', 'allowed_directories') ORDER BY name",
        )
    )
    settings = dict(data["rows"])
    # DuckDB adds its own spill directory (private to this call) and nothing else.
    allowed = settings.pop("allowed_directories")
    assert re.fullmatch(r"\[(/[^,\]]*/onrecord-data-[^/,\]]+/spill/)?\]", allowed), allowed
    assert settings == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "enable_external_access": "false",
        "lock_configuration": "true",
    }


async def test_home_directory_paths_are_refused(
    refused: Callable[[str], Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "outside"))
    assert "home directory" in await refused("SELECT * FROM read_csv('~/secret.csv')")
    await refused("SELECT * FROM read_csv('~' || '/secret.csv')")
    await refused("SELECT * FROM read_csv({'file': '~/secret.csv'})")


async def test_home_directory_inside_the_root_does_not_widen_the_sandbox(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # duckdb/duckdb#26064: the allow check expands `~` with $HOME, the open with the connection's
    # home_directory. Ours is a private empty directory, so a `~` path opens nothing either way.
    monkeypatch.setenv("HOME", str(project / "data"))
    server = build_server(settings_for(project, tmp=tmp_path))
    async with Client(server, mode="legacy") as client:
        result = await client.call_tool(
            "query", {"sql": "SELECT count(*) FROM 'data/sales.csv', read_csv('~' || '/sales.csv')"}
        )
    assert result.is_error


async def test_env_in_the_root_is_refused_by_the_default_denies(refused: Callable[[str], Any]) -> None:
    message = await refused("SELECT * FROM read_csv('.env')")
    assert "policy does not let you read" in message
    await refused("SELECT * FROM read_text('.env')")
    await refused("SELECT * FROM read_csv('data/../.env')")


async def test_a_denied_name_gets_one_answer_whether_or_not_the_file_exists(
    refused: Callable[[str], Any], project: Path
) -> None:
    """The policy is asked before the file system: a missing `.env.local` is refused in the very
    words an existing `.env` is, so the answer does not tell which exists."""
    assert not (project / ".env.local").exists() and (project / ".env").exists()
    there = await refused("SELECT * FROM read_csv('.env')")
    missing = await refused("SELECT * FROM read_csv('.env.local')")
    assert missing == there.replace("'.env'", "'.env.local'")
    assert "policy does not let you read" in missing


async def test_a_file_the_sql_names_and_the_policy_denies_is_a_refusal_of_the_call(
    refused: Callable[[str], Any], tmp_path: Path
) -> None:
    """The refusal is on the record as a denial: a `refusal` record of the query's call naming the
    file and the rule, which `audit --only denied` shows; the chain verifies."""
    from clients.review import only
    from common.audit import verify_file

    await refused("SELECT * FROM read_csv('.env')")
    (log,) = sorted((tmp_path / "state").rglob("*.jsonl"))
    report = verify_file(log)
    assert report.ok
    kinds = [r["type"] for r in report.records]
    assert kinds[-3:] == ["call", "refusal", "result"]
    call, refusal, _ = report.records[-3:]
    assert (
        refusal["call_id"] == call["call_id"] and refusal["tool"] == "data.query" and refusal["via"] == "sql"
    )
    assert refusal["arguments"] == {"path": ".env"}
    assert refusal["decision"]["effective"] == "deny" and ".env" in refusal["decision"]["rule"]
    assert [r["type"] for r in only(report.records, "denied")] == ["call", "refusal", "result"]


async def test_a_file_the_project_policy_denies_is_refused_in_sql_too(refused: Callable[[str], Any]) -> None:
    message = await refused("SELECT * FROM 'secrets.csv'")
    assert "policy does not let you read" in message


async def test_a_file_that_needs_approval_is_not_read_by_query(
    call: Call, refused: Callable[[str], Any], project: Path
) -> None:
    (project / "data" / "held").mkdir()
    (project / "data" / "held" / "h.csv").write_text("a\n1\n", encoding="utf-8")
    message = await refused("SELECT * FROM 'data/held/h.csv'")
    assert "needs a human's approval" in message and "describe_dataset" in message


async def test_a_denied_dataset_path_is_refused_by_every_tool(call: Call) -> None:
    for tool in ("describe_dataset",):
        assert "Denied by policy" in err(await call(tool, path="secrets.csv"))
    assert "Denied by policy" in err(await call("describe_dataset", path=".env"))


@asynccontextmanager
async def limited(project: Path, tmp_path: Path, **data: Any) -> AsyncIterator[Call]:
    server = build_server(settings_for(project, DENY_SECRETS, tmp=tmp_path, servers={"data": data}))
    async with Client(server, mode="legacy") as client:

        async def _call(tool: str, **arguments: Any) -> Any:
            return await client.call_tool(tool, arguments)

        yield _call


LimitedClient = Callable[..., AbstractAsyncContextManager[Call]]


@pytest.mark.parametrize(
    "sql",
    [
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
        "SELECT count(*) FROM range(100000000) a, range(100000000) b",
    ],
)
async def test_a_runaway_query_is_stopped_at_the_time_limit(project: Path, tmp_path: Path, sql: str) -> None:
    async with limited(project, tmp_path, timeout_s=1) as call:
        started = time.monotonic()
        message = err(await call("query", sql=sql))
    assert time.monotonic() - started < 15
    assert "the query was stopped after 1." in message and "1s limit" in message


async def test_unbounded_allocation_hits_the_memory_limit(project: Path, tmp_path: Path) -> None:
    async with limited(project, tmp_path, memory_mb=64, spill_mb=0, timeout_s=30) as call:
        message = err(
            await call("query", sql="SELECT list(range(i)) FROM range(200000) t(i) ORDER BY 1 DESC")
        )
    assert "64 MB limit" in message
    assert not list(tmp_path.glob("**/*.tmp"))


async def test_query_results_stop_at_a_byte_budget_of_the_memory_limit(project: Path, tmp_path: Path) -> None:
    # Values of 4 MB each: the rows fetched stop once they pass a quarter of 64 MB.
    async with limited(project, tmp_path, memory_mb=64, timeout_s=30) as call:
        data = ok(
            await call("query", sql="SELECT i, repeat('x', 4000000) AS s FROM range(20) t(i)", limit=20)
        )
    assert data["truncated"] is True and data["returned"] == 5  # 5 x 4 MB passes 16 MiB
    assert "the result was cut at 16 MB of values" in data["note"]
    assert data["rows"][0][1].endswith("[3999700 more chars]")


def test_the_sandbox_fetches_values_up_to_its_byte_budget(tmp_path: Path) -> None:
    from servers.data.sandbox import Limits, Sandbox, value_bytes

    limits = Limits(memory_mb=64)
    with Sandbox([], limits, tmp_path) as sandbox:
        big = sandbox.fetch(
            "SELECT repeat('x', 1000000) AS s, [i, i] AS l FROM range(100) t(i)", max_rows=100
        )
        fetched = sum(value_bytes(v) for row in big.rows for v in row)
        assert big.more and big.cut_mb == 16
        assert limits.fetch_bytes <= fetched <= limits.fetch_bytes + 1_000_100
        small = sandbox.fetch("SELECT i, 'v' || i AS s FROM range(1500) t(i)", max_rows=1000)
        assert len(small.rows) == 1000 and small.more and small.cut_mb is None
        whole = sandbox.fetch("SELECT i FROM range(1000) t(i)", max_rows=1000)
        assert len(whole.rows) == 1000 and not whole.more
        # A large value behind 100 small ones in a list is weighed too (not a sample of the list).
        hidden = sandbox.fetch(
            "SELECT list_concat(list_transform(range(100), lambda k: 'a'), [repeat('x', 1000000)]) AS l "
            "FROM range(200) t(i)",
            max_rows=200,
        )
        assert hidden.more and hidden.cut_mb == 16 and len(hidden.rows) <= 17


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp directory the sandboxes make their private folders in, for this test alone."""
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


async def test_a_memory_failure_leaves_no_temp_files(
    project: Path, tmp_path: Path, private_tmp: Path
) -> None:
    async with limited(project, tmp_path, memory_mb=64, spill_mb=16, timeout_s=30) as call:
        err(await call("query", sql="SELECT list(range(i)) FROM range(200000) t(i) ORDER BY 1 DESC"))
    assert list(private_tmp.iterdir()) == []


async def test_a_call_stopped_by_the_call_limit_interrupts_its_query(
    project: Path, tmp_path: Path, private_tmp: Path
) -> None:
    import anyio

    server = build_server(
        settings_for(project, tmp=tmp_path, call_timeout_s=1.0, servers={"data": {"timeout_s": 120}})
    )
    sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
    async with Client(server, mode="legacy") as client:
        started = time.monotonic()
        message = err(await client.call_tool("query", {"sql": sql}))
        assert "call limit" in message and time.monotonic() - started < 10
    # The worker thread's connection was interrupted, so it closes and removes its private directory.
    with anyio.fail_after(10):
        while list(private_tmp.iterdir()):
            await anyio.sleep(0.05)
