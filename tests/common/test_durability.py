"""Four real server processes in parallel, one killed with SIGKILL mid-run: nothing reported is lost."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from clients.review import render_verify
from common.audit import verify_file
from tests.helpers import make_repo

CALLS = 40
KILL_AFTER = 12


class Peer:
    """A raw JSON-RPC client over a server's stdio, speaking the handshake era as hosts do."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clients.cli", "serve", "repo", "--root", str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=os.environ.copy(),
        )
        self.answered: list[int] = []
        self.next_id = 1

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> int:
        rid = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return rid

    def read(self) -> dict[str, Any] | None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        return json.loads(line) if line else None

    def handshake(self) -> None:
        self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "durability", "version": "1"},
            },
        )
        assert self.read() is not None
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def run(self, kill_after: int | None) -> None:
        for n in range(CALLS):
            args = {"query": "value", "context_lines": 1} if n % 2 else {"path": f"data/f{n % 5}.txt"}
            rid = self.request("tools/call", {"name": "search" if n % 2 else "read_file", "arguments": args})
            if kill_after is not None and n == kill_after:
                self.proc.send_signal(signal.SIGKILL)  # mid-run, with a call in flight
                return
            response = self.read()
            if response is None:
                return
            assert response["id"] == rid and "result" in response
            self.answered.append(rid)

    def close(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self.proc.wait(timeout=20)


def test_parallel_servers_with_one_killed_lose_no_reported_call(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "project", {f"data/f{i}.txt": f"value {i}\n" * 50 for i in range(5)})
    peers = [Peer(root) for _ in range(4)]
    for peer in peers:
        peer.handshake()
    victim = peers[0]
    threads = [
        threading.Thread(target=p.run, args=(KILL_AFTER if p is victim else None,), daemon=True)
        for p in peers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for peer in peers:
        peer.close()
    assert victim.proc.returncode == -signal.SIGKILL

    audit = Path(os.environ["ONRECORD_STATE_DIR"]) / "audit"
    files = {int(p.name.split("-")[1]): p for p in audit.glob("*/repo-*.jsonl")}
    assert set(files) == {p.proc.pid for p in peers}
    for peer in peers:
        report = verify_file(files[peer.proc.pid])
        calls = {r["request_id"]: r for r in report.records if r["type"] == "call"}
        results = {r["call_id"] for r in report.records if r["type"] == "result"}
        for rid in peer.answered:
            assert str(rid) in calls, f"answered request {rid} has no call record"
            assert calls[str(rid)]["call_id"] in results, f"answered request {rid} has no result record"
        if peer is victim:
            assert len(peer.answered) == KILL_AFTER
            assert report.ok, render_verify([report])
            assert {p.kind for p in report.problems} <= {"torn_tail", "unfinished_call", "no_end"}
            if not files[peer.proc.pid].read_bytes().endswith(b"\n"):
                assert "torn_tail" in {p.kind for p in report.problems}
        else:
            assert len(peer.answered) == CALLS
            assert report.ok and report.problems == [], render_verify([report])
