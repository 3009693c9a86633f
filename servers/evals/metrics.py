"""Metrics computed in duckdb from weighted sufficient statistics, as scikit-learn defines them.

Every metric is computed over a `source` query with columns (b, y, yhat, s, w): `b` groups the rows
(0 for the whole sample, a slice value, or a bootstrap replicate), `w` weighs each item (1, or how
often a bootstrap resample drew it). One query serves point estimates, slices and resamples alike.

Definitions follow scikit-learn: precision/recall/F1 are 0 where their denominator is 0
(`zero_division=0`); macro averages run over every label in labels or predictions; ROC AUC is the
trapezoidal area with tied scores counted half (the Mann-Whitney statistic); PR AUC is average
precision (`average_precision_score`); log loss clips scores to [eps, 1 - eps]; R² is 1.0 for a
perfect fit of a constant target and 0.0 otherwise; MAPE divides by max(|y|, eps).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import duckdb

Task = Literal["binary", "multiclass", "regression"]
EPS = 2.220446049250313e-16  # float64 machine epsilon, scikit-learn's clip for log loss and MAPE

Direction = Literal["higher", "lower"]
HIGHER: Direction = "higher"
LOWER: Direction = "lower"
# name -> (better direction, whether it is a mean of per-item values)
METRICS: dict[str, tuple[Direction, bool]] = {
    "accuracy": (HIGHER, True),
    "precision": (HIGHER, False),
    "recall": (HIGHER, False),
    "f1": (HIGHER, False),
    "precision_micro": (HIGHER, False),
    "recall_micro": (HIGHER, False),
    "f1_micro": (HIGHER, False),
    "precision_macro": (HIGHER, False),
    "recall_macro": (HIGHER, False),
    "f1_macro": (HIGHER, False),
    "precision_weighted": (HIGHER, False),
    "recall_weighted": (HIGHER, False),
    "f1_weighted": (HIGHER, False),
    "roc_auc": (HIGHER, False),
    "pr_auc": (HIGHER, False),
    "log_loss": (LOWER, True),
    "brier": (LOWER, True),
    "mae": (LOWER, True),
    "mse": (LOWER, True),
    "rmse": (LOWER, False),
    "r2": (HIGHER, False),
    "mape": (LOWER, True),
}
CLASSIFICATION = [
    "accuracy",
    "precision_micro",
    "recall_micro",
    "f1_micro",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
]
BINARY = [
    "accuracy",
    "precision",
    "recall",
    "f1",
    *CLASSIFICATION[1:],
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
]
REGRESSION = ["mae", "mse", "rmse", "r2", "mape"]
# The per-item value whose mean is the metric (for paired differences); y, yhat, s are one item's.
PER_ITEM_SQL: dict[str, str] = {
    "accuracy": "CAST(y = yhat AS DOUBLE)",
    "brier": "(s - y) * (s - y)",
    "log_loss": f"-(y * ln(greatest(least(s, {1 - EPS!r}), {EPS!r})) "
    f"+ (1 - y) * ln(1 - greatest(least(s, {1 - EPS!r}), {EPS!r})))",
    "mae": "abs(y - yhat)",
    "mse": "(y - yhat) * (y - yhat)",
    "mape": f"abs(y - yhat) / greatest(abs(y), {EPS!r})",
}


def direction(metric: str) -> Direction | None:
    known = METRICS.get(metric)
    return known[0] if known else None


def metric_names(task: Task) -> list[str]:
    return {"binary": BINARY, "multiclass": CLASSIFICATION, "regression": REGRESSION}[task]


@dataclass
class Values:
    """The metrics of one group: values, and for each metric that could not be computed, why."""

    n: float = 0
    values: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, value: float | None, reason: str | None = None) -> None:
        if value is None or not math.isfinite(value):
            self.reasons[name] = reason or "not finite"
        else:
            self.values[name] = float(value)


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def compute(
    con: duckdb.DuckDBPyConnection,
    task: Task,
    source: str,
    *,
    has_score: bool,
    score_reason: str | None = None,
) -> dict[Any, Values]:
    """Every metric of `task` for each group `b` of `source`."""
    if task == "regression":
        return _regression(con, source)
    groups = _classes(con, source)
    if task == "binary":
        out = _binary(con, source, groups, has_score=has_score, score_reason=score_reason)
    else:
        out = {}
        for b, classes in groups.items():
            v = Values()
            _averages(v, classes)
            for name in ("roc_auc", "pr_auc", "log_loss", "brier"):
                v.reasons[name] = "not computed for multiclass: it needs one score column per class"
            out[b] = v
    return out


def _classes(con: duckdb.DuckDBPyConnection, source: str) -> dict[Any, dict[str, tuple[float, float, float]]]:
    """Per group, per class: (true count, predicted count, true positives), weighted."""
    rows = con.execute(
        f"""
        WITH t AS ({source})
        SELECT b, c, sum(tr), sum(pr), sum(tp) FROM (
            SELECT b, CAST(y AS VARCHAR) AS c, sum(w) AS tr, 0.0::DOUBLE AS pr, sum(CASE WHEN y = yhat THEN w ELSE 0 END) AS tp
            FROM t GROUP BY b, y
            UNION ALL
            SELECT b, CAST(yhat AS VARCHAR), 0.0::DOUBLE, sum(w), 0.0::DOUBLE FROM t GROUP BY b, yhat
        ) GROUP BY b, c ORDER BY b, c
        """
    ).fetchall()
    out: dict[Any, dict[str, tuple[float, float, float]]] = {}
    for b, c, tr, pr, tp in rows:
        out.setdefault(b, {})[c] = (float(tr), float(pr), float(tp))
    return out


def _averages(v: Values, classes: dict[str, tuple[float, float, float]]) -> None:
    n = sum(tr for tr, _, _ in classes.values())
    correct = sum(tp for _, _, tp in classes.values())
    v.n = n
    accuracy = _ratio(correct, n)
    v.put("accuracy", accuracy)
    # Single-label classification: micro precision, recall and F1 all equal accuracy.
    for name in ("precision_micro", "recall_micro", "f1_micro"):
        v.put(name, accuracy)
    per = {
        c: (_ratio(tp, pr), _ratio(tp, tr), _ratio(2 * tp, pr + tr), tr)
        for c, (tr, pr, tp) in classes.items()
    }
    k = len(per)
    for i, name in enumerate(("precision", "recall", "f1")):
        v.put(f"{name}_macro", sum(p[i] for p in per.values()) / k if k else None, "no labels")
        v.put(f"{name}_weighted", _ratio(sum(p[i] * p[3] for p in per.values()), n))


def _binary(
    con: duckdb.DuckDBPyConnection,
    source: str,
    groups: dict[Any, dict[str, tuple[float, float, float]]],
    *,
    has_score: bool,
    score_reason: str | None,
) -> dict[Any, Values]:
    out: dict[Any, Values] = {}
    for b, classes in groups.items():
        v = Values()
        _averages(v, classes)
        tr, pr, tp = classes.get("1", (0.0, 0.0, 0.0))
        v.put("precision", _ratio(tp, pr))
        v.put("recall", _ratio(tp, tr))
        v.put("f1", _ratio(2 * tp, pr + tr))
        out[b] = v
    if not has_score:
        reason = score_reason or "needs `score`: a column of predicted probabilities or scores"
        for v in out.values():
            for name in ("roc_auc", "pr_auc", "log_loss", "brier"):
                v.reasons[name] = reason
        return out
    lo, hi = 1 - EPS, EPS
    rows = con.execute(
        f"""
        WITH t AS ({source}),
        g AS (SELECT b, s, sum(w * y) AS p, sum(w * (1 - y)) AS q FROM t GROUP BY b, s),
        r AS (
            SELECT b, p, q,
                coalesce(sum(q) OVER (PARTITION BY b ORDER BY s ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
                    AS below,
                sum(p) OVER (PARTITION BY b ORDER BY s DESC ROWS UNBOUNDED PRECEDING) AS ctp,
                sum(q) OVER (PARTITION BY b ORDER BY s DESC ROWS UNBOUNDED PRECEDING) AS cfp
            FROM g
        ),
        a AS (SELECT b, sum(p * (below + 0.5 * q)) AS auc, sum(p) AS pos, sum(q) AS neg,
                     sum(p * ctp / (ctp + cfp)) AS ap FROM r GROUP BY b),
        m AS (SELECT b, sum(w) AS n, sum(w * (s - y) * (s - y)) AS brier,
                     sum(w * -(y * ln(greatest(least(s, {lo!r}), {hi!r}))
                         + (1 - y) * ln(1 - greatest(least(s, {lo!r}), {hi!r})))) AS ll,
                     min(s) AS smin, max(s) AS smax
              FROM t GROUP BY b)
        SELECT b, auc, pos, neg, ap, n, brier, ll, smin, smax FROM a JOIN m USING (b)
        """
    ).fetchall()
    for b, auc, pos, neg, ap, n, brier, ll, smin, smax in rows:
        v = out.setdefault(b, Values())
        if pos and neg:
            v.put("roc_auc", auc / (pos * neg))
        else:
            v.reasons["roc_auc"] = "only one class is present in the labels; ROC AUC is not defined"
        if pos:
            v.put("pr_auc", ap / pos)
        else:
            v.reasons["pr_auc"] = "no positive labels; average precision is not defined"
        if smin < 0 or smax > 1:
            why = f"scores run from {smin:g} to {smax:g}; log loss and Brier need probabilities in [0, 1]"
            v.reasons["log_loss"] = v.reasons["brier"] = why
        else:
            v.put("log_loss", ll / n)
            v.put("brier", brier / n)
    return out


def _regression(con: duckdb.DuckDBPyConnection, source: str) -> dict[Any, Values]:
    rows = con.execute(
        f"""
        WITH t AS ({source}),
        m AS (SELECT b, sum(w) AS n, sum(w * y) / sum(w) AS ybar FROM t GROUP BY b)
        SELECT b, n, sum(w * abs(y - yhat)), sum(w * (y - yhat) * (y - yhat)), sum(w * (y - ybar) * (y - ybar)),
               sum(w * abs(y - yhat) / greatest(abs(y), {EPS!r}))
        FROM t JOIN m USING (b) GROUP BY b, n
        """
    ).fetchall()
    out: dict[Any, Values] = {}
    for b, n, ae, se, ss_tot, ape in rows:
        v = Values(n=float(n))
        v.put("mae", ae / n)
        v.put("mse", se / n)
        v.put("rmse", math.sqrt(se / n))
        if ss_tot > 0:
            v.put("r2", 1 - se / ss_tot)
        else:
            v.put("r2", 1.0 if se == 0 else 0.0)
        v.put("mape", ape / n)
        out[b] = v
    return out


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default."""
    data = sorted(values)
    if not data:
        raise ValueError("no values")
    pos = (len(data) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)
