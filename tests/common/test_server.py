"""AccountableServer through the in-memory Client, in both protocol eras."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp.server import MCPServer
from mcp.types import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, ElicitResult, ToolAnnotations
from pydantic import BaseModel, Field

from common import schema
from common.audit import canonical, verify_file
from common.errors import OnrecordError
from common.server import AccountableServer
from tests.helpers import first_text, of_type, records, settings_for

pytestmark = pytest.mark.anyio
ERAS = ["legacy", "auto"]

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
)


class Echo(BaseModel):
    text: str
    length: int


RAN: list[str] = []


def echo(text: Annotated[str, Field(description="Text to echo")], times: int = 1) -> Echo:
    """Echo text."""
    RAN.append("echo")
    return Echo(text=text * times, length=len(text) * times)


def reset_branch(name: Annotated[str, Field(description="Branch")]) -> Echo:
    """A destructive tool."""
    RAN.append(f"reset_branch:{name}")
    return Echo(text=f"reset {name}", length=0)


def crash(n: int) -> Echo:
    raise RuntimeError(f"internal detail {n}")


def refuse(path: str) -> Echo:
    raise OnrecordError(f"path {path!r} is not allowed here; pass a path inside the root")


async def slow(seconds: float) -> Echo:
    await anyio.sleep(seconds)
    return Echo(text="done", length=4)


def add_tools(server: MCPServer) -> None:
    server.add_tool(echo, annotations=READ_ONLY)
    server.add_tool(reset_branch, annotations=WRITES)
    server.add_tool(crash, annotations=READ_ONLY)
    server.add_tool(refuse, annotations=READ_ONLY)
    server.add_tool(slow, annotations=READ_ONLY)


def make_server(tmp_path: Path, policy: str | None = None, **overrides: Any) -> AccountableServer:
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    server = AccountableServer("kit", settings_for(root, policy, tmp=tmp_path, **overrides))
    add_tools(server)
    RAN.clear()
    return server


def approve_with(answer: bool, asked: list[str] | None = None) -> Any:
    async def callback(_ctx: Any, params: Any) -> ElicitResult:
        if asked is not None:
            asked.append(params.message)
        return ElicitResult(action="accept", content={"approve": answer})

    return callback


def pair(server: AccountableServer) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(call, result) records matched by call_id."""
    results = {r["call_id"]: r for r in of_type(server, "result")}
    return [(c, results[c["call_id"]]) for c in of_type(server, "call")]


@pytest.mark.parametrize("mode", ERAS)
async def test_allowed_call_runs_and_writes_call_then_result(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path)
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("echo", {"text": "hi", "times": 2})
    assert result.is_error is False
    assert result.structured_content == {"text": "hihi", "length": 4}
    recs = records(server)
    assert [r["type"] for r in recs] == ["session_start", "call", "result"]
    assert (
        recs[0]["client"] == "mcp/0.1.0"
        and recs[0]["server"] == "kit"
        and recs[0]["policy_digest"].startswith("sha256:")
    )
    call, res = recs[1], recs[2]
    assert call["tool"] == "kit.echo" and call["arguments"] == {"text": "hi", "times": 2}
    assert call["decision"]["action"] == "allow" and call["decision"]["rule"] == "annotations.read_only"
    assert call["protocol"] == ("2025-11-25" if mode == "legacy" else "2026-07-28")
    assert call["client"] == "mcp/0.1.0"
    assert res["status"] == "ok" and res["call_id"] == call["call_id"]
    assert res["size"] > 0 and res["digest"].startswith("sha256:") and "hihi" in res["preview"]
    assert server.audit.path is not None and verify_file(server.audit.path).ok


