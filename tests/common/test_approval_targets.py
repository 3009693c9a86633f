"""What a human approves is what runs: approvals show the targets the policy matched (each path's
canonical names, each URL's canonical form), redaction hides only a secret's own piece, and URL
rules see the URL the tool fetches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import pytest
from mcp import Client
from mcp.types import ElicitResult, ToolAnnotations
from pydantic import BaseModel, Field
from starlette.testclient import TestClient

from clients.cli import main
from clients.review import render_timeline
from clients.review_page import build_app
from common import kinds
from common.audit import verify_dir
from common.server import AccountableServer
from servers.deploy.server import build_server as build_deploy
from servers.repo.server import build_server as build_repo
from tests.helpers import all_audit_text, err, first_text, make_repo, of_type, ok, settings_for

pytestmark = pytest.mark.anyio

SECRET = "prod-db-hunter2-XYZ"
TOKEN = "v1abcdef"  # a secret-looking piece: `token=v1abcdef` is redacted
EVIL = f"docs/token={TOKEN}/../../secrets/prod.yaml"
ASK_SECRETS = '[policy]\nask = ["repo.*(path=secrets/**)"]\n'
PAGE_TOKEN = "t0ken-for-tests"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path / "proj",
        {
            "docs/readme.md": "hello\n",
            "docs/other.md": "other\n",
            "secrets/prod.yaml": f"db_password: {SECRET}\n",
        },
    )


async def read(server: AccountableServer, path: str, **client: Any) -> Any:
    async with Client(server, mode="legacy", **client) as c:
        return await c.call_tool("read_file", {"path": path})


async def test_a_pending_approval_shows_the_file_a_dotted_path_reaches(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = build_repo(settings_for(root, ASK_SECRETS, tmp=tmp_path))
    asked = await read(server, EVIL)
    message = err(asked)
    assert "Needs approval" in message and SECRET not in message
    # The agent's message (which the human reads) names the file the call reads, and says that
    # part of what is shown was hidden; the path as sent is cut only at the secret's own piece.
    assert 'It acts on: path = ["secrets/prod.yaml"]' in message
    assert "WARNING: part of what is shown is hidden by redaction (secret_assignment)" in message
    assert "docs/token=[REDACTED:secret_assignment]/../../secrets/prod.yaml" in message
    (pending,) = server.approvals.pending()
    assert pending.targets == {"path": ["secrets/prod.yaml"]} and pending.redacted == ["secret_assignment"]
    assert pending.arguments == {"path": "docs/token=[REDACTED:secret_assignment]/../../secrets/prod.yaml"}
    # The records say the same, and keep the secret out.
    (call,) = of_type(server, "call")
    assert call["targets"] == {"path": ["secrets/prod.yaml"]}
    assert call["arguments"] == pending.arguments
    (requested,) = of_type(server, "approval")
    assert requested["targets"] == {"path": ["secrets/prod.yaml"]}
    assert requested["redacted"] == ["secret_assignment"]
    assert TOKEN not in all_audit_text(tmp_path / "state") and SECRET not in all_audit_text(
        tmp_path / "state"
    )

    # The CLI listing and the review page show the target whole, and the warning.
    assert main(["approvals"]) == 0
    listed = capsys.readouterr().out
    # One formatter for targets: the table shows them exactly as the agent's message does.
    acts = 'path = ["secrets/prod.yaml"]'
    assert acts in listed and "PART HIDDEN: secret_assignment" in listed
    assert "path=secrets/prod.yaml" not in listed
    assert f"  acts on: {acts}" in render_timeline(of_type(server, "call"))
    assert server.audit.path is not None
    page = TestClient(build_app(server.audit.directory, PAGE_TOKEN)).get(f"/approvals?token={PAGE_TOKEN}")
    assert "secrets/prod.yaml" in page.text and "hidden by redaction (secret_assignment)" in page.text
    timeline = TestClient(build_app(server.audit.directory, PAGE_TOKEN)).get(
        f"/session/{server.audit.path.stem}?token={PAGE_TOKEN}"
    )
    assert (
        timeline.status_code == 200 and "It acts on: path = [&quot;secrets/prod.yaml&quot;]" in timeline.text
    )

    # `onrecord approve` repeats what the human grants; then one retry reads, the next asks again.
    assert main(["approve", pending.id, "--once"]) == 0
    granted = capsys.readouterr().out
    assert 'It acts on: path = ["secrets/prod.yaml"]' in granted and "hidden by redaction" in granted
    assert SECRET in first_text(await read(server, EVIL))
    assert "Needs approval" in err(await read(server, EVIL))
    decisions = [
        r for rep in verify_dir(tmp_path / "state" / "audit") for r in rep.records if r["type"] == "approval"
    ]
    assert {"targets": {"path": ["secrets/prod.yaml"]}, "redacted": ["secret_assignment"]}.items() <= next(
        r for r in decisions if r["action"] == "granted"
    ).items()


async def test_the_elicitation_question_names_the_file_and_a_no_reads_nothing(
    root: Path, tmp_path: Path
) -> None:
    server = build_repo(settings_for(root, ASK_SECRETS, tmp=tmp_path))
    asked: list[str] = []

    async def no(_ctx: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": False})

    declined = await read(server, EVIL, elicitation_callback=no)
    assert "declined" in err(declined) and SECRET not in first_text(declined)
    (question,) = asked
    assert 'It acts on: path = ["secrets/prod.yaml"]' in question
    assert "hidden by redaction (secret_assignment)" in question and TOKEN not in question
    (record,) = of_type(server, "approval")
    assert record["action"] == "declined" and record["targets"] == {"path": ["secrets/prod.yaml"]}


async def test_a_grant_is_void_when_the_path_now_reaches_another_file(root: Path, tmp_path: Path) -> None:
    os.symlink("readme.md", root / "docs" / "link")
    server = build_repo(settings_for(root, '[policy]\nask = ["repo.*(path=docs/**)"]\n', tmp=tmp_path))
    err(await read(server, "docs/link"))
    (pending,) = server.approvals.pending()
    assert pending.targets == {"path": ["docs/link", "docs/readme.md"]}
    server.approvals.decide(pending.id, grant=True, by="tester", scope="once")
    (root / "docs" / "link").unlink()
    os.symlink("other.md", root / "docs" / "link")  # same arguments, another file
    assert "Needs approval" in err(await read(server, "docs/link"))
    assert [a.targets for a in server.approvals.pending()] == [{"path": ["docs/link", "docs/other.md"]}]


@pytest.mark.parametrize(
    "url",
    [
        "https://prod.example.com/h",
        "HTTPS://prod.example.com/h",
        "https://PROD.example.com/h",
        "https://prod.example.com:443/h",
        "https://%70rod.example.com/h",
        "https://prod.example.com./h",
    ],
)
async def test_a_url_ask_rule_fires_for_every_spelling_of_the_url(
    root: Path, tmp_path: Path, url: str
) -> None:
    policy = '[policy]\nallow = ["deploy.check_http"]\nask = ["deploy.*(url=https://prod.*)"]\n'
    settings = settings_for(root, policy, tmp=tmp_path)
    settings.servers["deploy"] = {"allowed_hosts": ["prod.example.com"]}
    async with Client(build_deploy(settings), mode="legacy") as client:
        message = err(await client.call_tool("check_http", {"url": url}))
    assert "Needs approval" in message
    assert 'It acts on: url = ["https://prod.example.com/h"]' in message


async def test_a_secret_piece_in_a_url_cannot_hide_where_dot_segments_lead(
    root: Path, tmp_path: Path
) -> None:
    # The URL as sent starts /ok; only its canonical form says /admin, which the rule names.
    policy = (
        '[policy]\nallow = ["deploy.check_http"]\nask = ["deploy.*(url=https://prod.example.com/admin*)"]\n'
    )
    settings = settings_for(root, policy, tmp=tmp_path)
    settings.servers["deploy"] = {"allowed_hosts": ["prod.example.com"]}
    server = build_deploy(settings)
    async with Client(server, mode="legacy") as client:
        message = err(
            await client.call_tool(
                "check_http", {"url": f"https://prod.example.com/ok;api_key={TOKEN}/../../admin"}
            )
        )
    assert 'It acts on: url = ["https://prod.example.com/admin"]' in message
    assert "hidden by redaction (secret_assignment)" in message and TOKEN not in message
    (pending,) = server.approvals.pending()
    assert pending.arguments == {
        "url": "https://prod.example.com/ok;api_key=[REDACTED:secret_assignment]/../../admin"
    }


class Fetched(BaseModel):
    url: str


FETCHED: list[str] = []


def fetch(url: Annotated[str, Field(description="An http(s) URL"), kinds.URL]) -> Fetched:
    """Pretend to fetch a URL."""
    FETCHED.append(url)
    return Fetched(url=url)


async def test_url_rules_match_the_canonical_url_and_the_tool_gets_that_url(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    server = AccountableServer(
        "kit", settings_for(project, '[policy]\ndeny = ["kit.fetch(url=*169.254.*)"]\n', tmp=tmp_path)
    )
    server.add_tool(fetch, annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    FETCHED.clear()
    async with Client(server, mode="legacy") as client:
        for disguised in (
            "http://2852039166/latest",
            "http://0xa9.254.169.254/latest",
            "http://0xA9FEA9FE/latest",
            "http://169.254.43518/latest",
            "http://[::ffff:169.254.169.254]/latest",
            "HTTP://169.254.169.254./latest",
        ):
            assert "Denied by policy" in err(await client.call_tool("fetch", {"url": disguised})), disguised
        assert FETCHED == []
        fetched = ok(await client.call_tool("fetch", {"url": "HTTP://Example.COM:80/a/../b"}))
    assert fetched == {"url": "http://example.com/b"} and FETCHED == ["http://example.com/b"]
    last = of_type(server, "call")[-1]
    # The record keeps what the model sent, and names the URL that ran.
    assert last["arguments"] == {"url": "HTTP://Example.COM:80/a/../b"}
    assert last["targets"] == {"url": ["http://example.com/b"]}
    assert server.explain("fetch", {"url": "http://2852039166/"}).action == "deny"


async def test_a_deny_rule_written_in_capitals_still_names_the_canonical_url(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    policy = '[policy]\ndeny = ["kit.fetch(url=HTTPS://Internal.Example.com/*)"]\nallow = ["kit.fetch(url=https://Public.example.com/*)"]\n'
    server = AccountableServer("kit", settings_for(project, policy, tmp=tmp_path))
    server.add_tool(fetch, annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
    assert server.explain("fetch", {"url": "https://internal.example.com/x"}).action == "deny"
    assert server.explain("fetch", {"url": "https://INTERNAL.example.com/x"}).action == "deny"
    # An allow rule's scheme and host are read as URLs arrive (lower-case) when the policy loads;
    # its path keeps case.
    assert server.explain("fetch", {"url": "https://PUBLIC.example.com/x"}).action == "allow"
    assert server.explain("fetch", {"url": "https://public.example.org/x"}).rule == "annotations.destructive"
