"""compare_runs and check_gates: two runs side by side, paired by item where both kept their items.

Paired means the same items judged twice: for a metric that is a mean of per-item values (accuracy,
Brier, log loss, MAE, MSE, MAPE) the delta's standard error comes from the per-item differences,
clustered by the group column when the run has one; for the others (F1, ROC AUC, R², ...) from a
paired bootstrap (both runs resampled with the same draws). Without paired items the runs' own
intervals give an unpaired, conservative interval; without intervals there is no significance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import Field

from common import offload
from common.budget import join_notes
from servers.evals import frame, metrics
from servers.evals.context import EvalsContext
from servers.evals.frame import EvalsError
from servers.evals.metrics import Task
from servers.evals.models import Comparison, GateReport, GateResult, MetricComparison, Verdict
from servers.evals.params import RunRef
from servers.evals.settings import GateSpec
from servers.evals.store import summary

Z95 = 1.959963984540054
Z_POWER = Z95 + 0.8416212335729143  # two-sided 5% test, 80% power
COLUMNS = {
    "binary": "{'id': 'VARCHAR', 'y': 'INTEGER', 'yhat': 'INTEGER', 's': 'DOUBLE', 'g': 'VARCHAR'}",
    "multiclass": "{'id': 'VARCHAR', 'y': 'VARCHAR', 'yhat': 'VARCHAR', 's': 'DOUBLE', 'g': 'VARCHAR'}",
    "regression": "{'id': 'VARCHAR', 'y': 'DOUBLE', 'yhat': 'DOUBLE', 's': 'DOUBLE', 'g': 'VARCHAR'}",
}


@dataclass
class Delta:
    """One metric's change, with its interval when one could be drawn."""

    old: float | None
    new: float | None
    ci: tuple[float, float] | None = None
    se: float | None = None
    p_value: float | None = None
    method: str = "none"


