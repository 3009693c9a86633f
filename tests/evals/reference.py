"""Independent reference implementations of the metrics, written from their textbook definitions
(and scikit-learn's documented conventions), to check the duckdb ones against."""

from __future__ import annotations

import math
from collections.abc import Sequence

EPS = 2.220446049250313e-16


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def per_class(y: Sequence[str], p: Sequence[str]) -> dict[str, tuple[float, float, float, int]]:
    """precision, recall, F1 and support of every label in y or p."""
    out = {}
    for c in sorted(set(y) | set(p)):
        tp = sum(1 for a, b in zip(y, p, strict=True) if a == c and b == c)
        pred = sum(1 for b in p if b == c)
        true = sum(1 for a in y if a == c)
        prec, rec = _div(tp, pred), _div(tp, true)
        f1 = _div(2 * prec * rec, prec + rec)
        out[c] = (prec, rec, f1, true)
    return out


def classification(y: Sequence[str], p: Sequence[str]) -> dict[str, float]:
    stats = per_class(y, p)
    n = len(y)
    acc = sum(1 for a, b in zip(y, p, strict=True) if a == b) / n
    out = {"accuracy": acc, "precision_micro": acc, "recall_micro": acc, "f1_micro": acc}
    for i, name in enumerate(("precision", "recall", "f1")):
        out[f"{name}_macro"] = sum(s[i] for s in stats.values()) / len(stats)
        out[f"{name}_weighted"] = sum(s[i] * s[3] for s in stats.values()) / n
    return out


def roc_auc(y: Sequence[int], s: Sequence[float]) -> float:
    """Probability a random positive outscores a random negative, ties counted half (pairwise)."""
    pos = [b for a, b in zip(y, s, strict=True) if a == 1]
    neg = [b for a, b in zip(y, s, strict=True) if a == 0]
    wins = sum(1.0 if sp > sn else 0.5 if sp == sn else 0.0 for sp in pos for sn in neg)
    return wins / (len(pos) * len(neg))


def average_precision(y: Sequence[int], s: Sequence[float]) -> float:
    """sum over thresholds (descending, tied scores together) of (R_n - R_{n-1}) * P_n."""
    total_pos = sum(y)
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(s), reverse=True):
        tp = sum(1 for a, b in zip(y, s, strict=True) if b >= t and a == 1)
        fp = sum(1 for a, b in zip(y, s, strict=True) if b >= t and a == 0)
        recall = tp / total_pos
        ap += (recall - prev_recall) * (tp / (tp + fp))
        prev_recall = recall
    return ap


def log_loss(y: Sequence[int], s: Sequence[float]) -> float:
    total = 0.0
    for a, b in zip(y, s, strict=True):
        q = min(max(b, EPS), 1 - EPS)
        total -= math.log(q) if a == 1 else math.log(1 - q)
    return total / len(y)


def brier(y: Sequence[int], s: Sequence[float]) -> float:
    return sum((b - a) ** 2 for a, b in zip(y, s, strict=True)) / len(y)


def regression(y: Sequence[float], p: Sequence[float]) -> dict[str, float]:
    n = len(y)
    mean = sum(y) / n
    ss_res = sum((a - b) ** 2 for a, b in zip(y, p, strict=True))
    ss_tot = sum((a - mean) ** 2 for a in y)
    return {
        "mae": sum(abs(a - b) for a, b in zip(y, p, strict=True)) / n,
        "mse": ss_res / n,
        "rmse": math.sqrt(ss_res / n),
        "r2": 1 - ss_res / ss_tot,
        "mape": sum(abs(a - b) / max(abs(a), EPS) for a, b in zip(y, p, strict=True)) / n,
    }
