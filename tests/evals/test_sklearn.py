"""Metric values against scikit-learn on the data sets it ships, with models trained here.

scikit-learn is not a dependency of onrecord; these tests run where it is installed and are skipped
elsewhere (the reference implementations in reference.py cover the same definitions everywhere)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.evals.conftest import Call
from tests.evals.test_evaluate import structured, values

pytestmark = pytest.mark.anyio
TOL = 1e-9


def _write(root: Any, name: str, header: list[str], columns: list[list[Any]]) -> None:
    lines = [",".join(header)] + [",".join(repr(v) for v in row) for row in zip(*columns, strict=True)]
    (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("decimals", [None, 1])
async def test_binary_metrics_equal_scikit_learn_on_breast_cancer(evals: Call, decimals: int | None) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    linear = pytest.importorskip("sklearn.linear_model")
    pipeline = pytest.importorskip("sklearn.pipeline")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    m = pytest.importorskip("sklearn.metrics")
    x, y = datasets.load_breast_cancer(return_X_y=True)
    model = pipeline.make_pipeline(preprocessing.StandardScaler(), linear.LogisticRegression(max_iter=2000))
    model.fit(x[::2], y[::2])
    y_test = [int(v) for v in y[1::2]]
    scores = [float(v) for v in model.predict_proba(x[1::2])[:, 1]]
    if (
        decimals is not None
    ):  # many tied scores: ROC AUC and average precision must count ties as sklearn does
        scores = [round(s, decimals) for s in scores]
    pred = [int(s >= 0.5) for s in scores]
    _write(evals.root, "bc.csv", ["y", "s"], [y_test, scores])  # type: ignore[attr-defined]
    out = structured(await evals("evaluate_predictions", path="bc.csv", task="binary", label="y", score="s"))
    got = values(out)
    want = {
        "accuracy": m.accuracy_score(y_test, pred),
        "precision": m.precision_score(y_test, pred),
        "recall": m.recall_score(y_test, pred),
        "f1": m.f1_score(y_test, pred),
        "roc_auc": m.roc_auc_score(y_test, scores),
        "pr_auc": m.average_precision_score(y_test, scores),
        "log_loss": m.log_loss(y_test, scores),
        "brier": m.brier_score_loss(y_test, scores),
    }
    for avg in ("micro", "macro", "weighted"):
        want[f"precision_{avg}"] = m.precision_score(y_test, pred, average=avg)
        want[f"recall_{avg}"] = m.recall_score(y_test, pred, average=avg)
        want[f"f1_{avg}"] = m.f1_score(y_test, pred, average=avg)
    assert set(got) == set(want)
    for name, value in want.items():
        assert abs(got[name] - float(value)) <= TOL, (name, got[name], value)
    assert out["confusion"]["matrix"] == m.confusion_matrix(y_test, pred).tolist()


async def test_multiclass_metrics_equal_scikit_learn_on_iris(evals: Call) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    tree = pytest.importorskip("sklearn.tree")
    m = pytest.importorskip("sklearn.metrics")
    x, y = datasets.load_iris(return_X_y=True)
    model = tree.DecisionTreeClassifier(max_depth=2, random_state=0).fit(x[::2], y[::2])
    names = ["setosa", "versicolor", "virginica"]
    y_test = [names[int(v)] for v in y[1::2]]
    pred = [names[int(v)] for v in model.predict(x[1::2])]
    _write(evals.root, "iris.csv", ["y", "p"], [y_test, pred])  # type: ignore[attr-defined]
    out = structured(
        await evals("evaluate_predictions", path="iris.csv", task="multiclass", label="y", prediction="p")
    )
    got = values(out)
    assert abs(got["accuracy"] - m.accuracy_score(y_test, pred)) <= TOL
    for avg in ("micro", "macro", "weighted"):
        assert (
            abs(got[f"precision_{avg}"] - m.precision_score(y_test, pred, average=avg, zero_division=0))
            <= TOL
        )
        assert abs(got[f"recall_{avg}"] - m.recall_score(y_test, pred, average=avg, zero_division=0)) <= TOL
        assert abs(got[f"f1_{avg}"] - m.f1_score(y_test, pred, average=avg, zero_division=0)) <= TOL
    assert out["confusion"]["matrix"] == m.confusion_matrix(y_test, pred, labels=sorted(names)).tolist()


async def test_regression_metrics_equal_scikit_learn_on_diabetes(evals: Call) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    linear = pytest.importorskip("sklearn.linear_model")
    m = pytest.importorskip("sklearn.metrics")
    x, y = datasets.load_diabetes(return_X_y=True)
    model = linear.Ridge(alpha=0.5).fit(x[::2], y[::2])
    y_test = [float(v) for v in y[1::2]]
    pred = [float(v) for v in model.predict(x[1::2])]
    _write(evals.root, "diabetes.csv", ["y", "p"], [y_test, pred])  # type: ignore[attr-defined]
    out = structured(
        await evals("evaluate_predictions", path="diabetes.csv", task="regression", label="y", prediction="p")
    )
    got = values(out)
    want = {
        "mae": m.mean_absolute_error(y_test, pred),
        "mse": m.mean_squared_error(y_test, pred),
        "rmse": m.root_mean_squared_error(y_test, pred),
        "r2": m.r2_score(y_test, pred),
        "mape": m.mean_absolute_percentage_error(y_test, pred),
    }
    for name, value in want.items():
        assert abs(got[name] - float(value)) <= TOL * max(1.0, abs(float(value))), (name, got[name], value)
