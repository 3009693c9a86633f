from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import pytest

from tests.evals.conftest import Call, Session, csv
from tests.evals.test_evaluate import structured
from tests.helpers import commit, first_text

pytestmark = pytest.mark.anyio


def predictions(n: int, p_correct: float, seed: int, *, flip_seed: int = 1) -> list[list[Any]]:
    """Rows (id, label, score, user): labels fixed by `flip_seed`, the model right with p_correct."""
    labels = random.Random(flip_seed)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        y = int(labels.random() < 0.5)
        right = rng.random() < p_correct
        s = round(rng.uniform(0.55, 1.0) if right == bool(y) else rng.uniform(0.0, 0.45), 3)
        rows.append([f"q{i}", y, s, f"u{i % 20}"])
    return rows


async def evaluate(call: Call, path: str, name: str, **extra: Any) -> dict[str, Any]:
    return structured(
        await call(
            "evaluate_predictions",
            path=path,
            task="binary",
            label="y",
            score="s",
            item_id="id",
            name=name,
            **extra,
        )
    )


async def test_paired_comparison_uses_per_item_differences(make_client: Callable[..., Session]) -> None:
    base_rows, cand_rows = predictions(400, 0.7, seed=2), predictions(400, 0.85, seed=3)
    files = {
        "base.csv": csv(["id", "y", "s", "user"], base_rows),
        "cand.csv": csv(["id", "y", "s", "user"], cand_rows),
    }
    async with make_client(files) as call:
        old = await evaluate(call, "base.csv", "m")
        new = await evaluate(call, "cand.csv", "m")
        out = structured(await call("compare_runs", baseline=old["run"]["id"], candidate=new["run"]["id"]))
    assert out["paired_items"] == 400
    by = {m["metric"]: m for m in out["metrics"]}
    acc = by["accuracy"]
    # Reference: the mean and standard error of per-item differences in correctness.
    d = [
        int((c[2] >= 0.5) == c[1]) - int((b[2] >= 0.5) == b[1])
        for b, c in zip(base_rows, cand_rows, strict=True)
    ]
    mean = sum(d) / len(d)
    se = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d))
    assert acc["delta"] == pytest.approx(mean)
    assert acc["method"] == "paired_mean"
    assert acc["ci_low"] == pytest.approx(mean - 1.959963984540054 * se)
    assert acc["significant"] is True and acc["change"] == "better" and acc["direction"] == "higher"
    assert by["roc_auc"]["method"] == "paired_bootstrap" and by["roc_auc"]["ci_low"] is not None
    assert by["log_loss"]["direction"] == "lower"


async def test_clustered_standard_errors_by_group(make_client: Callable[..., Session]) -> None:
    base_rows, cand_rows = predictions(300, 0.7, seed=4), predictions(300, 0.75, seed=5)
    files = {
        "base.csv": csv(["id", "y", "s", "user"], base_rows),
        "cand.csv": csv(["id", "y", "s", "user"], cand_rows),
    }
    async with make_client(files) as call:
        old = await evaluate(call, "base.csv", "m", group="user")
        new = await evaluate(call, "cand.csv", "m", group="user")
        out = structured(await call("compare_runs", baseline=old["run"]["id"], candidate=new["run"]["id"]))
    assert out["clusters"] == 20
    acc = next(m for m in out["metrics"] if m["metric"] == "accuracy")
    assert acc["method"] == "paired_clustered"
    # Reference: the cluster-robust (CR1-style) standard error of a mean difference. Items pair by
    # id, sorted as text, but the sums do not depend on the order.
    d = [
        int((c[2] >= 0.5) == c[1]) - int((b[2] >= 0.5) == b[1])
        for b, c in zip(base_rows, cand_rows, strict=True)
    ]
    mean = sum(d) / len(d)
    sums: dict[str, float] = {}
    for row, x in zip(base_rows, d, strict=True):
        sums[row[3]] = sums.get(row[3], 0.0) + (x - mean)
    k = len(sums)
    se = math.sqrt(k / (k - 1) * sum(e * e for e in sums.values())) / len(d)
    assert acc["ci_high"] - acc["delta"] == pytest.approx(1.959963984540054 * se)


async def test_small_change_is_not_significant_and_gets_a_power_hint(
    make_client: Callable[..., Session],
) -> None:
    base_rows, cand_rows = predictions(40, 0.70, seed=6), predictions(40, 0.74, seed=7)
    files = {
        "base.csv": csv(["id", "y", "s", "user"], base_rows),
        "cand.csv": csv(["id", "y", "s", "user"], cand_rows),
    }
    async with make_client(files) as call:
        old = await evaluate(call, "base.csv", "m")
        new = await evaluate(call, "cand.csv", "m")
        out = structured(await call("compare_runs", baseline=old["run"]["id"], candidate=new["run"]["id"]))
    acc = next(m for m in out["metrics"] if m["metric"] == "accuracy")
    if acc["delta"]:
        assert acc["significant"] is False
        assert "more items" in acc["power_hint"]