@pytest.mark.parametrize("mode", ERAS)
async def test_denied_call_does_not_run_and_names_the_rule(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path, '[policy]\ndeny = ["kit.echo(text=secret*)"]\n')
    async with Client(server, mode=mode) as client:
        denied = await client.call_tool("echo", {"text": "secret plans"})
        allowed = await client.call_tool("echo", {"text": "public"})
    assert denied.is_error is True
    assert "kit.echo(text=secret*)" in first_text(denied) and "policy" in first_text(denied)
    assert allowed.is_error is False
    assert RAN == ["echo"]  # only the allowed call ran
    (call, res), _ = pair(server)
    assert call["decision"]["action"] == "deny" and call["decision"]["source"].endswith(".toml")
    assert res["status"] == "denied"


@pytest.mark.parametrize("mode", ERAS)
async def test_ask_approved_by_elicitation_runs_the_call(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path)
    asked: list[str] = []
    async with Client(server, mode=mode, elicitation_callback=approve_with(True, asked)) as client:
        result = await client.call_tool("reset_branch", {"name": "main"})
    assert result.is_error is False and result.structured_content["text"] == "reset main"
    assert RAN == ["reset_branch:main"]
    assert len(asked) == 1 and "kit.reset_branch" in asked[0] and '"main"' in asked[0]
    approvals = of_type(server, "approval")
    assert [(a["action"], a["via"]) for a in approvals] == [("granted", "elicitation")]
    final = of_type(server, "result")[-1]
    assert final["status"] == "ok" and final["approved"] is True
    assert of_type(server, "call")[-1]["decision"]["rule"] == "annotations.destructive"


@pytest.mark.parametrize("mode", ERAS)
async def test_ask_declined_by_the_human_does_not_run(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path)
    async with Client(server, mode=mode, elicitation_callback=approve_with(False)) as client:
        result = await client.call_tool("reset_branch", {"name": "main"})
    assert result.is_error is True and "declined" in first_text(result)
    assert "(answered no)" in first_text(result) and "(accept)" not in first_text(result)
    assert RAN == []
    assert of_type(server, "approval")[-1]["action"] == "declined"
    assert of_type(server, "result")[-1]["status"] == "declined"


@pytest.mark.parametrize("mode", ERAS)
async def test_ask_without_elicitation_fails_closed_then_out_of_band_approval_allows_one_retry(
    tmp_path: Path, mode: str
) -> None:
    server = make_server(tmp_path)
    async with Client(server, mode=mode) as client:
        first = await client.call_tool("reset_branch", {"name": "main"})
        assert first.is_error is True
        text = first_text(first)
        assert "onrecord approve" in text and "retry the same call" in text
        approval_id = of_type(server, "approval")[-1]["approval_id"]
        assert approval_id in text
        assert RAN == []
        # A different call is not covered by that approval.
        server.approvals.decide(approval_id, grant=True, by="tester")
        other = await client.call_tool("reset_branch", {"name": "release"})
        assert other.is_error is True and RAN == []
        retry = await client.call_tool("reset_branch", {"name": "main"})
        assert retry.is_error is False and RAN == ["reset_branch:main"]
        again = await client.call_tool("reset_branch", {"name": "main"})
        assert again.is_error is True  # single use
    statuses = [r["status"] for r in of_type(server, "result")]
    assert statuses == ["pending_approval", "pending_approval", "ok", "pending_approval"]
    consumed = [a for a in of_type(server, "approval") if a["action"] == "consumed"]
    assert len(consumed) == 1 and consumed[0]["approval_id"] == approval_id and consumed[0]["by"] == "tester"


def server_at(tmp_path: Path, root_name: str, policy: str | None = None) -> AccountableServer:
    """A kit server rooted at tmp_path/root_name; every one shares the test's state directory."""
    root = tmp_path / root_name
    root.mkdir(exist_ok=True)
    server = AccountableServer("kit", settings_for(root, policy, tmp=tmp_path))
    add_tools(server)
    return server


