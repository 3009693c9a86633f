"""The review page in a real browser (Debian's chromium driven by Playwright): the token, a filter,
a session's timeline, an approval granted on the page that lets the agent's retry run, and a
hostile record shown as inert text. Saves the timeline's screenshot for the README."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from mcp import Client
from playwright.async_api import Dialog, async_playwright, expect
from starlette.types import ASGIApp

from clients.review_page import build_app
from servers.repo.server import build_server
from tests.clients.test_review_page import HOSTILE, POLICY, TOKEN
from tests.helpers import make_repo, of_type, settings_for

CHROMIUM = Path("/usr/bin/chromium")
# The README's screenshot is refreshed only when asked (ONRECORD_SCREENSHOT=1), so a test run leaves
# the tree as it found it; otherwise it goes to the test's own directory.
README_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "review-timeline.png"

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (`apt-get install -y chromium`)",
    ),
]


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """The app on a free port of 127.0.0.1, served by uvicorn in a thread, as `onrecord review` does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # connections wait here until uvicorn accepts them: no need to poll for it
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


async def test_a_reviewer_filters_opens_a_session_and_approves_a_call_the_agent_then_retries(
    tmp_path: Path,
) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
        root = make_repo(
            tmp_path / "proj", {"README.md": "# demo\n", ".env": "A=1\n", "deploy/prod.toml": "x = 1\n"}
        )
    settings = settings_for(root, POLICY, tmp=tmp_path)
    server = build_server(settings)
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    async with (
        Client(server, mode="legacy") as agent,
        async_playwright() as pw,
    ):
        assert (await agent.call_tool("read_file", {"path": "README.md"})).is_error is False
        assert (await agent.call_tool("read_file", {"path": ".env"})).is_error is True
        await agent.call_tool("read_file", {"path": HOSTILE})
        asked = await agent.call_tool("read_file", {"path": "deploy/prod.toml"})
        assert asked.is_error is True
        pending = of_type(server, "approval")[-1]["approval_id"]
        assert server.audit.path is not None
        session = server.audit.path.stem

        browser = await pw.chromium.launch(executable_path=str(CHROMIUM))
        page = await browser.new_page(viewport={"width": 1440, "height": 900})
        page.on("dialog", on_dialog)
        with serving(build_app(settings.audit_path, TOKEN)) as base:
            refused = await page.goto(f"{base}/")
            assert refused is not None and refused.status == 403
            await expect(page.locator("body")).to_contain_text("needs the token")
            wrong = await page.goto(f"{base}/?token=not-it")
            assert wrong is not None and wrong.status == 403

            shown = await page.goto(f"{base}/?token={TOKEN}")
            assert shown is not None and shown.status == 200
            await expect(page.locator("h1")).to_have_text("Sessions")

            # Filter the sessions to those with a denied call, then open the one left.
            await page.select_option("select[name=decision]", "deny")
            await page.select_option("select[name=server]", "repo")
            await page.click("form.filters button[type=submit]")
            await expect(page.locator("main p").first).to_have_text("1 of 1 session(s), newest first.")
            await page.click("table.sessions a")
            await expect(page.locator("h1")).to_have_text(f"Session {session}")
            # The filter came along: only the denied call, with the rule that denied it.
            await expect(page.locator("table.timeline tbody tr")).to_have_count(1)
            await expect(page.locator("code.rule")).to_have_text("repo.*(path=**/.env*)")
            await expect(page.locator(".why")).to_contain_text("why: ")

            # Every call again: the hostile record is visible as literal text and runs nothing.
            await page.click("form.filters a")
            await expect(page.locator("table.timeline tbody tr")).to_have_count(4)
            hostile = page.locator("code.args", has_text="alert(1)")
            await expect(hostile).to_contain_text("<script>alert(1)</script>")
            await expect(hostile).to_contain_text("\\u001b[2J\\u{202e}gnp.exe\\x9b\\x7f")
            assert await page.locator("main script").count() == 0
            text = await page.locator("body").inner_text()
            assert not any(c in text for c in "\x1b\u202e\x9b\x7f")

            # The pending approval: approve it once on the page.
            await page.click("header nav a:has-text('Approvals')")
            row = page.locator(f"#approval-{pending}")
            await expect(row).to_contain_text("repo.read_file")
            await row.locator("select[name=scope]").select_option("once")
            await row.locator("button[value=approve]").click()
            await expect(page.locator(".notice")).to_contain_text(
                f"Approval {pending} for repo.read_file is granted"
            )
            await expect(page.locator("main")).to_contain_text("No pending approvals.")

            # The agent retries the same call, and it runs.
            retry = await agent.call_tool("read_file", {"path": "deploy/prod.toml"})
            assert retry.is_error is False

            await page.goto(f"{base}/session/{session}?token={TOKEN}&tool=read_file")
            deploy = page.locator("table.timeline tbody tr", has_text="deploy/prod.toml")
            await expect(deploy).to_have_count(2)
            await expect(deploy.nth(0)).to_contain_text("pending_approval")
            await expect(deploy.nth(1).locator("td.s-ok")).to_have_text("ok")
            shot = (
                README_SCREENSHOT
                if os.environ.get("ONRECORD_SCREENSHOT") == "1"
                else tmp_path / "timeline.png"
            )
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        await browser.close()
    assert dialogs == []
