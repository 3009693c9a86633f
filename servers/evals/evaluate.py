"""evaluate_predictions and record_run: metrics from a prediction file, runs in the eval store."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from common import content, offload
from common.budget import join_notes
from common.workspace import WorkspaceError
from servers.evals import frame, metrics
from servers.evals.context import EvalsContext
from servers.evals.frame import Columns, EvalsError
from servers.evals.metrics import Task, Values
from servers.evals.models import Confusion, Evaluation, MetricValue, Recorded, SliceMetrics
from servers.evals.params import Column, Dataset, OptionalColumn, RunName, TaskParam
from servers.evals.store import new_run_id, now_iso, summary

MIN_REPLICATES = 50
MAX_SLICES_SHOWN = 50


@dataclass
class Computed:
    """Everything one evaluation found, before it becomes a run and a result."""

    task: Task
    loaded: frame.Loaded
    point: Values
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    replicates: int = 0
    slices: list[tuple[str | None, Values]] = field(default_factory=list)
    confusion: tuple[list[str], list[list[int]]] | None = None
    items: list[dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)


def intervals(
    con: Any,
    task: Task,
    n: int,
    ctx_boot: int,
    seed: int,
    max_cells: int,
    has_score: bool,
    table: str = "base",
) -> tuple[dict[str, tuple[float, float]], int, str | None]:
    """95% percentile bootstrap intervals of every metric, with the replicates drawn."""
    replicates = min(ctx_boot, max_cells // max(n, 1))
    if ctx_boot == 0:
        return {}, 0, "no intervals: [evals] bootstrap = 0"
    if replicates < MIN_REPLICATES:
        return (
            {},
            0,
            (f"no intervals: {n} items × {MIN_REPLICATES} resamples exceed [evals] max_bootstrap_cells"),
        )
    frame.make_resamples(con, n, replicates, seed)
    offload.checkpoint()
    groups = metrics.compute(con, task, frame.resampled(table), has_score=has_score)
    out: dict[str, tuple[float, float]] = {}
    names = {name for v in groups.values() for name in v.values}
    for name in names:
        draws = [v.values[name] for v in groups.values() if name in v.values]
        if len(draws) >= MIN_REPLICATES:
            out[name] = (metrics.percentile(draws, 2.5), metrics.percentile(draws, 97.5))
    note = (
        None
        if replicates == ctx_boot
        else f"intervals from {replicates} resamples (capped by max_bootstrap_cells)"
    )
    return out, replicates, note


def compute_file(ctx: EvalsContext, path: Path, task: Task, cols: Columns) -> Computed:
    """The metrics of one prediction file (runs in a worker thread)."""
    con = frame.open_locked([path])
    try:
        loaded = frame.load(con, path, task, cols)
        offload.checkpoint()
        score_reason = None
        if task == "binary" and cols.score is None:
            score_reason = "needs `score`: the column of predicted probabilities or scores"
        point = metrics.compute(
            con, task, frame.point(), has_score=loaded.has_score, score_reason=score_reason
        )[0]
        result = Computed(task, loaded, point, notes=list(loaded.notes))
        opts = ctx.options
        result.intervals, result.replicates, note = intervals(
            con, task, loaded.used, opts.bootstrap, opts.seed, opts.max_bootstrap_cells, loaded.has_score
        )
        if note:
            result.notes.append(note)
        if cols.slice_by is not None:
            offload.checkpoint()
            sizes = dict(frame.slice_sizes(con))
            if len(sizes) > frame.MAX_SLICES:
                result.notes.append(
                    f"slice_by {cols.slice_by!r} has {len(sizes)} values; only the {frame.MAX_SLICES} largest are evaluated"
                )
            per = metrics.compute(
                con, task, frame.slices(), has_score=loaded.has_score, score_reason=score_reason
            )
            ordered = sorted(per.items(), key=lambda kv: (-sizes.get(kv[0], 0), str(kv[0])))
            result.slices = ordered[: frame.MAX_SLICES]
        if task != "regression":
            result.confusion = frame.confusion(con)
        if loaded.used <= opts.max_items_stored:
            rows = con.execute("SELECT id, y, yhat, s, g FROM base ORDER BY i").fetchall()
            result.items = [{"id": r[0], "y": r[1], "yhat": r[2], "s": r[3], "g": r[4]} for r in rows]
        else:
            result.notes.append(
                f"per-item results not kept ({loaded.used} items > [evals] max_items_stored); comparisons are unpaired"
            )
        return result
    finally:
        con.close()


def metric_list(task: Task, point: Values, cis: dict[str, tuple[float, float]]) -> list[MetricValue]:
    out = []
    for name in metrics.metric_names(task):
        lo, hi = cis.get(name, (None, None))
        out.append(
            MetricValue(
                name=name,
                value=point.values.get(name),
                ci_low=lo,
                ci_high=hi,
                direction=metrics.direction(name),
                reason=point.reasons.get(name) if name not in point.values else None,
            )
        )
    return out


async def save(
    ctx: EvalsContext,
    name: str,
    source: str,
    task: str | None,
    values: dict[str, float],
    *,
    n: int | None = None,
    cis: dict[str, tuple[float, float]] | None = None,
    reasons: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    items: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Path]:
    head, dirty = await ctx.git_state()
    run: dict[str, Any] = {
        "id": new_run_id(name),
        "name": name,
        "created": now_iso(),
        "head": head,
        "dirty": dirty,
        "source": source,
        "task": task,
        "n": n,
        "metrics": values,
        "ci": {k: list(v) for k, v in (cis or {}).items()},
        "not_computable": reasons or {},
        "params": params or {},
        "tags": tags or {},
        "items": None,
        **(extra or {}),
    }
    path = await offload.run(ctx.store.save_run, run, items)
    return run, path


async def evaluate_predictions(
    ctx: EvalsContext,
    path: Dataset,
    task: TaskParam,
    label: Annotated[Column, Field(description="The column of true labels (or true values for regression)")],
    prediction: Annotated[
        OptionalColumn,
        Field(description="The column of predicted classes or values; binary may derive it from `score`"),
    ] = None,
    score: Annotated[
        OptionalColumn,
        Field(description="Binary only: the column of predicted probabilities of the positive class"),
    ] = None,
    threshold: Annotated[
        float,
        Field(ge=0, le=1, description="Binary without `prediction`: a row is positive when score >= this"),
    ] = 0.5,
    slice_by: Annotated[
        OptionalColumn, Field(description="A column whose values split the metrics by slice")
    ] = None,
    name: Annotated[
        RunName | None,
        Field(description="Record the result as a run of this name (default: the file's stem)"),
    ] = None,
    item_id: Annotated[
        OptionalColumn,
        Field(description="A column of unique item ids, so runs pair by item (default: row order)"),
    ] = None,
    group: Annotated[
        OptionalColumn,
        Field(
            description="A column of clusters (e.g. user or document) for clustered standard errors in comparisons"
        ),
    ] = None,
    positive_label: Annotated[
        str | None,
        Field(
            max_length=256,
            description="Binary: the label value of the positive class when labels are not 0/1",
        ),
    ] = None,
) -> Evaluation:
    """Compute metrics from a file of predictions and record them as a run.

    binary: accuracy, precision, recall, F1 (binary, micro, macro, weighted), ROC AUC, PR AUC (average
    precision), log loss, Brier, confusion matrix; multiclass: accuracy, precision/recall/F1 micro,
    macro, weighted, confusion matrix; regression: MAE, MSE, RMSE, R², MAPE. Each metric has a 95%
    bootstrap interval (fixed seed); a metric that cannot be computed says why. Definitions follow
    scikit-learn. The run keeps per-item results so compare_runs can pair items."""
    if task != "binary" and score is not None:
        raise EvalsError(f"`score` is for task 'binary'; task {task!r} takes `prediction` only")
    if task != "binary" and positive_label is not None:
        raise EvalsError(f"`positive_label` is for task 'binary', not {task!r}")
    if threshold != 0.5 and (task != "binary" or prediction is not None):
        raise EvalsError(
            "`threshold` applies only to task 'binary' when predicted classes are derived from `score`; "
            "leave it out when `prediction` is given"
        )
    if task != "binary" and prediction is None:
        raise EvalsError(f"task {task!r} needs `prediction`: the column of predicted values")
    resolved = ctx.workspace.resolve(path)
    if not content.allows(resolved.relative, follow_links=True):
        raise WorkspaceError(f"path {path!r} may not be read under the policy; it is not evaluated")
    if not resolved.absolute.is_file():
        raise WorkspaceError(f"path {path!r} is not a regular file")
    cols = Columns(
        label=label,
        prediction=prediction,
        score=score,
        slice_by=slice_by,
        item_id=item_id,
        group=group,
        positive_label=positive_label,
        threshold=threshold,
    )
    try:
        computed = await offload.run(compute_file, ctx, resolved.absolute, task, cols)
    except EvalsError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("duckdb") or type(exc).__module__ == "_duckdb":
            raise EvalsError(f"cannot evaluate {path!r}: {content.screen(str(exc).splitlines()[0])}") from exc
        raise
    run_name = name or _default_name(resolved.absolute)
    params = {
        "path": resolved.relative,
        "label": label,
        "prediction": prediction,
        "score": score,
        "threshold": threshold,
        "slice_by": slice_by,
        "item_id": item_id,
        "group": group,
        "positive_label": positive_label,
    }
    run, _ = await save(
        ctx,
        run_name,
        "predictions",
        task,
        computed.point.values,
        n=computed.loaded.used,
        cis=computed.intervals,
        reasons=computed.point.reasons,
        params={k: v for k, v in params.items() if v is not None},
        items=computed.items,
        extra={"bootstrap": computed.replicates, "seed": ctx.options.seed},
    )
    slices = [
        SliceMetrics(slice=s, n=int(v.n), metrics=v.values, not_computable=v.reasons)
        for s, v in computed.slices
    ]
    notes = list(computed.notes)
    if len(slices) > MAX_SLICES_SHOWN:
        notes.append(f"{len(slices)} slices; the {MAX_SLICES_SHOWN} largest are shown")
    shown = slices[:MAX_SLICES_SHOWN]
    confusion = (
        Confusion(labels=computed.confusion[0], matrix=computed.confusion[1]) if computed.confusion else None
    )
    if task != "regression" and confusion is None:
        notes.append("confusion matrix left out: more than 30 classes")
    return Evaluation(
        run=summary(run),
        task=task,
        n=computed.loaded.used,
        rows_read=computed.loaded.rows,
        dropped=computed.loaded.dropped,
        positive_label=computed.loaded.positive,
        metrics=metric_list(task, computed.point, computed.intervals),
        confusion=confusion,
        slices=shown,
        bootstrap=computed.replicates,
        seed=ctx.options.seed,
        total=len(slices),
        returned=len(shown),
        truncated=len(shown) < len(slices),
        note=join_notes(*notes),
    )


def _default_name(path: Path) -> str:
    stem = "".join(c if c.isalnum() or c in "_.-" else "-" for c in path.stem).strip("-.") or "run"
    return stem[:64] if stem[0].isalnum() else f"run-{stem}"[:64]


async def record_run(
    ctx: EvalsContext,
    name: RunName,
    metrics: Annotated[
        dict[str, float],
        Field(description="Metric values, e.g. {'accuracy': 0.91, 'latency_p95_ms': 230}", max_length=200),
    ],
    params: Annotated[
        dict[str, Any] | None,
        Field(description="What produced them: model, prompt, data version", max_length=200),
    ] = None,
    tags: Annotated[
        dict[str, str] | None, Field(description="Free labels, e.g. {'stage': 'nightly'}", max_length=50)
    ] = None,
    n: Annotated[int | None, Field(ge=1, le=10**12, description="The sample size behind the metrics")] = None,
) -> Recorded:
    """Record metrics computed elsewhere as a run in the eval store, with git HEAD and the dirty flag.
    Runs are JSON files under the root's eval store (`.onrecord/evals/runs/` by default)."""
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise EvalsError(f"metric(s) {bad!r} are not finite numbers; record finite values only")
    if not metrics:
        raise EvalsError("metrics is empty; pass at least one, e.g. {'accuracy': 0.91}")
    if len(repr(params)) > 20_000:
        raise EvalsError("params are larger than 20,000 characters; record a summary or a file path instead")
    run, path = await save(ctx, name, "manual", None, dict(metrics), n=n, params=params, tags=tags)
    return Recorded(run=summary(run), path=ctx.store.rel(path))
