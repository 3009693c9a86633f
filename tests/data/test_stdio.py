"""The data server over real stdio, as a host runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.data.conftest import SALES
from tests.helpers import make_repo


def test_query_over_real_stdio(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "stdio-proj", {"data/sales.csv": SALES, ".env": "TOKEN=stdio-canary\n"})
    sql = "SELECT count(*) AS n, sum(amount) AS total FROM 'data/sales.csv'"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "clients.cli",
            "call",
            "data",
            "query",
            json.dumps({"sql": sql}),
            "--root",
            str(root),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stderr
    assert '"rows": [' in out.stdout and "17.75" in out.stdout and '"data/sales.csv"' in out.stdout
    denied = subprocess.run(
        [
            sys.executable,
            "-m",
            "clients.cli",
            "call",
            "data",
            "query",
            json.dumps({"sql": "SELECT * FROM read_csv('.env')"}),
            "--root",
            str(root),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        env=os.environ.copy(),
    )
    assert "stdio-canary" not in denied.stdout + denied.stderr
    assert "policy does not let you read" in denied.stdout + denied.stderr
