"""The review page through starlette's TestClient: the token, the views, the filters, escaping, and
approvals decided on the page."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp import Client
from starlette.testclient import TestClient

from clients.cli import main
from clients.review_page import HEADERS, build_app
from common.approvals import ApprovalStore
from common.audit import verify_dir
from common.server import AccountableServer
from servers.repo.server import build_server
from tests.helpers import commit, make_repo, of_type, settings_for

pytestmark = pytest.mark.anyio

TOKEN = "t0ken-for-tests"
POLICY = """
[policy]
deny = ["repo.*(path=**/.env*)"]
ask = ["repo.read_file(path=deploy/**)"]
"""
HOSTILE = "<script>alert(1)</script>\x1b[2J\u202egnp.exe\x9b\x7f"


@dataclass
class Recorded:
    root: Path
    audit: Path
    server: AccountableServer
    approvals: ApprovalStore
    pending: str  # the approval ID the deploy/ read asked for


async def recorded(tmp_path: Path) -> Recorded:
    """A repo server session with one allowed, one denied, one asked and one hostile call."""
    with pytest.MonkeyPatch.context() as env:  # committed well before the session (git counts seconds)
        env.setenv("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
        root = make_repo(
            tmp_path / "proj",
            {"README.md": "# demo\n", ".env": "A=1\n", "deploy/prod.toml": "x = 1\n"},
        )
    settings = settings_for(root, POLICY, tmp=tmp_path)
    server = build_server(settings)
    async with Client(server, mode="legacy") as client:
        await client.call_tool("read_file", {"path": "README.md"})
        await client.call_tool("read_file", {"path": ".env"})
        asked = await client.call_tool("read_file", {"path": "deploy/prod.toml"})
        assert asked.is_error is True
        await client.call_tool("read_file", {"path": HOSTILE})
    pending = of_type(server, "approval")[-1]["approval_id"]
    return Recorded(root, settings.audit_path, server, server.approvals, pending)


def page(rec: Recorded) -> TestClient:
    return TestClient(build_app(rec.audit, TOKEN))


def session_url(rec: Recorded) -> str:
    assert rec.server.audit.path is not None
    return f"/session/{rec.server.audit.path.stem}"


async def test_every_request_without_the_right_token_is_refused_with_the_strict_headers(
    tmp_path: Path,
) -> None:
    rec = await recorded(tmp_path)
    web = page(rec)
    for url in ["/", "/?token=wrong", f"{session_url(rec)}", "/static/review.css", "/nosuch", "/chains"]:
        refused = web.get(url)
        assert refused.status_code == 403, url
        assert "onrecord" not in refused.text.replace("onrecord review", "")
        for name, value in HEADERS.items():
            assert refused.headers[name] == value
    assert (
        web.post(f"/approvals/{rec.pending}", data={"token": TOKEN, "action": "approve"}).status_code == 403
    )
    ok = web.get("/", params={"token": TOKEN})
    assert ok.status_code == 200 and rec.server.audit.path is not None
    assert rec.server.audit.path.stem in ok.text or "repo" in ok.text
    assert ok.headers["content-security-policy"].startswith("default-src 'none'; style-src 'self'")
    assert (
        ok.headers["x-content-type-options"] == "nosniff" and ok.headers["referrer-policy"] == "no-referrer"
    )
    assert web.get("/", headers={"X-Onrecord-Token": TOKEN}).status_code == 200
    css = web.get("/static/review.css", params={"token": TOKEN})
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_the_sessions_page_shows_each_session_with_its_counts_and_filters_them(tmp_path: Path) -> None:
    rec = await recorded(tmp_path)
    web = page(rec)
    text = web.get("/", params={"token": TOKEN}).text
    row = re.search(r"<tr><td><a href=[^>]*session/[^<]*</a></td>(.*?)</tr>", text, re.S)
    assert row, text
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))
    # server, client, user, root, calls, denied, asked, errors, refused, chain, ended
    assert cells[0] == "repo" and cells[3] == str(rec.root)
    assert cells[4:10] == ["4", "1", "1", "2", "0", "ok"]
    assert "1 of 1 session(s)" in text
    for kept in ({"server": "repo"}, {"decision": "deny"}, {"decision": "ask"}, {"q": "proj"}):
        assert "1 of 1 session(s)" in web.get("/", params={"token": TOKEN, **kept}).text, kept
    for dropped in ({"server": "testing"}, {"q": "elsewhere"}):
        assert "0 of 1 session(s)" in web.get("/", params={"token": TOKEN, **dropped}).text, dropped


async def test_a_timeline_shows_each_calls_decision_rule_reason_arguments_status_and_duration(
    tmp_path: Path,
) -> None:
    rec = await recorded(tmp_path)
    text = page(rec).get(session_url(rec), params={"token": TOKEN}).text
    assert "4 of 4 call(s)" in text
    denied = next(r for r in text.split("<tr") if ".env" in r and "deny" in r)
    assert "repo.*(path=**/.env*)" in denied and "why: " in denied and "[from " in denied
    assert "<td class=s-denied>denied</td>" in denied and " ms</td>" in denied
    assert "{&quot;path&quot;: &quot;.env&quot;}" in denied  # the redacted arguments, escaped
    asked = next(r for r in text.split("<tr") if "deploy/prod.toml" in r)
    assert "pending_approval" in asked and "repo.read_file(path=deploy/**)" in asked
    assert "approval requested via" in asked
    assert "chain</dt><dd class=chain-ok>verified" in text


@pytest.mark.parametrize(
    ("filters", "kept"),
    [
        ({"decision": "deny"}, [".env"]),
        ({"decision": "ask"}, ["deploy/prod.toml"]),
        ({"status": "ok"}, ["README.md"]),
        ({"status": "pending_approval"}, ["deploy/prod.toml"]),
        ({"tool": "read_file", "q": "readme"}, ["README.md"]),
        ({"tool": "repo.read_file", "decision": "allow", "status": "ok"}, ["README.md"]),
        ({"server": "testing"}, []),
        ({"tool": "search"}, []),
    ],
)
async def test_timeline_filters_come_from_the_query_string(
    tmp_path: Path, filters: dict[str, str], kept: list[str]
) -> None:
    rec = await recorded(tmp_path)
    text = page(rec).get(session_url(rec), params={"token": TOKEN, **filters}).text
    assert f"{len(kept)} of 4 call(s)" in text
    args = re.findall(r"<code class=args>(.*?)</code>", text)
    assert [a for a in args if any(k in a for k in kept)] == args and len(args) == len(kept)
    for value in filters.values():  # the form shows what is applied
        assert f'value="{value}"' in text


async def test_markup_and_control_characters_from_a_record_are_shown_as_inert_text(tmp_path: Path) -> None:
    rec = await recorded(tmp_path)
    web = page(rec)
    for url in [session_url(rec), "/approvals", "/"]:
        text = web.get(url, params={"token": TOKEN, "q": ""}).text
        assert "<script" not in text and "alert(1)</script>" not in text
        assert not any(c in text for c in "\x1b\u202e\x9b\x7f"), url
    timeline = web.get(session_url(rec), params={"token": TOKEN}).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in timeline
    assert "\\u001b[2J" in timeline and "\\u{202e}gnp.exe" in timeline and "\\x9b\\x7f" in timeline
    # A filter's own value is data too.
    echoed = web.get(session_url(rec), params={"token": TOKEN, "q": '"><script>x</script>'}).text
    assert "<script>x" not in echoed and "&quot;&gt;&lt;script&gt;x" in echoed


async def test_approving_on_the_page_grants_records_it_as_the_cli_does_and_the_retry_runs(
    tmp_path: Path,
) -> None:
    rec = await recorded(tmp_path)
    web = page(rec)
    listed = web.get("/approvals", params={"token": TOKEN}).text
    assert rec.pending in listed and "repo.read_file" in listed and "Approve" in listed
    answer = web.post(
        f"/approvals/{rec.pending}",
        params={"token": TOKEN},
        data={"token": TOKEN, "action": "approve", "scope": "once"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and f"done={rec.pending}" in answer.headers["location"]
    assert rec.approvals.get(rec.pending).status == "granted"
    shown = web.get(answer.headers["location"]).text
    assert "is granted" in shown and "may now retry" in shown and "No pending approvals" in shown
    decisions = [r for rep in verify_dir(rec.audit) for r in rep.records if r["type"] == "approval"]
    made = [r for r in decisions if r.get("via") == "onrecord review"]
    assert len(made) == 1 and made[0]["action"] == "granted" and made[0]["scope"] == "once"
    assert made[0]["approval_id"] == rec.pending and made[0]["root"] == str(rec.root)
    assert set(made[0]) >= {"by", "call", "server", "arguments"}
    async with Client(rec.server, mode="legacy") as client:
        retry = await client.call_tool("read_file", {"path": "deploy/prod.toml"})
    assert retry.is_error is False
    # Deciding again changes nothing and says why.
    again = web.post(
        f"/approvals/{rec.pending}", params={"token": TOKEN}, data={"token": TOKEN, "action": "decline"}
    )
    assert again.status_code == 409 and "not pending" in again.text


async def test_declining_on_the_page_records_it_and_the_call_stays_refused(tmp_path: Path) -> None:
    rec = await recorded(tmp_path)
    answer = page(rec).post(
        f"/approvals/{rec.pending}",
        params={"token": TOKEN},
        data={"token": TOKEN, "action": "decline"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and rec.approvals.get(rec.pending).status == "declined"
    decisions = [r for rep in verify_dir(rec.audit) for r in rep.records if r["type"] == "approval"]
    assert [r["action"] for r in decisions if r.get("via") == "onrecord review"] == ["declined"]
    async with Client(rec.server, mode="legacy") as client:
        retry = await client.call_tool("read_file", {"path": "deploy/prod.toml"})
    assert retry.is_error is True


async def test_a_decision_needs_the_token_in_the_form_not_only_in_the_url(tmp_path: Path) -> None:
    rec = await recorded(tmp_path)
    web = page(rec)
    url = f"/approvals/{rec.pending}"
    for data in ({"action": "approve"}, {"action": "approve", "token": "wrong"}):
        assert web.post(url, params={"token": TOKEN}, data=data).status_code == 403
    assert rec.approvals.get(rec.pending).status == "pending"
    by_header = web.post(
        url, headers={"X-Onrecord-Token": TOKEN}, data={"action": "approve"}, follow_redirects=False
    )
    assert by_header.status_code == 303 and rec.approvals.get(rec.pending).status == "granted"


async def test_a_grant_for_a_period_needs_a_duration(tmp_path: Path) -> None:
    rec = await recorded(tmp_path)
    web = page(rec)
    url, form = f"/approvals/{rec.pending}", {"token": TOKEN, "action": "approve", "scope": "for"}
    bad = web.post(url, params={"token": TOKEN}, data={**form, "for": "soon"})
    assert bad.status_code == 409 and "is not a duration" in bad.text
    assert rec.approvals.get(rec.pending).status == "pending"
    good = web.post(url, params={"token": TOKEN}, data={**form, "for": "10m"}, follow_redirects=False)
    assert good.status_code == 303 and rec.approvals.get(rec.pending).scope == "for"


async def test_the_chains_page_reports_an_edited_file(tmp_path: Path) -> None:
    rec = await recorded(tmp_path)
    web = page(rec)
    assert "every chain verified" in web.get("/chains", params={"token": TOKEN}).text
    path = rec.server.audit.path
    assert path is not None
    rec.server.audit.close()
    path.write_text(path.read_text(encoding="utf-8").replace("README.md", "README.mx"), encoding="utf-8")
    text = web.get("/chains", params={"token": TOKEN}).text
    assert "1 file(s) with a broken chain" in text and "BROKEN" in text and "edited" in text


async def test_a_session_lists_the_commits_in_its_root_during_and_after_it(tmp_path: Path) -> None:
    rec = await recorded(tmp_path)
    sha = commit(rec.root, {"NOTES.md": "later\n"}, "a change <b>made</b> after")
    text = page(rec).get(session_url(rec), params={"token": TOKEN}).text
    commits = text.split("<h2>Commits in its root during and after it</h2>")[1]
    assert sha[:12] in commits and "a change &lt;b&gt;made&lt;/b&gt; after" in commits
    assert "initial" not in commits  # made before the session started


async def test_a_long_timeline_shows_its_first_calls_and_says_how_to_find_the_rest(tmp_path: Path) -> None:
    rec = await recorded(tmp_path)
    text = (
        TestClient(build_app(rec.audit, TOKEN, max_rows=2))
        .get(session_url(rec), params={"token": TOKEN})
        .text
    )
    assert "4 of 4 call(s)" in text and "Showing the first 2: narrow them with the filters" in text
    assert len(re.findall(r"<code class=args>", text)) == 2


def test_review_on_a_port_in_use_says_how_to_pick_another(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["review", "--port", str(port), "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port 0 for a free one" in err