async def test_runs_are_found_by_name_at_a_git_ref(evals: Call) -> None:
    root = evals.root  # type: ignore[attr-defined]
    first = structured(await evals("record_run", name="m", metrics={"accuracy": 0.8}))
    commit(root, {"model.py": "v = 2\n"}, "model v2")
    second = structured(await evals("record_run", name="m", metrics={"accuracy": 0.85}))
    out = structured(await evals("compare_runs", baseline="m@HEAD~1", candidate="m@main"))
    assert out["baseline"]["id"] == first["run"]["id"]
    assert out["candidate"]["id"] == second["run"]["id"]
    assert out["paired_items"] == 0
    acc = out["metrics"][0]
    assert acc["delta"] == pytest.approx(0.05) and acc["relative_delta"] == pytest.approx(0.0625)
    assert acc["method"] == "none" and acc["significant"] is None
    missing = await evals("compare_runs", baseline="m@HEAD~1", candidate="other@main")
    assert missing.is_error and "no run named 'other'" in first_text(missing)
    hostile = await evals("compare_runs", baseline="m@--output=/tmp/x", candidate="m@main")
    assert hostile.is_error


async def test_gates_cover_every_verdict(make_client: Callable[..., Session]) -> None:
    big_base, big_cand = predictions(400, 0.7, seed=2), predictions(400, 0.85, seed=3)
    tiny_base, tiny_cand = predictions(30, 0.7, seed=8), predictions(30, 0.68, seed=9)
    files = {
        "base.csv": csv(["id", "y", "s", "user"], big_base),
        "cand.csv": csv(["id", "y", "s", "user"], big_cand),
        "tiny_base.csv": csv(["id", "y", "s", "user"], tiny_base),
        "tiny_cand.csv": csv(["id", "y", "s", "user"], tiny_cand),
    }
    async with make_client(files) as call:
        base = (await evaluate(call, "base.csv", "big"))["run"]["id"]
        cand = (await evaluate(call, "cand.csv", "big"))["run"]["id"]
        gates = {
            "better": {"metric": "accuracy", "max_drop": 0.01},
            "floor": {"metric": "accuracy", "min": 0.5},
            "high_floor": {"metric": "accuracy", "min": 0.99},
            "brier": {"metric": "brier", "max": 0.5},
            "nothing": {"metric": "latency_ms", "max": 100},
        }
        out = structured(await call("check_gates", candidate=cand, baseline=base, gates=gates))
        by = {g["gate"]: g for g in out["gates"]}
        assert by["better"]["verdict"] == "improved"
        assert by["better"]["by_how_much"] > 0.01 and by["better"]["baseline"] is not None
        assert by["floor"]["verdict"] == "pass" and by["floor"]["by_how_much"] > 0.3
        assert by["high_floor"]["verdict"] == "fail" and by["high_floor"]["by_how_much"] < 0
        assert by["brier"]["verdict"] == "pass"
        assert by["nothing"]["verdict"] == "skipped"
        assert out["verdict"] == "fail"
        # Reversed, the drop is far beyond the tolerance: a plain fail.
        out = structured(
            await call(
                "check_gates",
                candidate=base,
                baseline=cand,
                gates={"acc": {"metric": "accuracy", "max_drop": 0.01}},
            )
        )
        assert out["gates"][0]["verdict"] == "fail" and out["verdict"] == "fail"
        # 30 items cannot tell a small change: inconclusive, not fail.
        tb = (await evaluate(call, "tiny_base.csv", "tiny"))["run"]["id"]
        tc = (await evaluate(call, "tiny_cand.csv", "tiny"))["run"]["id"]
        out = structured(
            await call(
                "check_gates",
                candidate=tc,
                baseline=tb,
                gates={"acc": {"metric": "accuracy", "max_drop": 0.02}},
            )
        )
        assert out["gates"][0]["verdict"] == "inconclusive"
        assert out["verdict"] == "inconclusive"
        out = structured(
            await call("check_gates", candidate=tc, gates={"n": {"metric": "accuracy", "min_samples": 100}})
        )
        assert (
            out["gates"][0]["verdict"] == "inconclusive" and "fewer than the 100" in out["gates"][0]["reason"]
        )
        out = structured(
            await call("check_gates", candidate=cand, gates={"acc": {"metric": "accuracy", "min": 0.5}})
        )
        assert out["verdict"] == "pass"


async def test_gates_come_from_settings_when_not_passed(make_client: Callable[..., Session]) -> None:
    session = make_client({"a.txt": "a\n"}, gates={"accuracy": {"min": 0.9}})
    async with session as call:
        run = structured(await call("record_run", name="m", metrics={"accuracy": 0.95}))["run"]["id"]
        out = structured(await call("check_gates", candidate=run))
        assert out["verdict"] == "pass" and out["gates"][0]["metric"] == "accuracy"
        needs = await call("check_gates", candidate=run, gates={"a": {"metric": "accuracy", "max_drop": 0.1}})
        assert needs.is_error and "pass `baseline`" in first_text(needs)


async def test_no_gates_is_an_error(evals: Call) -> None:
    run = structured(await evals("record_run", name="m", metrics={"accuracy": 0.95}))["run"]["id"]
    out = await evals("check_gates", candidate=run)
    assert out.is_error and "no gates" in first_text(out)
