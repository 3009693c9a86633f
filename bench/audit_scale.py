"""Audit review at scale: `onrecord audit sessions`, `tail -n 20` and `verify` on a million records.

The records are written through the real `AuditLog` (fsync off, to build the directory quickly):
SESSIONS files of realistic call/result pairs, cached under the bench cache. Each command runs as its
own process, so the figures include start-up, and its peak memory is the process's max RSS.
Anchor: `sha256sum` over the same files (reading and hashing every byte once, in C), run interleaved
with `verify`, which must do that and parse every record. Goals: sessions <= 2 s (warm summary
cache; the cold first run is printed too), tail <= 0.5 s, verify >= 200,000 records/s, memory <= 200 MB.

    .venv/bin/python bench/audit_scale.py [--records 1000000] [--sessions 200] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigrepo import cache_dir
from common.audit import AuditLog, audit_files

ONRECORD = str(Path(sys.executable).with_name("onrecord"))


def build(directory: Path, records: int, sessions: int) -> None:
    """`records` records in `sessions` files, as servers write them: a start, call/result pairs."""
    marker = directory / ".complete"
    if marker.exists() and marker.read_text(encoding="utf-8") == f"{records}/{sessions}":
        return
    shutil.rmtree(directory, ignore_errors=True)
    per = records // sessions
    for s in range(sessions):
        log = AuditLog(directory, f"repo{s % 3}", fsync="off", session=lambda s=s: {"root": f"/work/p{s}"})
        for i in range((per - 2) // 2):
            call_id = f"{s}-{i}"
            log.write(
                "call",
                {
                    "call_id": call_id,
                    "tool": "repo.read_file",
                    "arguments": {"path": f"src/module_{i % 97}.py", "start_line": 1 + i % 400},
                    "decision": {
                        "action": "deny" if i % 50 == 0 else "allow",
                        "rule": "default",
                        "reason": "no rule matched; policy.default = 'allow'",
                        "enforced": True,
                    },
                    "client": "bench/1.0",
                },
            )
            log.write(
                "result",
                {
                    "call_id": call_id,
                    "tool": "repo.read_file",
                    "status": "denied" if i % 50 == 0 else "ok",
                    "duration_ms": 1.5,
                    "size": 2048,
                    "digest": "sha256:" + "0" * 64,
                },
            )
        log.close()
    marker.write_text(f"{records}/{sessions}", encoding="utf-8")


def timed(command: list[str]) -> tuple[float, float, int]:
    """Seconds, peak RSS in MB, and the exit code of one command run as its own process."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    directory = cache_dir() / f"audit-{args.records}-{args.sessions}"
    started = time.perf_counter()
    build(directory, args.records, args.sessions)
    files = audit_files(directory)
    size = sum(p.stat().st_size for p in files)
    print(
        f"{len(files)} files, {args.records:,} records, {size / 1e6:.0f} MB (ready in {time.perf_counter() - started:.1f} s)"
    )

    cache = directory / ".summaries.json"
    cache.unlink(missing_ok=True)
    cold = timed([ONRECORD, "audit", "sessions", "--dir", str(directory)])
    print(f"audit sessions, cold (no summary cache): {cold[0]:.2f} s, {cold[1]:.0f} MB")

    figures: dict[str, list[tuple[float, float]]] = {"sessions": [], "tail": [], "verify": [], "anchor": []}
    for _ in range(args.runs):
        for name, command in (
            ("sessions", [ONRECORD, "audit", "sessions", "--dir", str(directory)]),
            ("tail", [ONRECORD, "audit", "tail", "-n", "20", "--dir", str(directory)]),
            ("verify", [ONRECORD, "audit", "verify", "--dir", str(directory)]),
            ("anchor", ["sha256sum", *map(str, files)]),
        ):
            seconds, rss, code = timed(command)
            if code != 0:
                raise SystemExit(f"{name} exited {code}")
            figures[name].append((seconds, rss))

    def median(name: str) -> tuple[float, float]:
        return (
            statistics.median(s for s, _ in figures[name]),
            max(m for _, m in figures[name]),
        )

    sessions, tail, verify, anchor = (median(n) for n in ("sessions", "tail", "verify", "anchor"))
    rate = args.records / verify[0]
    print(f"audit sessions (warm): {sessions[0]:.2f} s, {sessions[1]:.0f} MB   goal <= 2 s")
    print(f"audit tail -n 20:      {tail[0]:.2f} s, {tail[1]:.0f} MB   goal <= 0.5 s")
    print(
        f"audit verify:          {verify[0]:.2f} s, {verify[1]:.0f} MB = {rate:,.0f} records/s   goal >= 200,000/s"
    )
    print(f"anchor sha256sum:      {anchor[0]:.2f} s   verify / anchor = {verify[0] / anchor[0]:.2f}x")
    peak = max(sessions[1], tail[1], verify[1], cold[1])
    print(f"peak memory of any command: {peak:.0f} MB   goal <= 200 MB")


if __name__ == "__main__":
    main()
