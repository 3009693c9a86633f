"""A refusal inside a running call (common.content.refused_call) leaves its own audit record, linked to
the call: what the tool was kept from, as the policy matched it and redacted as targets are, and the
decision. The mechanism is the kit's, for any tool, not only check_http's redirects."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from mcp import Client
from mcp.types import ElicitResult, ToolAnnotations
from pydantic import BaseModel, Field

from clients.review import render_timeline
from common import content, kinds
from common.audit import AuditLog, verify_file
from common.server import AccountableServer
from tests.helpers import of_type, ok, records, settings_for

pytestmark = pytest.mark.anyio

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
POLICY = '[policy]\nallow = ["kit.*"]\ndeny = ["kit.*(path=secrets/**)", "kit.follow(mode=force)", "kit.follow(mode=token*)"]\n'
SECRET_PIECE = "token=v1abcdef"


class Followed(BaseModel):
    stopped: list[str]


def follow(
    path: Annotated[str, Field(description="A file"), kinds.PATH],
    leads_to: Annotated[list[str], Field(description="Where the file leads")],
    mode: str = "plain",
) -> Followed:
    """A tool that, like a redirect, is led to other files (or another mode) while it runs; a sync
    tool, so the check runs in a worker thread."""
    stopped = []
    for target in leads_to:
        if target.startswith("mode:"):
            arguments = {"path": path, "leads_to": leads_to, "mode": target.removeprefix("mode:")}
        else:
            arguments = {"path": target, "leads_to": leads_to, "mode": mode}
        decision = content.refused_call(arguments, via="a link in the file")
        if decision is not None:
            stopped.append(f"{target}: {decision.rule}")
    return Followed(stopped=stopped)


def make_server(tmp_path: Path, policy: str = POLICY) -> AccountableServer:
    root = tmp_path / "project"
    (root / "secrets").mkdir(parents=True, exist_ok=True)
    server = AccountableServer("kit", settings_for(root, policy, tmp=tmp_path))
    server.add_tool(follow, annotations=READ_ONLY, structured_output=True)
    return server


async def test_each_refusal_inside_a_call_is_a_record_of_that_call_with_the_target_and_the_rule(
    tmp_path: Path,
) -> None:
    server = make_server(tmp_path)
    leads = [f"docs/{SECRET_PIECE}/../../secrets/./prod.yaml", "README.md", "mode:force"]
    async with Client(server, mode="legacy") as client:
        result = ok(await client.call_tool("follow", {"path": "README.md", "leads_to": leads}))
        ok(await client.call_tool("follow", {"path": "README.md", "leads_to": ["docs/a.md"]}))
    assert result["stopped"] == [f"{leads[0]}: kit.*(path=secrets/**)", "mode:force: kit.follow(mode=force)"]
    assert [r["type"] for r in records(server)] == [
        "session_start",
        "call",
        "refusal",
        "refusal",
        "result",
        "call",
        "result",
    ]
    (call, _), (to_file, to_mode) = of_type(server, "call"), of_type(server, "refusal")
    assert to_file["call_id"] == to_mode["call_id"] == call["call_id"]
    # The file the tool was kept from, by its canonical name (the secret-shaped piece of the path as
    # the tool had it is not part of the name, so nothing needed hiding).
    assert to_file["targets"] == {"path": ["secrets/prod.yaml"]} and "redactions" not in to_file
    assert "arguments" not in to_file  # only the path differs from the call's own arguments
    assert to_file["decision"]["rule"] == "kit.*(path=secrets/**)" and to_file["decision"]["action"] == "deny"
    assert to_file["via"] == "a link in the file"
    # Another argument than a target: it is named, with the target the call had.
    assert to_mode["arguments"] == {"mode": "force"} and to_mode["targets"] == {"path": ["README.md"]}
    assert to_mode["decision"]["rule"] == "kit.follow(mode=force)"
    first, second = of_type(server, "result")
    assert first["refusals"] == 2 and "refusals" not in second
    # A secret in an argument other than a target is redacted as in a call record, and said so.
    async with Client(server, mode="legacy") as client:
        hidden = ok(await client.call_tool("follow", {"path": "a.md", "leads_to": [f"mode:{SECRET_PIECE}"]}))
    assert hidden["stopped"] == [f"mode:{SECRET_PIECE}: kit.follow(mode=token*)"]
    secret = of_type(server, "refusal")[-1]
    assert secret["arguments"] == {"mode": "token=[REDACTED:secret_assignment]"}
    assert secret["redactions"] == [{"rule": "secret_assignment", "where": "arguments.mode"}]
    assert SECRET_PIECE not in server.audit.path.read_text(encoding="utf-8")  # type: ignore[union-attr]
    server.audit.close()
    report = verify_file(server.audit.path)  # type: ignore[arg-type]
    assert report.ok and not report.problems
    assert "kit.follow(mode=force)" in render_timeline(report.records)


async def test_a_call_refused_many_times_records_the_first_ones_and_counts_them_all(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    leads = [f"secrets/{i}.yaml" for i in range(content.MAX_REFUSALS + 7)]
    async with Client(server, mode="legacy") as client:
        result = ok(await client.call_tool("follow", {"path": "README.md", "leads_to": leads}))
    assert len(result["stopped"]) == len(leads)
    assert len(of_type(server, "refusal")) == content.MAX_REFUSALS
    (done,) = of_type(server, "result")
    assert done["refusals"] == len(leads)


async def test_what_the_policy_allows_or_the_call_itself_was_decided_on_leaves_no_record(
    tmp_path: Path,
) -> None:
    # Every call of the tool asks (a rule without conditions): the human approved this one, so the
    # same ask for another file is the call's own decision, which its call record gives.
    policy = '[policy]\nask = ["kit.follow"]\n'
    server = make_server(tmp_path, policy)

    async def yes(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="accept", content={"approve": True})

    async with Client(server, mode="legacy", elicitation_callback=yes) as client:
        result = ok(await client.call_tool("follow", {"path": "README.md", "leads_to": ["docs/a.md"]}))
    assert result["stopped"] == [] and of_type(server, "refusal") == []
    assert "refusals" not in of_type(server, "result")[0]
    # Outside a call nothing is decided, and nothing is written.
    assert content.refused_call({"path": "secrets/x"}) is None


def test_verify_warns_of_a_refusal_outside_its_call(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit", "kit")
    log.write("call", {"call_id": "1-1", "tool": "kit.follow"})
    log.write("result", {"call_id": "1-1", "status": "ok"})
    log.write("refusal", {"call_id": "1-1", "tool": "kit.follow", "decision": {"action": "deny"}})
    log.close()
    assert log.path is not None
    report = verify_file(log.path)
    assert report.ok  # a warning: the chain holds
    assert [(p.kind, p.line, p.severity) for p in report.problems] == [("stray_refusal", 4, "warning")]