@pytest.mark.parametrize("mode", ERAS)
async def test_a_grant_for_one_root_is_not_consumed_by_the_same_call_in_another_root(
    tmp_path: Path, mode: str
) -> None:
    server_a, server_b = server_at(tmp_path, "a"), server_at(tmp_path, "b")
    RAN.clear()
    async with Client(server_a, mode=mode) as in_a, Client(server_b, mode=mode) as in_b:
        await in_a.call_tool("reset_branch", {"name": "main"})
        approval_id = of_type(server_a, "approval")[-1]["approval_id"]
        assert server_a.approvals.get(approval_id).root == str(tmp_path / "a")
        server_a.approvals.decide(approval_id, grant=True, by="tester")
        from_b = await in_b.call_tool("reset_branch", {"name": "main"})
        assert from_b.is_error is True and "Needs approval" in first_text(from_b) and RAN == []
        asked_in_b = of_type(server_b, "approval")[-1]
        assert asked_in_b["action"] == "requested" and asked_in_b["approval_id"] != approval_id
        from_a = await in_a.call_tool("reset_branch", {"name": "main"})
        assert from_a.is_error is False and RAN == ["reset_branch:main"]
    assert [a["action"] for a in of_type(server_a, "approval")] == ["requested", "consumed"]


async def test_a_grant_is_not_consumed_after_the_policy_changed(tmp_path: Path) -> None:
    before = server_at(tmp_path, "project")
    after = server_at(tmp_path, "project", '[policy]\ndeny = ["kit.crash"]\n')
    RAN.clear()
    async with Client(before, mode="legacy") as old, Client(after, mode="legacy") as new:
        await old.call_tool("reset_branch", {"name": "main"})
        approval_id = of_type(before, "approval")[-1]["approval_id"]
        before.approvals.decide(approval_id, grant=True, by="tester")
        under_new_policy = await new.call_tool("reset_branch", {"name": "main"})
        assert under_new_policy.is_error is True and RAN == []
        assert of_type(after, "approval")[-1]["action"] == "requested"
        session = of_type(before, "session_start")[0]
        assert session["policy_digest"] == before.approvals.get(approval_id).policy
        assert of_type(after, "session_start")[0]["policy_digest"] != session["policy_digest"]
        under_old_policy = await old.call_tool("reset_branch", {"name": "main"})
        assert under_old_policy.is_error is False and RAN == ["reset_branch:main"]


@pytest.mark.parametrize("mode", ERAS)
async def test_shadow_mode_records_the_decision_but_runs_the_call(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path, '[policy]\nmode = "shadow"\ndeny = ["kit.echo"]\n')
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("echo", {"text": "x"})
        destructive = await client.call_tool("reset_branch", {"name": "dev"})
    assert result.is_error is False and destructive.is_error is False
    assert RAN == ["echo", "reset_branch:dev"]
    decisions = [c["decision"] for c in of_type(server, "call")]
    assert (
        decisions[0]["action"] == "deny"
        and decisions[0]["enforced"] is False
        and decisions[0]["effective"] == "allow"
    )
    assert decisions[1]["action"] == "ask" and decisions[1]["effective"] == "allow"
    assert [r["status"] for r in of_type(server, "result")] == ["ok", "ok"]


@pytest.mark.parametrize("mode", ERAS)
async def test_validation_error_is_recorded_with_both_records(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path)
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("echo", {"text": 123})
    text = first_text(result)
    # One line per argument: what was given, what is expected, the argument's own description.
    assert result.is_error is True
    assert "argument 'text': Input should be a valid string (got 123); Text to echo" in text
    assert "pydantic.dev" not in text and "[type=" not in text
    ((call, res),) = pair(server)
    assert call["arguments"] == {"text": 123}
    assert res["status"] == "invalid_arguments" and "text" in res["error"]


@pytest.mark.parametrize("mode", ERAS)
async def test_crash_is_hidden_from_the_model_but_recorded(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path)
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("crash", {"n": 7})
    assert result.is_error is True and first_text(result) == "Error executing tool crash"
    res = of_type(server, "result")[-1]
    assert res["status"] == "crashed" and "internal detail 7" in res["error"]