@dataclass
class Paired:
    n: int = 0
    clusters: int | None = None
    deltas: dict[str, Delta] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _normal_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def paired(
    a_path: Path, b_path: Path, task: Task, replicates: int, seed: int, max_cells: int, has_score: bool
) -> Paired:
    """Per-metric deltas (b - a) over the items both runs hold (runs in a worker thread)."""
    con = frame.open_locked([a_path, b_path])
    try:
        cols = COLUMNS[task]
        for table, path in (("ra", a_path), ("rb", b_path)):
            con.execute(
                f"CREATE TABLE {table} AS SELECT * FROM read_json({frame.quote_literal(str(path))}, "
                f"format = 'newline_delimited', columns = {cols})"
            )
        con.execute(
            """CREATE TABLE pair AS SELECT row_number() OVER (ORDER BY ra.id) - 1 AS i, ra.id,
                   ra.y AS ya, ra.yhat AS pa, ra.s AS sa, rb.y AS yb, rb.yhat AS pb, rb.s AS sb,
                   coalesce(rb.g, ra.g) AS g
               FROM ra JOIN rb USING (id)"""
        )
        row = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE ya IS DISTINCT FROM yb) FROM pair"
        ).fetchone()
        n, mismatched = (int(row[0]), int(row[1])) if row else (0, 0)
        out = Paired(n=n)
        if n < 2:
            return out
        if mismatched:
            out.notes.append(f"{mismatched} paired items have different labels in the two runs")
        con.execute("CREATE TABLE base_a AS SELECT i, ya AS y, pa AS yhat, sa AS s, g, NULL AS sl FROM pair")
        con.execute("CREATE TABLE base_b AS SELECT i, yb AS y, pb AS yhat, sb AS s, g, NULL AS sl FROM pair")
        point_a = metrics.compute(con, task, frame.point("base_a"), has_score=has_score)[0]
        point_b = metrics.compute(con, task, frame.point("base_b"), has_score=has_score)[0]
        for name in metrics.metric_names(task):
            out.deltas[name] = Delta(point_a.values.get(name), point_b.values.get(name))
        groups = con.execute("SELECT count(DISTINCT g), count(g) FROM pair").fetchone()
        clustered = bool(groups and groups[1] == n and groups[0] >= 2)
        out.clusters = int(groups[0]) if clustered and groups else None
        for name, expr in metrics.PER_ITEM_SQL.items():
            delta = out.deltas.get(name)
            if delta is None or delta.old is None or delta.new is None:
                continue
            _mean_difference(con, name, expr, delta, clustered)
        offload.checkpoint()
        reps = min(replicates, max_cells // n)
        if reps >= 50:
            frame.make_resamples(con, n, reps, seed)
            boot_a = metrics.compute(con, task, frame.resampled("base_a"), has_score=has_score)
            boot_b = metrics.compute(con, task, frame.resampled("base_b"), has_score=has_score)
            for name, delta in out.deltas.items():
                if delta.method != "none" or delta.old is None or delta.new is None:
                    continue
                draws = [
                    boot_b[b].values[name] - boot_a[b].values[name]
                    for b in boot_a
                    if b in boot_b and name in boot_a[b].values and name in boot_b[b].values
                ]
                if len(draws) < 50:
                    continue
                delta.ci = (metrics.percentile(draws, 2.5), metrics.percentile(draws, 97.5))
                mean = sum(draws) / len(draws)
                delta.se = math.sqrt(sum((d - mean) ** 2 for d in draws) / (len(draws) - 1))
                below = sum(1 for d in draws if d <= 0) / len(draws)
                above = sum(1 for d in draws if d >= 0) / len(draws)
                delta.p_value = min(1.0, 2 * min(below, above))
                delta.method = "paired_bootstrap"
        else:
            out.notes.append("no paired bootstrap: too many items for max_bootstrap_cells")
        if clustered:
            out.notes.append(f"standard errors of mean metrics clustered by group ({out.clusters} groups)")
        return out
    finally:
        con.close()


def _mean_difference(con: Any, name: str, expr: str, delta: Delta, clustered: bool) -> None:
    diffs = (
        f"SELECT a.i, a.g, b.v - a.v AS d FROM (SELECT i, g, {expr} AS v FROM base_a) a "
        f"JOIN (SELECT i, {expr} AS v FROM base_b) b USING (i)"
    )
    row = con.execute(f"SELECT count(*), avg(d), var_samp(d) FROM ({diffs})").fetchone()
    if not row or row[0] < 2 or row[2] is None:
        return
    n, mean, var = int(row[0]), float(row[1]), float(row[2])
    if clustered:
        clusters = con.execute(
            f"SELECT count(*), sum(e * e) FROM (SELECT sum(d - {mean!r}) AS e FROM ({diffs}) GROUP BY g)"
        ).fetchone()
        k, sum_sq = int(clusters[0]), float(clusters[1])
        se = math.sqrt(k / (k - 1) * sum_sq) / n
        delta.method = "paired_clustered"
    else:
        se = math.sqrt(var / n)
        delta.method = "paired_mean"
    delta.se = se
    delta.ci = (mean - Z95 * se, mean + Z95 * se)
    delta.p_value = _normal_p(mean / se) if se > 0 else (1.0 if mean == 0 else 0.0)


def unpaired(old: dict[str, Any], new: dict[str, Any], name: str) -> Delta:
    a, b = old.get("metrics", {}).get(name), new.get("metrics", {}).get(name)
    delta = Delta(a if isinstance(a, int | float) else None, b if isinstance(b, int | float) else None)
    ci_a, ci_b = old.get("ci", {}).get(name), new.get("ci", {}).get(name)
    if delta.old is None or delta.new is None or not (_pair(ci_a) and _pair(ci_b)):
        return delta
    se = math.hypot((ci_a[1] - ci_a[0]) / (2 * Z95), (ci_b[1] - ci_b[0]) / (2 * Z95))
    diff = delta.new - delta.old
    delta.se = se
    delta.ci = (diff - Z95 * se, diff + Z95 * se)
    delta.p_value = _normal_p(diff / se) if se > 0 else None
    delta.method = "unpaired_intervals"
    return delta


def _pair(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, int | float) for v in value)


