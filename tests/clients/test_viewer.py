"""A record is data: control characters in what a call sent cannot steer the reviewer's terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client, MCPError

from clients.cli import main
from servers.repo.server import build_server
from tests.helpers import make_repo, settings_for

pytestmark = pytest.mark.anyio

ATTACKS = {
    "cursor_up_erase": "\x1b[1A\x1b[2K",
    "newline_forged_row": "\n99   12:00:00.000  result    repo.read_file  ok",
    "carriage_return": "\r",
    "c1_csi": "\x9b2K",
    "bidi_override": "\u202egnp.exe",
    "del": "\x7f",
    "line_separator": "\u2028",
}
RAW = [
    c
    for attack in ATTACKS.values()
    for c in attack
    if ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u202e\u2028"
]


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_audit_views_show_control_characters_escaped(
    attack: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "proj", {"README.md": "x\n", ".env": "A=1\n"})
    settings = settings_for(root, tmp=tmp_path)
    server = build_server(settings)
    payload = ATTACKS[attack]
    async with Client(server, mode="legacy") as client:
        await client.call_tool("read_file", {"path": f".env{payload}", "start_line": 1})
        with pytest.raises(MCPError):  # an unknown tool name: a protocol error, recorded all the same
            await client.call_tool(f"read_file{payload}", {"path": payload})
        await client.call_tool("read_file", {"path": ".env"})
    server.audit.close()
    audit = settings.audit_path
    session = next(audit.glob("*/*.jsonl"))
    for argv in (
        ["audit", "tail", "-n", "20", "--dir", str(audit)],
        ["audit", "show", session.stem, "--dir", str(audit)],
        ["audit", "tail", "--only", "denied", "--dir", str(audit)],
        ["audit", "sessions", "--dir", str(audit)],
    ):
        main(argv)
        out = capsys.readouterr().out
        lines = out.splitlines()
        for c in {c for c in payload if c in RAW or c == "\n"} - {"\n"}:
            assert c not in out, (argv, repr(c))
        # Newlines only end rows: no record can add one, so no row can be forged.
        assert all("12:00:00.000" not in line or "\\x0a" in line or "\\n" in line for line in lines)
    # Unknown tool names are still recorded, as data.
    calls = [json.loads(line) for line in session.read_text(encoding="utf-8").split("\n") if line]
    assert any(c.get("tool", "").endswith(payload) for c in calls if c["type"] == "call")
