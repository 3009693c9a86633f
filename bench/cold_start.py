"""Cold start over stdio: spawn to answered `initialize` + `tools/list`.

Ours: `onrecord serve repo --root REPO`. Anchor: the reference `mcp-server-git --repository REPO`,
installed from the package registry into a venv of its own under the bench cache. Both are driven
with raw JSON-RPC lines (no client SDK in the measurement), alternating, the same number of runs.
Goal: ratio <= 1.0 for `serve repo`, <= 1.05 for `serve all` (--server all).

A start after the first answers tools/list from the listing the first kept (common.listing), as
every start does until onrecord, a library or Python changes; --cold removes it before each of our
starts, to time the first start after such a change.

    .venv/bin/python bench/cold_start.py [--runs 10] [--server repo|all] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigrepo import cache_dir
from common import listing
from servers import ALL, SERVERS

INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


def anchor_command(repo: Path) -> list[str]:
    env_dir = cache_dir() / "anchor-venv"
    exe = env_dir / "bin" / "mcp-server-git"
    if not exe.exists():
        venv.create(env_dir, with_pip=True)
        subprocess.run([str(env_dir / "bin" / "pip"), "install", "--quiet", "mcp-server-git"], check=True)
    return [str(exe), "--repository", str(repo)]


def time_start(command: list[str]) -> tuple[float, int]:
    """Seconds from spawn to the tools/list answer, and how many tools were listed."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write((json.dumps(INIT) + "\n").encode())
    proc.stdin.flush()
    while json.loads(proc.stdout.readline()).get("id") != 1:
        pass
    proc.stdin.write((json.dumps(INITIALIZED) + "\n" + json.dumps(LIST) + "\n").encode())
    proc.stdin.flush()
    while True:
        message = json.loads(proc.stdout.readline())
        if message.get("id") == 2:
            break
    elapsed = time.perf_counter() - started
    proc.stdin.close()
    proc.wait(timeout=10)
    return elapsed, len(message["result"]["tools"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=10)
    p.add_argument(
        "--server", default="repo", help="which of ours to start: repo (goal <= 1.0) or all (<= 1.05)"
    )
    p.add_argument("--cold", action="store_true", help="no kept tool listing: each start builds every tool")
    args = p.parse_args()
    repo = Path(__file__).resolve().parent.parent
    ours_cmd = [sys.executable, "-m", "clients.cli", "serve", args.server, "--root", str(repo)]
    anchor_cmd = anchor_command(repo)
    os.environ.setdefault("ONRECORD_STATE_DIR", str(cache_dir() / "state"))
    time_start(ours_cmd)  # warm the page cache for both
    time_start(anchor_cmd)
    ours, anchor = [], []
    tools = (0, 0)
    names = list(SERVERS) if args.server == ALL else [args.server]
    kept = listing.path(Path(os.environ["ONRECORD_STATE_DIR"]), args.server, listing.key(names))
    for _ in range(args.runs):
        if args.cold:
            kept.unlink(missing_ok=True)
        o, n_ours = time_start(ours_cmd)
        a, n_anchor = time_start(anchor_cmd)
        ours.append(o)
        anchor.append(a)
        tools = (n_ours, n_anchor)
    o, a = statistics.median(ours), statistics.median(anchor)
    print(f"runs: {args.runs} each, alternating")
    print(
        f"anchor  mcp-server-git ({tools[1]} tools):  median {a * 1000:7.1f} ms  (min {min(anchor) * 1000:.1f}, max {max(anchor) * 1000:.1f})"
    )
    print(
        f"onrecord serve {args.server}{' --cold' if args.cold else ''} ({tools[0]} tools):   median {o * 1000:7.1f} ms  (min {min(ours) * 1000:.1f}, max {max(ours) * 1000:.1f})"
    )
    goal = "1.0" if args.server == "repo" else "1.05"
    print(f"ratio onrecord / mcp-server-git: {o / a:.3f}  (goal <= {goal}); load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
