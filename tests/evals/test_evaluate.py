from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from mcp.types import CallToolResult

from tests.evals import reference
from tests.evals.conftest import Call, Session, csv
from tests.helpers import first_text

pytestmark = pytest.mark.anyio


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, first_text(result)
    assert result.structured_content is not None
    return result.structured_content


def values(result: dict[str, Any]) -> dict[str, float]:
    return {m["name"]: m["value"] for m in result["metrics"] if m["value"] is not None}


def binary_rows(n: int = 400, seed: int = 7) -> list[list[Any]]:
    """Labels, scores rounded to one decimal (many ties), a slice and a cluster per row."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        y = int(rng.random() < 0.4)
        s = round(min(1.0, max(0.0, rng.gauss(0.35 + 0.3 * y, 0.2))), 1)
        rows.append([f"item{i}", y, s, rng.choice(["web", "mobile", "api"]), f"user{i % 37}"])
    return rows


async def test_binary_metrics_match_reference_definitions(make_client: Callable[..., Session]) -> None:
    rows = binary_rows()
    files = {"preds.csv": csv(["id", "label", "score", "channel", "user"], rows)}
    async with make_client(files) as call:
        out = structured(
            await call(
                "evaluate_predictions",
                path="preds.csv",
                task="binary",
                label="label",
                score="score",
                slice_by="channel",
            )
        )
    y = [r[1] for r in rows]
    s = [r[2] for r in rows]
    p = [int(v >= 0.5) for v in s]
    got = values(out)
    want = reference.classification([str(v) for v in y], [str(v) for v in p])
    stats = reference.per_class([str(v) for v in y], [str(v) for v in p])
    want |= {"precision": stats["1"][0], "recall": stats["1"][1], "f1": stats["1"][2]}
    want |= {
        "roc_auc": reference.roc_auc(y, s),
        "pr_auc": reference.average_precision(y, s),
        "log_loss": reference.log_loss(y, s),
        "brier": reference.brier(y, s),
    }
    assert set(got) == set(want)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name
    assert out["n"] == 400 and out["dropped"] == 0
    tn = sum(1 for a, b in zip(y, p, strict=True) if a == 0 and b == 0)
    tp = sum(1 for a, b in zip(y, p, strict=True) if a == 1 and b == 1)
    assert out["confusion"]["labels"] == ["0", "1"]
    assert out["confusion"]["matrix"][0][0] == tn and out["confusion"]["matrix"][1][1] == tp
    # Every slice's metrics are the reference metrics of its rows.
    web = [r for r in rows if r[3] == "web"]
    web_slice = next(sl for sl in out["slices"] if sl["slice"] == "web")
    assert web_slice["n"] == len(web)
    assert web_slice["metrics"]["roc_auc"] == pytest.approx(
        reference.roc_auc([r[1] for r in web], [r[2] for r in web])
    )
    # Intervals hold the point estimate and come from the fixed seed.
    for m in out["metrics"]:
        assert m["ci_low"] <= m["value"] <= m["ci_high"], m
    assert out["bootstrap"] == 200


async def test_same_seed_gives_the_same_intervals(make_client: Callable[..., Session]) -> None:
    files = {"preds.csv": csv(["id", "label", "score", "channel", "user"], binary_rows(200))}
    async with make_client(files) as call:
        first = structured(
            await call("evaluate_predictions", path="preds.csv", task="binary", label="label", score="score")
        )
        second = structured(
            await call("evaluate_predictions", path="preds.csv", task="binary", label="label", score="score")
        )
    # The same resamples; sums in parallel threads may differ in the last bits only.
    for a, b in zip(first["metrics"], second["metrics"], strict=True):
        assert a["name"] == b["name"]
        assert (a["ci_low"], a["ci_high"]) == pytest.approx((b["ci_low"], b["ci_high"]), rel=1e-12)
    assert first["run"]["id"] != second["run"]["id"]


async def test_textbook_values(make_client: Callable[..., Session]) -> None:
    # The examples in scikit-learn's documentation, with the values it prints.
    files = {
        "auc.csv": csv(["y", "s"], [[0, 0.1], [0, 0.4], [1, 0.35], [1, 0.8]]),
        "spam.csv": csv(["y", "p"], [["spam", 0.9], ["ham", 0.1], ["ham", 0.2], ["spam", 0.65]]),
        "multi.csv": csv(["y", "p"], [[0, 0], [1, 2], [2, 1], [0, 0], [1, 0], [2, 1]]),
        "reg.csv": csv(["y", "p"], [[3, 2.5], [-0.5, 0.0], [2, 2], [7, 8]]),
    }
    async with make_client(files, bootstrap=0) as call:
        auc = values(
            structured(
                await call("evaluate_predictions", path="auc.csv", task="binary", label="y", score="s")
            )
        )
        spam = values(
            structured(
                await call(
                    "evaluate_predictions",
                    path="spam.csv",
                    task="binary",
                    label="y",
                    score="p",
                    positive_label="spam",
                )
            )
        )
        multi = values(
            structured(
                await call(
                    "evaluate_predictions", path="multi.csv", task="multiclass", label="y", prediction="p"
                )
            )
        )
        reg = values(
            structured(
                await call(
                    "evaluate_predictions", path="reg.csv", task="regression", label="y", prediction="p"
                )
            )
        )
    assert auc["roc_auc"] == pytest.approx(0.75)
    assert auc["pr_auc"] == pytest.approx(0.8333333333333333)
    assert spam["log_loss"] == pytest.approx(0.21616187468057912)
    assert multi["f1_macro"] == pytest.approx(0.26666666666666666)
    assert multi["f1_micro"] == pytest.approx(0.3333333333333333)
    assert multi["f1_weighted"] == pytest.approx(0.26666666666666666)
    assert multi["precision_macro"] == pytest.approx(0.2222222222222222)
    assert reg["r2"] == pytest.approx(0.9486081370449679)
    assert reg["mae"] == pytest.approx(0.5)
    assert reg["mse"] == pytest.approx(0.375)
    assert reg["mape"] == pytest.approx(0.3273809523809524)


async def test_multiclass_and_regression_match_reference(make_client: Callable[..., Session]) -> None:
    rng = random.Random(3)
    classes = ["cat", "dog", "eel", "fox"]
    multi = [[rng.choice(classes), rng.choice(classes[:3])] for _ in range(300)]  # 'fox' never predicted
    reg = [[round(rng.uniform(-5, 20), 3), round(rng.uniform(-5, 20), 3)] for _ in range(300)]
    files = {"m.csv": csv(["y", "p"], multi), "r.parquet.csv": csv(["y", "p"], reg)}
    async with make_client(files, bootstrap=0) as call:
        got_m = values(
            structured(
                await call("evaluate_predictions", path="m.csv", task="multiclass", label="y", prediction="p")
            )
        )
        got_r = values(
            structured(
                await call(
                    "evaluate_predictions", path="r.parquet.csv", task="regression", label="y", prediction="p"
                )
            )
        )
    for name, value in reference.classification([r[0] for r in multi], [r[1] for r in multi]).items():
        assert got_m[name] == pytest.approx(value, abs=1e-12), name
    for name, value in reference.regression([r[0] for r in reg], [r[1] for r in reg]).items():
        assert got_r[name] == pytest.approx(value, rel=1e-12), name


async def test_missing_score_is_reported_not_computable(evals: Call) -> None:
    (evals.root / "p.csv").write_text(csv(["y", "p"], [[1, 1], [0, 1], [1, 0]]), encoding="utf-8")  # type: ignore[attr-defined]
    out = structured(
        await evals("evaluate_predictions", path="p.csv", task="binary", label="y", prediction="p")
    )
    by_name = {m["name"]: m for m in out["metrics"]}
    assert by_name["roc_auc"]["value"] is None
    assert "score" in by_name["roc_auc"]["reason"]
    assert by_name["accuracy"]["value"] == pytest.approx(1 / 3)


async def test_single_class_auc_says_why(evals: Call) -> None:
    (evals.root / "p.csv").write_text(csv(["y", "s"], [[1, 0.2], [1, 0.9]]), encoding="utf-8")  # type: ignore[attr-defined]
    out = structured(await evals("evaluate_predictions", path="p.csv", task="binary", label="y", score="s"))
    auc = next(m for m in out["metrics"] if m["name"] == "roc_auc")
    assert auc["value"] is None and "one class" in auc["reason"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"task": "binary", "label": "y"}, "needs `prediction`"),
        (
            {"task": "regression", "label": "y", "prediction": "p", "score": "p"},
            "`score` is for task 'binary'",
        ),
        ({"task": "binary", "label": "y", "prediction": "p", "threshold": 0.7}, "`threshold` applies only"),
        ({"task": "binary", "label": "nope", "prediction": "p"}, "label column 'nope' is not in the file"),
        ({"task": "binary", "label": "name", "prediction": "p"}, "more than two values"),
    ],
)
async def test_inconsistent_arguments_are_errors(
    evals: Call, arguments: dict[str, Any], message: str
) -> None:
    (evals.root / "p.csv").write_text(  # type: ignore[attr-defined]
        csv(["y", "p", "name"], [[1, 1, "a"], [0, 1, "b"], [1, 0, "c"]]), encoding="utf-8"
    )
    result = await evals("evaluate_predictions", path="p.csv", **arguments)
    assert result.is_error
    assert message in first_text(result)


async def test_paths_outside_the_root_are_refused(evals: Call, tmp_path: Any) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text(csv(["y", "p"], [[1, 1]]), encoding="utf-8")
    result = await evals("evaluate_predictions", path=str(outside), task="binary", label="y", prediction="p")
    assert result.is_error and "outside the workspace root" in first_text(result)
    (evals.root / "link.csv").symlink_to(outside)  # type: ignore[attr-defined]
    result = await evals("evaluate_predictions", path="link.csv", task="binary", label="y", prediction="p")
    assert result.is_error and "symlink" in first_text(result)


async def test_the_file_cannot_reach_other_files(evals: Call) -> None:
    # A column name cannot smuggle SQL that reads another file: names are quoted identifiers.
    root = evals.root  # type: ignore[attr-defined]
    (root / "secret.csv").write_text("a\n42\n", encoding="utf-8")
    (root / "p.csv").write_text(csv(["y", "p"], [[1, 1], [0, 0]]), encoding="utf-8")
    hostile = "y\" FROM read_csv('secret.csv') --"
    result = await evals("evaluate_predictions", path="p.csv", task="binary", label=hostile, prediction="p")
    assert result.is_error and "is not in the file" in first_text(result)


async def test_jsonl_and_parquet_files_are_read(evals: Call) -> None:
    root = evals.root  # type: ignore[attr-defined]
    lines = [json.dumps({"y": y, "p": p}) for y, p in [(1, 1), (0, 1), (1, 1), (0, 0)]]
    (root / "p.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = structured(
        await evals("evaluate_predictions", path="p.jsonl", task="binary", label="y", prediction="p")
    )
    assert values(out)["accuracy"] == pytest.approx(0.75)
    import duckdb

    duckdb.sql(
        f"COPY (SELECT * FROM (VALUES (1, 0.9), (0, 0.2)) t(y, s)) TO '{root / 'p.parquet'}' (FORMAT parquet)"  # noqa: S608
    )
    out = structured(
        await evals("evaluate_predictions", path="p.parquet", task="binary", label="y", score="s")
    )
    assert values(out)["roc_auc"] == pytest.approx(1.0)


async def test_a_broken_file_is_a_clear_error(evals: Call) -> None:
    root = evals.root  # type: ignore[attr-defined]
    (root / "p.parquet").write_bytes(b"not a parquet file at all")
    result = await evals("evaluate_predictions", path="p.parquet", task="binary", label="y", prediction="p")
    assert result.is_error and "cannot read 'p.parquet'" in first_text(result)
    (root / "p.txt").write_text("y,p\n1,1\n", encoding="utf-8")
    result = await evals("evaluate_predictions", path="p.txt", task="binary", label="y", prediction="p")
    assert result.is_error and "use .csv, .tsv, .parquet" in first_text(result)
    (root / "r.csv").write_text("y,p\nabc,1\nxyz,2\n", encoding="utf-8")
    result = await evals("evaluate_predictions", path="r.csv", task="regression", label="y", prediction="p")
    assert result.is_error and "no row with a usable label" in first_text(result)


async def test_rows_with_missing_values_are_counted_and_left_out(evals: Call) -> None:
    (evals.root / "p.csv").write_text("y,s\n1,0.9\n0,\n,0.2\n0,0.1\n", encoding="utf-8")  # type: ignore[attr-defined]
    out = structured(await evals("evaluate_predictions", path="p.csv", task="binary", label="y", score="s"))
    assert out["n"] == 2 and out["rows_read"] == 4 and out["dropped"] == 2
    assert "2 of 4 rows were left out" in out["note"]
