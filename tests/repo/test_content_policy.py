"""What the policy denies never reaches the agent in any form: content is checked where it leaves.

Each test plants a canary in a file the policy denies (or asks about), calls the tools with the
attack as input, and asserts the canary appears in no result and no audit record.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from mcp import Client
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from common import kinds
from common.server import AccountableServer
from servers.repo.server import build_server
from tests.helpers import all_audit_text, commit, git, make_repo, settings_for

pytestmark = pytest.mark.anyio

ENV = "ENV-CANARY-41d7"
PEM = "PEM-CANARY-9b02"
SECRET = "SECRETS-CANARY-77aa"
DEPLOY = "DEPLOY-CANARY-c3e1"
CANARIES = (ENV, PEM, SECRET, DEPLOY)
POLICY = """
[policy]
deny = ["repo.*(path=secrets/**)"]
ask = ["repo.read_file(path=deploy/**)"]
"""


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content) + str(result.structured_content)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = make_repo(
        tmp_path / "proj",
        {
            "README.md": "# app\n",
            "app.py": "def main():\n    return 1\n",
            ".env": f"TOKEN={ENV}-0\n",
            "certs/server.pem": f"{PEM}-0\n",
            "secrets/db.txt": f"{SECRET}-0\n",
            "deploy/prod.toml": f"key = '{DEPLOY}-0'\n",
        },
    )
    # A second commit touching every file, then uncommitted edits to every file: diffs, shows,
    # blames and logs all have the canaries to leak.
    commit(
        root,
        {
            "app.py": "def main():\n    return 2\n",
            ".env": f"TOKEN={ENV}-1\n",
            "certs/server.pem": f"{PEM}-1\n",
            "secrets/db.txt": f"{SECRET}-1\n",
            "deploy/prod.toml": f"key = '{DEPLOY}-1'\n",
        },
        f"rotate {'keys'}",
    )
    for name, canary in [
        (".env", ENV),
        ("certs/server.pem", PEM),
        ("secrets/db.txt", SECRET),
        ("deploy/prod.toml", DEPLOY),
    ]:
        (root / name).write_text(f"changed {canary}-2\n", encoding="utf-8")
    (root / "app.py").write_text("def main():\n    return 3\n", encoding="utf-8")
    return root


@pytest.fixture
async def client(project: Path, tmp_path: Path) -> AsyncIterator[tuple[Client, AccountableServer]]:
    server = build_server(settings_for(project, POLICY, tmp=tmp_path))
    async with Client(server, mode="legacy") as c:
        yield c, server


WHOLE_TREE_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("git_diff", {}),
    ("git_diff", {"base": "HEAD~1"}),
    ("git_diff", {"base": "HEAD~1", "target": "HEAD"}),
    ("git_diff", {"path": "."}),
    ("git_diff", {"context_lines": 50}),
    ("git_show", {"rev": "HEAD"}),
    ("git_show", {"rev": "HEAD~1"}),
    ("git_log", {}),
    ("git_status", {}),
    ("search", {"query": "CANARY"}),
    ("search", {"query": "CANARY", "context_lines": 3}),
    ("search", {"query": "C.NARY", "regex": True}),
    ("find_symbol", {"name": "key", "include_references": True}),
    ("list_files", {"include_ignored": True}),
    ("overview", {}),
    ("related_files", {"path": "app.py"}),
]


@pytest.mark.parametrize(("tool", "arguments"), WHOLE_TREE_CALLS)
async def test_whole_tree_calls_never_carry_denied_or_asked_content(
    client: tuple[Client, AccountableServer], tool: str, arguments: dict[str, Any], tmp_path: Path
) -> None:
    c, server = client
    result = await c.call_tool(tool, arguments)
    shown = text_of(result)
    for canary in CANARIES:
        assert canary not in shown, (tool, arguments, canary)
        assert canary not in all_audit_text(server.config.state_dir)


async def test_diffs_name_what_they_left_out_and_keep_the_rest(
    client: tuple[Client, AccountableServer],
) -> None:
    c, server = client
    data = (await c.call_tool("git_diff", {})).structured_content
    assert data is not None
    assert [h["path"] for h in data["hunks"]] == ["app.py"]
    assert set(data["excluded_files"]) == {".env", "certs/server.pem", "secrets/db.txt", "deploy/prod.toml"}
    assert data["excluded_by_policy"] == 4
    assert "withheld by policy" in data["note"] and "onrecord policy explain" in data["note"]
    assert "1 of them need a human's approval" in data["note"] and "path='deploy/prod.toml'" in data["note"]
    result = [r for r in _records(server) if r["type"] == "result"][-1]
    assert set(result["excluded_by_policy"]["files"]) == set(data["excluded_files"])


def _records(server: AccountableServer) -> list[dict[str, Any]]:
    import json

    assert server.audit.path is not None
    return [json.loads(line) for line in server.audit.path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("git_diff", {"path": "secrets"}),
        ("git_diff", {"path": "secrets/"}),
        ("git_log", {"path": "secrets"}),
        ("list_files", {"path": "secrets"}),
        ("read_file", {"path": "secrets/db.txt", "ref": "HEAD~1"}),
        ("git_show", {"rev": "HEAD~1", "path": "secrets/db.txt"}),
        ("git_blame", {"path": "secrets/db.txt"}),
        ("git_show", {"rev": "HEAD", "path": "certs/server.pem"}),
        ("git_blame", {"path": ".env", "rev": "HEAD"}),
        ("read_file", {"path": "./certs/../.env", "ref": "HEAD"}),
    ],
)
async def test_a_folder_or_file_the_policy_denies_is_refused_by_every_tool(
    client: tuple[Client, AccountableServer], tool: str, arguments: dict[str, Any]
) -> None:
    c, _ = client
    result = await c.call_tool(tool, arguments)
    assert result.is_error, text_of(result)
    assert "Denied by policy" in text_of(result)
    assert not any(canary in text_of(result) for canary in CANARIES)


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("read_file", {"path": "deploy/prod.toml"}),
        ("git_blame", {"path": "deploy/prod.toml"}),
        ("git_show", {"rev": "HEAD", "path": "deploy/prod.toml"}),
        ("read_file", {"path": "deploy/prod.toml", "ref": "HEAD~1"}),
        ("outline", {"path": "deploy/prod.toml"}),
        ("git_diff", {"path": "deploy"}),
    ],
)
async def test_an_ask_rule_on_reading_a_file_covers_every_tool_that_shows_it(
    client: tuple[Client, AccountableServer], tool: str, arguments: dict[str, Any]
) -> None:
    c, _ = client
    result = await c.call_tool(tool, arguments)
    assert result.is_error and "Needs approval" in text_of(result), text_of(result)
    assert DEPLOY not in text_of(result)


async def test_a_grant_shows_the_asked_file_to_that_one_call(
    client: tuple[Client, AccountableServer],
) -> None:
    c, server = client
    pending = await c.call_tool("git_blame", {"path": "deploy/prod.toml"})
    approval_id = text_of(pending).split("pending approval ")[1].split()[0]
    server.approvals.decide(approval_id, grant=True, by="test")
    granted = await c.call_tool("git_blame", {"path": "deploy/prod.toml"})
    assert not granted.is_error and f"{DEPLOY}-2" in text_of(granted)
    again = await c.call_tool("git_blame", {"path": "deploy/prod.toml"})
    assert again.is_error and DEPLOY not in text_of(again)


async def test_a_node_id_separator_in_a_path_does_not_cut_the_path_short(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"README.md": "x\n", "foo::bar/.env": f"TOKEN={ENV}\n"})
    server = build_server(settings_for(root, tmp=tmp_path))
    async with Client(server, mode="legacy") as c:
        for path in ["foo::bar/.env", "foo::bar/../foo::bar/.env"]:
            result = await c.call_tool("read_file", {"path": path})
            assert result.is_error and "Denied by policy" in text_of(result)
            assert ENV not in text_of(result)


async def test_a_historical_read_is_decided_on_the_path_as_it_was(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {".env": f"TOKEN={ENV}\n", ".env.example": "TOKEN=\n"})
    # Today .env is a link to the harmless example; at HEAD~1 it was the real thing.
    (root / ".env").unlink()
    (root / ".env").symlink_to(".env.example")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "link env")
    server = build_server(settings_for(root, tmp=tmp_path))
    async with Client(server, mode="legacy") as c:
        for tool, arguments in [
            ("read_file", {"path": ".env", "ref": "HEAD~1"}),
            ("git_show", {"rev": "HEAD~1", "path": ".env"}),
            ("git_show", {"rev": "HEAD~1"}),
            ("git_diff", {"base": "HEAD~1", "target": "HEAD"}),
            ("git_log", {"path": ".env"}),
        ]:
            result = await c.call_tool(tool, arguments)
            assert ENV not in text_of(result), (tool, arguments)
    assert ENV not in all_audit_text(server.config.state_dir)


async def test_a_link_to_a_denied_file_is_denied_in_results_too(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {".env": f"TOKEN={ENV}\n", "notes.md": "TOKEN notes\n"})
    (root / "innocent.txt").symlink_to(".env")
    server = build_server(settings_for(root, tmp=tmp_path))
    async with Client(server, mode="legacy") as c:
        for tool, arguments in [
            ("read_file", {"path": "innocent.txt"}),
            ("search", {"query": "TOKEN", "context_lines": 2}),
            ("outline", {"path": "innocent.txt"}),
        ]:
            assert ENV not in text_of(await c.call_tool(tool, arguments)), tool


class Doc(BaseModel):
    text: str


async def test_a_new_tool_with_a_new_path_argument_name_is_covered_without_kit_changes(
    tmp_path: Path,
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / ".env").write_text(f"TOKEN={ENV}\n", encoding="utf-8")
    (root / "secrets").mkdir()
    (root / "secrets" / "a.csv").write_text(f"{SECRET}\n", encoding="utf-8")
    (root / "ok.csv").write_text("a,b\n", encoding="utf-8")
    ran: list[str] = []

    async def profile(
        dataset: Annotated[str, Field(description="A data file"), kinds.DATASET],
        inputs: Annotated[list[str], Field(description="More files"), kinds.PATHS] = [],  # noqa: B006
    ) -> Doc:
        ran.append(dataset)
        return Doc(text=(root / dataset).read_text(encoding="utf-8"))

    server = AccountableServer(
        "data", settings_for(root, '[policy]\ndeny = ["data.*(path=secrets/**)"]\n', tmp=tmp_path)
    )
    server.add_tool(
        profile,
        annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
        structured_output=True,
    )
    async with Client(server, mode="legacy") as c:
        for arguments in [
            {"dataset": ".env"},
            {"dataset": "./sub/../.env"},
            {"dataset": "secrets/a.csv"},
            {"dataset": "ok.csv", "inputs": ["ok.csv", "secrets"]},
        ]:
            result = await c.call_tool("profile", arguments)
            assert result.is_error and "Denied by policy" in text_of(result), arguments
            assert ENV not in text_of(result) and SECRET not in text_of(result)
        assert not (await c.call_tool("profile", {"dataset": "ok.csv"})).is_error
    assert ran == ["ok.csv"]
