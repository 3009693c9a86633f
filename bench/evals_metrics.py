"""evaluate_predictions' metrics on N binary predictions in Parquet, against pandas + scikit-learn.

Ours: the duckdb computation behind evaluate_predictions (bootstrap off: the anchor draws none),
timed in-process. Anchor: pandas reads the same file and scikit-learn computes the same metrics, in
a venv of its own under the bench cache (pandas, pyarrow and scikit-learn from the package
registry). Every value must agree within 1e-9. Goal: anchor / ours >= 5.

    .venv/bin/python bench/evals_metrics.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigrepo import cache_dir

ANCHOR = r"""
import json, sys, time
import pandas as pd
from sklearn import metrics as m
t = time.perf_counter()  # imports left out: the anchor is timed from reading the file on
df = pd.read_parquet(sys.argv[1])
y, s = df["y"].to_numpy(), df["s"].to_numpy()
p = (s >= 0.5).astype(int)
out = {
    "accuracy": m.accuracy_score(y, p), "precision": m.precision_score(y, p), "recall": m.recall_score(y, p),
    "f1": m.f1_score(y, p), "roc_auc": m.roc_auc_score(y, s), "pr_auc": m.average_precision_score(y, s),
    "log_loss": m.log_loss(y, s), "brier": m.brier_score_loss(y, s),
}
for avg in ("micro", "macro", "weighted"):
    out[f"precision_{avg}"] = m.precision_score(y, p, average=avg)
    out[f"recall_{avg}"] = m.recall_score(y, p, average=avg)
    out[f"f1_{avg}"] = m.f1_score(y, p, average=avg)
print(json.dumps({"seconds": time.perf_counter() - t, "values": {k: float(v) for k, v in out.items()}}))
"""


def anchor_python() -> Path:
    env_dir = cache_dir() / "evals-anchor-venv"
    exe = env_dir / "bin" / "python"
    if not exe.exists():
        venv.create(env_dir, with_pip=True)
        subprocess.run(
            [str(exe), "-m", "pip", "install", "--quiet", "pandas", "pyarrow", "scikit-learn"], check=True
        )
    return exe


def make_file(rows: int) -> Path:
    import duckdb

    path = cache_dir() / f"evals-{rows}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Scores rounded to 4 decimals: many ties, as real model scores have.
        duckdb.sql(
            f"COPY (SELECT (random() < 0.3)::INT AS y, round(least(1, greatest(0, 0.35 + random() * 0.5 "
            f"- 0.1)), 4) AS s FROM range({int(rows)})) TO '{path}' (FORMAT parquet)"
        )
    return path


def ours(path: Path) -> tuple[float, dict[str, float]]:
    from servers.evals.context import EvalsContext
    from servers.evals.evaluate import compute_file
    from servers.evals.frame import Columns
    from servers.evals.settings import EvalsSettings

    ctx = EvalsContext.create(path.parent, EvalsSettings(bootstrap=0, max_items_stored=0))
    started = time.perf_counter()
    result = compute_file(ctx, path, "binary", Columns(label="y", score="s"))
    return time.perf_counter() - started, result.point.values


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args()
    path = make_file(args.rows)
    exe = anchor_python()
    ours_s, ours_values = ours(path)
    out = subprocess.run([str(exe), "-c", ANCHOR, str(path)], capture_output=True, text=True, check=True)
    anchor = json.loads(out.stdout)
    worst = max(abs(ours_values[k] - v) for k, v in anchor["values"].items())
    print(f"rows: {args.rows:,}")
    print(f"ours (duckdb): {ours_s:.2f}s; anchor (pandas + scikit-learn): {anchor['seconds']:.2f}s")
    print(f"ratio anchor/ours: {anchor['seconds'] / ours_s:.2f} (goal >= 5)")
    print(f"largest difference over {len(anchor['values'])} metrics: {worst:.3g} (goal <= 1e-9)")


if __name__ == "__main__":
    main()