async def _deltas(ctx: EvalsContext, old: dict[str, Any], new: dict[str, Any]) -> Paired:
    a_items, b_items = ctx.store.items_path(old), ctx.store.items_path(new)
    task = old.get("task")
    result = Paired()
    if a_items and b_items and task == new.get("task") and task in COLUMNS:
        has_score = "score" in old.get("params", {}) and "score" in new.get("params", {})
        opts = ctx.options
        result = await offload.run(
            paired,
            a_items,
            b_items,
            cast(Task, task),
            opts.bootstrap,
            opts.seed,
            opts.max_bootstrap_cells,
            has_score,
        )
        if result.n < 2:
            result.notes.append("the runs share fewer than 2 items; compared unpaired")
    elif old.get("task") != new.get("task"):
        result.notes.append(
            f"the runs are of different tasks ({old.get('task')!r}, {new.get('task')!r}); unpaired"
        )
    names = [k for k in new.get("metrics", {}) if k in old.get("metrics", {})]
    for name in names:
        if name not in result.deltas or result.n < 2:
            result.deltas[name] = unpaired(old, new, name)
    return result


def _power_hint(delta: Delta, n: int | None, change: float) -> str | None:
    if delta.se is None or not n or delta.se <= 0 or change == 0:
        return None
    needed = n * (Z_POWER * delta.se / abs(change)) ** 2
    more = math.ceil(needed - n)
    if more <= 0:
        return None
    return f"about {more} more items (≈{math.ceil(needed)} in all) would be needed to tell a change of {abs(change):.4g}"


def describe(name: str, delta: Delta, n: int | None) -> MetricComparison:
    way = metrics.direction(name)
    diff = delta.new - delta.old if delta.new is not None and delta.old is not None else None
    rel = diff / abs(delta.old) if diff is not None and delta.old else None
    significant = None
    if delta.ci is not None:
        significant = delta.ci[0] > 0 or delta.ci[1] < 0
    if diff is None or way is None:
        change = "unknown"
    elif diff == 0:
        change = "same"
    else:
        change = "better" if (diff > 0) == (way == "higher") else "worse"
    hint = None if significant or diff is None else _power_hint(delta, n, diff)
    return MetricComparison(
        metric=name,
        old=delta.old,
        new=delta.new,
        delta=diff,
        relative_delta=rel,
        direction=way,
        change=change,  # type: ignore[arg-type]
        ci_low=delta.ci[0] if delta.ci else None,
        ci_high=delta.ci[1] if delta.ci else None,
        p_value=delta.p_value,
        significant=significant,
        method=delta.method,  # type: ignore[arg-type]
        power_hint=hint,
    )


async def compare_runs(ctx: EvalsContext, baseline: RunRef, candidate: RunRef) -> Comparison:
    """Compare two runs metric by metric: old, new, delta, relative delta, direction, and whether the
    change is significant (95% interval of the delta, p-value), with a power hint when it is not.
    Runs that kept per-item results are paired by item id; runs are ids or name@<git ref>."""
    old = await ctx.store.lookup(baseline, ctx.git)
    new = await ctx.store.lookup(candidate, ctx.git)
    found = await _deltas(ctx, old, new)
    n = found.n if found.n >= 2 else _n(new)
    rows = [describe(name, delta, n) for name, delta in found.deltas.items()]
    if found.n < 2:
        found.notes.append("unpaired: significance from the runs' own intervals where both have them")
    return Comparison(
        baseline=summary(old),
        candidate=summary(new),
        paired_items=found.n if found.n >= 2 else 0,
        clusters=found.clusters,
        metrics=rows,
        total=len(rows),
        returned=len(rows),
        note=join_notes(*found.notes),
    )


def _n(run: dict[str, Any]) -> int | None:
    n = run.get("n")
    return n if isinstance(n, int) else None


# ------------------------------------------------------------------------------------------ gates