@pytest.mark.parametrize("mode", ERAS)
async def test_onrecord_errors_reach_the_model_verbatim(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path)
    async with Client(server, mode=mode) as client:
        result = await client.call_tool("refuse", {"path": "../x"})
    assert result.is_error is True
    assert (
        first_text(result)
        == "Error executing tool refuse: path '../x' is not allowed here; pass a path inside the root"
    )
    assert of_type(server, "result")[-1]["status"] == "tool_error"


@pytest.mark.parametrize("mode", ERAS)
async def test_unknown_tool_is_a_protocol_error_and_is_recorded(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path)
    async with Client(server, mode=mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("drop_database", {"really": True})
    assert raised.value.code == INVALID_PARAMS and raised.value.message == "Unknown tool: drop_database"
    ((call, res),) = pair(server)
    assert call["tool"] == "kit.drop_database" and res["status"] == "unknown_tool"


@pytest.mark.parametrize("mode", ERAS)
async def test_unknown_prompt_is_invalid_params(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path)
    async with Client(server, mode=mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.get_prompt("summarise")
    assert raised.value.code == INVALID_PARAMS and raised.value.message == "Unknown prompt: summarise"


@pytest.mark.parametrize("mode", ERAS)
async def test_tools_list_rejects_a_cursor_it_never_issued(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path)
    async with Client(server, mode=mode) as client:
        first = await client.list_tools()
        with pytest.raises(MCPError) as raised:
            await client.list_tools(cursor="bogus", cache_mode="bypass")
    assert first.next_cursor is None and {t.name for t in first.tools} >= {"echo", "crash"}
    assert raised.value.code == INVALID_PARAMS and "'bogus'" in raised.value.message


async def test_timeout_stops_the_tool_and_is_recorded(tmp_path: Path) -> None:
    server = make_server(tmp_path, call_timeout_s=0.2)
    async with Client(server, mode="legacy") as client:
        with anyio.fail_after(5):
            result = await client.call_tool("slow", {"seconds": 30})
    assert result.is_error is True and "call limit" in first_text(result)
    res = of_type(server, "result")[-1]
    assert res["status"] == "timeout" and res["duration_ms"] < 3000


@pytest.mark.parametrize("mode", ERAS)
async def test_cancelled_call_still_gets_a_result_record(tmp_path: Path, mode: str) -> None:
    server = make_server(tmp_path)
    async with Client(server, mode=mode) as client:
        with anyio.move_on_after(0.3):
            await client.call_tool("slow", {"seconds": 30})
        # The next call proves the server is still serving after the cancellation.
        ok = await client.call_tool("echo", {"text": "after"})
        assert ok.is_error is False
    with anyio.fail_after(5):
        while not any(r["status"] == "cancelled" for r in of_type(server, "result")):
            await anyio.sleep(0.05)
    assert [c["tool"] for c in of_type(server, "call")] == ["kit.slow", "kit.echo"]


async def test_input_schemas_are_the_tools_own_and_refuse_unknown_arguments(tmp_path: Path) -> None:
    plain = MCPServer("plain")
    add_tools(plain)
    server = make_server(tmp_path)
    ours = {t.name: t for t in await server.list_tools()}
    theirs = {t.name: t for t in await plain.list_tools()}
    assert set(ours) == set(theirs)
    for name, tool in theirs.items():
        # The same schemas, said leanly (common.schema): no titles repeating names.
        assert ours[name].input_schema == {
            **schema.lean_input(tool.input_schema),
            "additionalProperties": False,
        }
        assert ours[name].output_schema == (tool.output_schema and schema.lean_output(tool.output_schema))
        description = ours[name].description
        assert description is not None
        assert not any(line.startswith((" ", "\t")) for line in description.splitlines())


async def test_every_record_chains_and_each_call_is_written_before_the_tool_runs(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    seen_before_run: list[int] = []

    def probe() -> Echo:
        seen_before_run.append(len(of_type(server, "call")))
        return Echo(text="", length=0)

    server.add_tool(probe, annotations=READ_ONLY)
    async with Client(server) as client:
        for _ in range(3):
            await client.call_tool("probe", {})
    assert seen_before_run == [1, 2, 3]
    assert server.audit.path is not None
    report = verify_file(server.audit.path)
    assert report.ok and len(report.records) == 7


async def test_an_unwritable_audit_log_fails_closed_with_a_clear_error(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the audit directory should be", encoding="utf-8")
    server.audit.directory = blocker / "audit"
    async with Client(server, mode="legacy") as client:
        result = await client.call_tool("echo", {"text": "x"})
    assert result.is_error is True
    assert "cannot be written" in first_text(result) and "no call runs unrecorded" in first_text(result)
    assert RAN == []


def test_a_tool_name_registered_twice_is_an_error_naming_both_owners(tmp_path: Path) -> None:
    from common.config import ConfigError

    async def lint() -> None:
        return None

    server = AccountableServer("all", settings_for(tmp_path, tmp=tmp_path))
    server.add_tool(lint, server="testing")
    with pytest.raises(ConfigError, match="'lint' is registered by both 'testing' and 'data'"):
        server.add_tool(lint, server="data")
    assert server.qualified("lint") == ("testing", "testing.lint")


async def test_approvals_on_a_host_without_elicitation_once_session_period_revoke_decline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    from clients.cli import main
    from common.audit import verify_dir

    server = make_server(tmp_path)
    audit = tmp_path / "cli-audit"

    async def ask(client: Client) -> str | None:
        """Call the guarded tool; the pending approval's ID when it did not run."""
        result = await client.call_tool("reset_branch", {"name": "main"})
        if not result.is_error:
            return None
        return str(of_type(server if client is not other_client else other, "approval")[-1]["approval_id"])

    def decide(*argv: str) -> int:
        code = main([*argv, "--dir", str(audit)])
        capsys.readouterr()
        return code

    other = make_server(tmp_path)  # a second server session on the same root
    async with Client(server, mode="legacy") as client, Client(other, mode="legacy") as other_client:
        first = await client.call_tool("reset_branch", {"name": "main"})
        text = first_text(first)
        once = of_type(server, "approval")[-1]["approval_id"]
        # The message gives the ID, the exact call and every way to decide.
        for part in (
            once,
            'kit.reset_branch {"name":"main"}',
            "--once",
            "--session",
            "--for 10m",
            "--decline",
            "`onrecord review`",
        ):
            assert part in text, part
        assert decide("approve", once, "--once") == 0
        assert await ask(client) is None and RAN == ["reset_branch:main"]
        in_session = await ask(client)  # used up: a new request
        assert in_session and in_session != once
        assert decide("approve", in_session, "--session") == 0
        assert await ask(client) is None and await ask(client) is None  # any number of times...
        elsewhere = await ask(other_client)  # ...but only in the session that asked
        assert elsewhere and elsewhere != in_session
        assert decide("approve", elsewhere, "--for", "1s") == 0
        assert await ask(other_client) is None
        await anyio.sleep(1.2)
        expired = await ask(other_client)
        assert expired and expired != elsewhere
        assert decide("approvals", "revoke", in_session) == 0  # the human withdraws the session grant
        revoked_too = await ask(client)
        assert revoked_too and revoked_too not in (in_session, expired)
        assert decide("approvals", "revoke", revoked_too) == 0
        assert decide("approve", revoked_too) == 2  # a revoked request cannot be granted
        declined = expired
        assert decide("approve", declined, "--decline") == 0
        assert await ask(other_client) not in (None, declined)
        assert decide("approve", "nosuchid", "--for", "forever") == 2
    assert RAN == ["reset_branch:main"] * 4
    decisions = [
        (r["approval_id"], r["action"], r.get("scope"))
        for rep in verify_dir(audit)
        for r in rep.records
        if r["type"] == "approval"
    ]
    assert decisions == [
        (once, "granted", "once"),
        (in_session, "granted", "session"),
        (elsewhere, "granted", "for"),
        (in_session, "revoked", "session"),
        (revoked_too, "revoked", "settings"),
        (declined, "declined", "settings"),
    ]
    used = [
        r["approval_id"] for s in (server, other) for r in of_type(s, "approval") if r["action"] == "consumed"
    ]
    assert sorted(used) == sorted([once, in_session, in_session, elsewhere])
    requested = {
        r["approval_id"]
        for s in (server, other)
        for r in of_type(s, "approval")
        if r["action"] == "requested"
    }
    assert {once, in_session, elsewhere, expired, revoked_too} <= requested
    assert os.environ["ONRECORD_STATE_DIR"]  # the CLI and the servers share the test's state


async def test_http_answers_a_malformed_message_as_on_stdio(tmp_path: Path) -> None:
    import httpx

    server = make_server(tmp_path)
    app = server.streamable_http_app()
    accept = {"accept": "application/json, text/event-stream"}
    async with (
        server.session_manager.run(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http,
    ):
        no_version = await http.post("/mcp", json={"id": 7, "method": "ping"}, headers=accept)
        batch = await http.post("/mcp", json=[{"jsonrpc": "2.0", "id": 8, "method": "ping"}], headers=accept)
        not_json = await http.post(
            "/mcp", content=b"{oops", headers={**accept, "content-type": "application/json"}
        )
        wrong_accept = await http.post(
            "/mcp", json={"id": 9, "method": "ping"}, headers={"accept": "text/html"}
        )
    assert no_version.status_code == 400
    assert no_version.json()["id"] == 7 and no_version.json()["error"]["code"] == INVALID_REQUEST
    assert batch.status_code == 400
    assert batch.json()["id"] is None and batch.json()["error"]["code"] == INVALID_REQUEST
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == PARSE_ERROR
    assert wrong_accept.status_code == 406


async def test_records_from_the_call_path_verify_byte_for_byte_whatever_the_arguments_hold(
    tmp_path: Path,
) -> None:
    server = make_server(tmp_path)
    hostile = [
        'quote " and backslash \\ and ünïcödé 名前 🚀',
        "control \x00\x1b[2J\x07 and bidi \u202e and a lone surrogate \ud800",
        "secret ghp_" + "a" * 36 + " and AKIA" + "B" * 16,
    ]
    async with Client(server, mode="legacy") as client:
        for text in hostile:
            await client.call_tool("echo", {"text": text})
        # Off the fast path: an argument the tool does not take, under a hostile secret-naming key.
        refused = await client.call_tool(
            "echo", {"text": "x", 'api_key"\n\u202e': "hunter2hunter2", "n": 1.5}
        )
        assert refused.is_error
    server.audit.close()
    assert server.audit.path is not None
    report = verify_file(server.audit.path)
    assert report.ok and report.problems == [], report.problems
    raw = server.audit.path.read_text(encoding="utf-8")
    assert "ghp_" + "a" * 36 not in raw and "AKIA" + "B" * 16 not in raw
    echoed = [r["arguments"]["text"] for r in report.records if r["type"] == "call"]
    assert echoed[0] == hostile[0] and "\ufffd" in echoed[1] and "\x1b[2J" in echoed[1]
    # The spliced fast path writes, byte for byte, the canonical JSON of the record it reads back.
    for line, record in zip(server.audit.path.read_bytes().splitlines(), report.records, strict=True):
        body = {k: v for k, v in record.items() if k != "hash"}
        assert line == canonical(body).encode("utf-8")[:-1] + f',"hash":"{record["hash"]}"}}'.encode()
    assert {r["type"] for r in report.records} == {"session_start", "call", "result", "session_end"}
    assert any(r.get("redactions") for r in report.records if r["type"] == "call")
