"""`run_tests` against a bare `pytest -q` on a real third-party test suite.

The suite: more-itertools' source distribution (it ships its tests), from the package registry,
cached under the bench cache. Same interpreter for both sides (the one onrecord runs on), runs
alternating. Prints the wall-time ratio (goal <= 1.15) and checks that `run_tests` counts equal
what pytest itself reports in junit XML for the same suite.

    .venv/bin/python bench/testing.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import anyio
from mcp import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigrepo import sdist_tree
from common.config import load_settings
from servers.testing.server import build_server

PACKAGE = "more-itertools==11.2.1"


def suite() -> Path:
    return sdist_tree(PACKAGE, "more_itertools-*.tar.gz", "more-itertools-suite")


def bare(root: Path, junit: Path | None = None) -> float:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if junit is not None:
        args.append(f"--junit-xml={junit}")
    started = time.perf_counter()
    subprocess.run(args, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


async def main(runs: int) -> int:
    root = suite()
    tmp = Path(tempfile.mkdtemp(prefix="onrecord-bench-"))
    server = build_server(
        load_settings(root, managed_file=tmp / "none", user_file=tmp / "none", state=tmp / "state")
    )
    ours: list[float] = []
    base: list[float] = []
    data: dict = {}
    async with Client(server) as client:
        await client.call_tool("run_tests", {})  # warm both sides' caches
        bare(root)
        for _ in range(runs):
            base.append(bare(root))
            started = time.perf_counter()
            result = await client.call_tool("run_tests", {})
            ours.append(time.perf_counter() - started)
            data = result.structured_content or {}
    junit = tmp / "junit.xml"
    bare(root, junit)
    suite_xml = ET.parse(junit).getroot().find("testsuite")  # noqa: S314 - pytest's own output
    assert suite_xml is not None
    expected = {
        "total": int(suite_xml.get("tests", 0)),
        "failed": int(suite_xml.get("failures", 0)),
        "errors": int(suite_xml.get("errors", 0)),
        "skipped": int(suite_xml.get("skipped", 0)),
    }
    c = data["counts"]
    got = {
        "total": c["tests"],
        "failed": c["failed"],
        "errors": c["errors"],
        "skipped": c["skipped"] + c["xfailed"],
    }
    b, o = statistics.median(base), statistics.median(ours)
    print(f"suite: {root.name}, status {data['status']}, counts {c}")
    print(f"junit XML: {expected}  run_tests: {got}  -> {'equal' if got == expected else 'DIFFERENT'}")
    print(f"anchor  bare pytest -q:          median {b:6.2f} s over {runs} runs")
    print(f"onrecord run_tests (in-memory):  median {o:6.2f} s")
    print(f"ratio run_tests / pytest -q: {o / b:.3f}  (goal <= 1.15)")
    return 0 if got == expected else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    sys.exit(anyio.run(main, p.parse_args().runs))