def _limits(spec: GateSpec) -> str:
    parts = []
    if spec.min is not None:
        parts.append(f"min {spec.min:g}")
    if spec.max is not None:
        parts.append(f"max {spec.max:g}")
    if spec.max_drop is not None:
        parts.append(f"worse by at most {spec.max_drop:g} vs baseline")
    if spec.max_relative_drop is not None:
        parts.append(f"worse by at most {spec.max_relative_drop:.1%} vs baseline")
    if spec.min_samples is not None:
        parts.append(f"at least {spec.min_samples} items")
    return "; ".join(parts) or "no worse than baseline"


def judge(
    gate: str,
    spec: GateSpec,
    run: dict[str, Any],
    base: dict[str, Any] | None,
    delta: Delta | None,
) -> GateResult:
    """One gate's verdict: fail past a limit, inconclusive when the interval crosses it, improved
    when the change is significantly better, pass otherwise."""
    metric = spec.metric or gate
    way = spec.direction or metrics.direction(metric)
    value = run.get("metrics", {}).get(metric)
    result = GateResult(
        gate=gate,
        metric=metric,
        direction=way,
        threshold=_limits(spec),
        observed=None,
        verdict="skipped",
        reason="",
    )
    if not isinstance(value, int | float):
        why = run.get("not_computable", {}).get(metric)
        result.reason = f"the candidate has no {metric!r}" + (f": {why}" if why else "")
        return result
    result.observed = float(value)
    if way is None:
        result.reason = f"{metric!r} has no known direction; set direction = 'higher' or 'lower' on the gate"
        return result
    sign = 1.0 if way == "higher" else -1.0
    checks: list[tuple[Verdict, float | None, str, tuple[float, float] | None]] = []
    n = _n(run)
    if spec.min_samples is not None and (n is None or n < spec.min_samples):
        checks.append(
            (
                "inconclusive",
                None,
                f"{n or 'unknown'} items, fewer than the {spec.min_samples} the gate needs",
                None,
            )
        )
    ci_raw = run.get("ci", {}).get(metric)
    ci = (float(ci_raw[0]), float(ci_raw[1])) if _pair(ci_raw) else None
    for limit, bad_below in ((spec.min, True), (spec.max, False)):
        if limit is None:
            continue
        margin = (value - limit) if bad_below else (limit - value)
        edge = "floor" if bad_below else "ceiling"
        if ci is not None and ci[0] < limit < ci[1]:
            checks.append(
                (
                    "inconclusive",
                    margin,
                    f"the interval [{ci[0]:.4g}, {ci[1]:.4g}] crosses the {edge} {limit:g}",
                    ci,
                )
            )
        elif margin < 0:
            checks.append(
                ("fail", margin, f"{value:.4g} is past the {edge} {limit:g} by {abs(margin):.4g}", ci)
            )
        else:
            checks.append(("pass", margin, f"{value:.4g} clears the {edge} {limit:g} by {margin:.4g}", ci))
    # A gate compares with the baseline when it allows a change, or sets no floor or ceiling at all
    # ("no worse than the baseline"); a gate of floors alone is judged on the candidate alone.
    against_base = (
        spec.max_drop is not None
        or spec.max_relative_drop is not None
        or (spec.min is None and spec.max is None)
    )
    old = base.get("metrics", {}).get(metric) if base is not None else None
    if isinstance(old, int | float):
        result.baseline = float(old)
        result.delta = float(value) - float(old)
    if base is not None and against_base:
        if isinstance(old, int | float):
            allowed = [
                x
                for x in (
                    spec.max_drop,
                    (spec.max_relative_drop or 0) * abs(old) if spec.max_relative_drop is not None else None,
                )
                if x is not None
            ]
            tolerance = min(allowed) if allowed else 0.0
            good = sign * (float(value) - float(old))  # positive: better
            margin = good + tolerance
            lo_hi = None
            if delta is not None and delta.ci is not None:
                lo, hi = sorted((sign * delta.ci[0], sign * delta.ci[1]))
                lo_hi = delta.ci
                if lo >= -tolerance:
                    verdict: Verdict = "improved" if lo > 0 else "pass"
                    checks.append(
                        (
                            verdict,
                            margin,
                            f"change {result.delta:+.4g} (interval of the gain [{lo:.4g}, {hi:.4g}]) within the allowed {tolerance:g}",
                            lo_hi,
                        )
                    )
                elif hi < -tolerance:
                    checks.append(
                        (
                            "fail",
                            margin,
                            f"worse by {abs(good):.4g}, beyond the allowed {tolerance:g} even at the interval's best ({hi:.4g})",
                            lo_hi,
                        )
                    )
                else:
                    checks.append(
                        (
                            "inconclusive",
                            margin,
                            f"change {result.delta:+.4g}: the interval of the gain [{lo:.4g}, {hi:.4g}] crosses the allowed −{tolerance:g}",
                            lo_hi,
                        )
                    )
            elif margin >= 0:
                checks.append(
                    (
                        "pass",
                        margin,
                        f"change {result.delta:+.4g} within the allowed {tolerance:g} (no interval: not tested for noise)",
                        None,
                    )
                )
            else:
                checks.append(
                    (
                        "fail",
                        margin,
                        f"worse by {abs(good):.4g}, beyond the allowed {tolerance:g} (no interval: not tested for noise)",
                        None,
                    )
                )
        else:
            checks.append(("skipped", None, f"the baseline has no {metric!r}", None))
    if not checks:
        result.verdict = "pass"
        result.reason = "the gate sets no limit and no baseline was given"
        return result
    order: dict[Verdict, int] = {"fail": 0, "inconclusive": 1, "skipped": 2, "pass": 3, "improved": 4}
    worst = min(checks, key=lambda c: order[c[0]])
    if worst[0] == "pass" and any(c[0] == "improved" for c in checks):
        worst = next(c for c in checks if c[0] == "improved")
    result.verdict = worst[0]
    margins = [c[1] for c in checks if c[1] is not None]
    result.by_how_much = min(margins) if margins else None
    if worst[3] is not None:
        result.ci_low, result.ci_high = worst[3]
    result.reason = "; ".join(c[2] for c in checks)
    return result


