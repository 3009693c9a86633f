"""Result models of the evals tools: every one extends the envelope (DESIGN §5)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from common.budget import Envelope

Verdict = Literal["pass", "fail", "improved", "inconclusive", "skipped"]


class MetricValue(BaseModel):
    name: str
    value: float | None = Field(description="None when the metric could not be computed; `reason` says why")
    ci_low: float | None = Field(default=None, description="Lower end of the 95% bootstrap interval")
    ci_high: float | None = Field(default=None, description="Upper end of the 95% bootstrap interval")
    direction: Literal["higher", "lower"] | None = Field(default=None, description="Which way is better")
    reason: str | None = Field(default=None, description="Why the metric is not computable")


class SliceMetrics(BaseModel):
    slice: str | None = Field(description="The slice column's value (None for rows without one)")
    n: int
    metrics: dict[str, float]
    not_computable: dict[str, str] = Field(default_factory=dict)


class Confusion(BaseModel):
    labels: list[str] = Field(description="Classes, sorted; for binary '0' is negative and '1' positive")
    matrix: list[list[int]] = Field(description="counts[true label][predicted label]")


class RunSummary(BaseModel):
    id: str
    name: str
    created: str = Field(description="UTC time the run was recorded, ISO 8601")
    head: str | None = Field(description="git HEAD when recorded (None outside a repository)")
    dirty: bool | None = Field(description="Whether the work tree differed from HEAD")
    source: Literal["predictions", "endpoint", "manual"]
    task: str | None = None
    n: int | None = Field(default=None, description="Sample size")
    items: bool = Field(default=False, description="Per-item results are stored (paired comparisons)")
    headline: dict[str, float] = Field(default_factory=dict, description="Up to 6 metrics")


class Evaluation(Envelope):
    run: RunSummary
    task: str
    n: int = Field(description="Sample size: rows used")
    rows_read: int
    dropped: int = Field(description="Rows left out: a needed value missing or invalid")
    positive_label: str | None = None
    metrics: list[MetricValue]
    confusion: Confusion | None = None
    slices: list[SliceMetrics] = Field(default_factory=list)
    bootstrap: int = Field(description="Bootstrap replicates behind the intervals (0: none)")
    seed: int


class Recorded(Envelope):
    run: RunSummary
    path: str = Field(description="The run's file, relative to the root")


class RunList(Envelope):
    runs: list[RunSummary]


class MetricComparison(BaseModel):
    metric: str
    old: float | None
    new: float | None
    delta: float | None = Field(description="new - old")
    relative_delta: float | None = Field(description="(new - old) / |old|")
    direction: Literal["higher", "lower"] | None
    change: Literal["better", "worse", "same", "unknown"]
    ci_low: float | None = Field(default=None, description="95% interval of the delta")
    ci_high: float | None = None
    p_value: float | None = None
    significant: bool | None = Field(default=None, description="None when no interval could be drawn")
    method: Literal["paired_mean", "paired_clustered", "paired_bootstrap", "unpaired_intervals", "none"]
    power_hint: str | None = None


class Comparison(Envelope):
    baseline: RunSummary
    candidate: RunSummary
    paired_items: int = Field(description="Items present in both runs (0: unpaired)")
    clusters: int | None = Field(default=None, description="Groups behind clustered standard errors")
    metrics: list[MetricComparison]


class GateResult(BaseModel):
    gate: str
    metric: str
    direction: Literal["higher", "lower"] | None
    threshold: str = Field(description="What the gate asks, e.g. 'min 0.9; drop <= 0.01 vs baseline'")
    observed: float | None
    baseline: float | None = None
    delta: float | None = None
    ci_low: float | None = Field(default=None, description="Interval used: of the value or of the delta")
    ci_high: float | None = None
    verdict: Verdict
    by_how_much: float | None = Field(
        default=None, description="Margin to the nearest limit: positive inside it, negative past it"
    )
    reason: str


class GateReport(Envelope):
    verdict: Verdict = Field(
        description="fail if any gate fails, else inconclusive if any is, else improved or pass"
    )
    candidate: RunSummary
    baseline: RunSummary | None = None
    gates: list[GateResult]


def headline(metrics: dict[str, Any], limit: int = 6) -> dict[str, float]:
    order = ["accuracy", "f1", "f1_macro", "roc_auc", "pr_auc", "log_loss", "mae", "rmse", "r2"]
    keys = [k for k in order if k in metrics] + sorted(k for k in metrics if k not in order)
    return {k: metrics[k] for k in keys[:limit] if isinstance(metrics[k], int | float)}