def overall(verdicts: list[Verdict]) -> Verdict:
    for v in ("fail", "inconclusive"):
        if v in verdicts:
            return cast(Verdict, v)
    decided = [v for v in verdicts if v != "skipped"]
    if not decided:
        return "skipped"
    return "improved" if "improved" in decided else "pass"


async def check_gates(
    ctx: EvalsContext,
    candidate: RunRef,
    baseline: Annotated[
        RunRef | None, Field(description="The run to compare against (id or name@<git ref>)")
    ] = None,
    gates: Annotated[
        dict[str, GateSpec] | None,
        Field(
            description="Gates by name, e.g. {'acc': {'metric': 'accuracy', 'min': 0.9, 'max_drop': 0.01}}; "
            "default: the gates in [evals.gates]",
            max_length=100,
        ),
    ] = None,
) -> GateReport:
    """Apply gates to a run: per gate the threshold, observed value, baseline, verdict (pass, fail,
    improved, inconclusive, skipped) and by how much; then one overall verdict (fail if any gate
    fails, else inconclusive if any is). A gate whose interval crosses its limit is inconclusive,
    not failed: the evaluation set is too small or too noisy to tell."""
    specs = gates if gates is not None else ctx.options.gates
    if not specs:
        raise EvalsError("no gates: pass `gates` or declare them in [tool.onrecord.evals.gates]")
    new = await ctx.store.lookup(candidate, ctx.git)
    old = await ctx.store.lookup(baseline, ctx.git) if baseline is not None else None
    needs_base = [
        name for name, s in specs.items() if s.max_drop is not None or s.max_relative_drop is not None
    ]
    if needs_base and old is None:
        raise EvalsError(f"gate(s) {needs_base!r} limit the change against a baseline; pass `baseline`")
    found = await _deltas(ctx, old, new) if old is not None else Paired()
    results = [
        judge(name, spec, new, old, found.deltas.get(spec.metric or name)) for name, spec in specs.items()
    ]
    return GateReport(
        verdict=overall([r.verdict for r in results]),
        candidate=summary(new),
        baseline=summary(old) if old is not None else None,
        gates=results,
        total=len(results),
        returned=len(results),
        note=join_notes(*found.notes),
    )
