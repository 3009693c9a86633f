"""compare_datasets and `ref`: schema changes, row counts and PSI drift, also across git revisions."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

import pytest

from tests.data.conftest import Call
from tests.helpers import commit, err, ok

pytestmark = pytest.mark.anyio


def values(seed: int, shift: float, n: int = 400) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.gauss(50 + shift, 10), 4) for _ in range(n)]


def write(path: Path, xs: list[float], cats: list[str]) -> None:
    path.write_text("x,c\n" + "".join(f"{x},{c}\n" for x, c in zip(xs, cats, strict=True)), encoding="utf-8")


def python_psi(a: list[float], b: list[float]) -> float:
    ordered = sorted(a)
    edges = []
    for i in range(1, 10):
        pos = (len(ordered) - 1) * i / 10
        lo = int(pos)
        edges.append(ordered[lo] + (ordered[min(lo + 1, len(ordered) - 1)] - ordered[lo]) * (pos - lo))
    edges = sorted(set(edges))

    def counts(xs: list[float]) -> list[int]:
        out = [0] * (len(edges) + 1)
        for x in xs:
            out[sum(1 for e in edges if x > e)] += 1
        return out

    ca, cb = counts(a), counts(b)
    total = 0.0
    for e, g in zip(ca, cb, strict=True):
        pe, pg = max(e / len(a), 1e-4), max(g / len(b), 1e-4)
        total += (pg - pe) * math.log(pg / pe)
    return total


async def test_psi_matches_python_and_drift_gets_a_verdict(call: Call, project: Path) -> None:
    a, b = values(1, 0), values(2, 8)
    write(project / "data" / "a.csv", a, ["x" if i % 2 else "y" for i in range(400)])
    write(project / "data" / "b.csv", b, ["x" if i % 5 else "y" for i in range(400)])
    data = ok(await call("compare_datasets", a="data/a.csv", b="data/b.csv"))
    x = next(d for d in data["drift"] if d["column"] == "x")
    assert x["psi"] == pytest.approx(python_psi(a, b), abs=1e-5)
    assert x["verdict"] == "major_drift" and x["mean_b"] > x["mean_a"]
    c = next(d for d in data["drift"] if d["column"] == "c")
    share = [(200, 200), (80, 320)]
    expected = sum((g / 400 - e / 400) * math.log((g / 400) / (e / 400)) for e, g in zip(*share, strict=True))
    assert c["kind"] == "categorical" and c["psi"] == pytest.approx(expected, abs=1e-5)
    assert data["verdict"] == "major_drift" and data["rows_a"] == data["rows_b"] == 400


async def test_the_same_distribution_is_stable(call: Call, project: Path) -> None:
    a = values(3, 0)
    write(project / "data" / "a.csv", a, ["k"] * 400)
    write(project / "data" / "b.csv", list(reversed(a)), ["k"] * 400)
    data = ok(await call("compare_datasets", a="data/a.csv", b="data/b.csv"))
    assert data["verdict"] == "no_change" and all(d["psi"] < 1e-9 for d in data["drift"])


async def test_schema_changes_are_named(call: Call, project: Path) -> None:
    (project / "data" / "v1.csv").write_text("id,name,amount\n1,a,2\n", encoding="utf-8")
    (project / "data" / "v2.csv").write_text("id,amount,city\n1,x,here\n2,y,there\n", encoding="utf-8")
    data = ok(await call("compare_datasets", a="data/v1.csv", b="data/v2.csv"))
    assert data["added_columns"] == ["city"] and data["removed_columns"] == ["name"]
    assert data["type_changes"] == [{"column": "amount", "a": "BIGINT", "b": "VARCHAR"}]
    assert data["verdict"] == "schema_changed" and data["row_change"] == 1


async def test_one_dataset_at_two_revisions(call: Call, project: Path) -> None:
    commit(project, {"data/sales.csv": "id,region,amount\n1,north,1\n2,north,2\n3,south,3\n"}, "new sales")
    data = ok(await call("compare_datasets", a="data/sales.csv", a_ref="HEAD~1"))
    assert data["a_ref"] == "HEAD~1" and data["b_ref"] is None
    assert data["removed_columns"] == ["note"] and data["rows_a"] == 4 and data["rows_b"] == 3
    old = ok(await call("describe_dataset", path="data/sales.csv", ref="HEAD~1"))
    assert old["rows"] == 4 and old["ref"] == "HEAD~1" and len(old["columns"]) == 4
    profile = ok(await call("profile_dataset", path="data/sales.csv", ref="HEAD~1"))
    assert profile["rows"] == 4 and profile["ref"] == "HEAD~1"
    checked = ok(
        await call(
            "check_dataset", path="data/sales.csv", ref="HEAD~1", checks=[{"type": "row_count", "min": 4}]
        )
    )
    assert checked["status"] == "pass"


async def test_ref_errors_are_clear(call: Call) -> None:
    assert "does not name a commit" in err(await call("describe_dataset", path="data/sales.csv", ref="nope"))
    assert "starts with '-'" in err(await call("describe_dataset", path="data/sales.csv", ref="--output=x"))
    assert "does not exist at ref" in err(await call("describe_dataset", path="data/new.csv", ref="HEAD"))
    assert "outside the workspace root" in err(await call("describe_dataset", path="../x.csv", ref="HEAD"))
    assert "same dataset" in err(await call("compare_datasets", a="data/sales.csv"))


async def test_a_denied_file_is_refused_as_either_side(call: Call) -> None:
    assert "Denied by policy" in err(await call("compare_datasets", a="data/sales.csv", b="secrets.csv"))
    assert "Denied by policy" in err(await call("compare_datasets", a="secrets.csv", a_ref="HEAD"))


async def test_nan_and_infinities_are_a_bin_of_their_own(call: Call, project: Path) -> None:
    """Deciles come from the finite values (no NaN or infinity reaches the SQL as an edge), and a
    change in how many values are NaN or infinite shows as drift."""
    a = [float(i % 50) for i in range(400)]
    b = list(a)
    b[:100] = [math.nan] * 60 + [math.inf] * 20 + [-math.inf] * 20
    a[:4] = [math.nan, math.inf, -math.inf, math.nan]
    write(project / "data" / "fa.csv", a, ["x"] * 400)
    write(project / "data" / "fb.csv", b, ["x"] * 400)
    data = ok(await call("compare_datasets", a="data/fa.csv", b="data/fb.csv"))
    x = next(d for d in data["drift"] if d["column"] == "x")
    assert x["verdict"] == "major_drift"
    finite_a = [v for v in a if math.isfinite(v)]
    assert x["mean_a"] == pytest.approx(statistics.fmean(finite_a))
    write(project / "data" / "fa2.csv", a, ["x"] * 400)
    same = ok(await call("compare_datasets", a="data/fa.csv", b="data/fa2.csv"))
    assert next(d for d in same["drift"] if d["column"] == "x")["psi"] == 0


async def test_one_file_spelt_two_ways_is_the_same_dataset(call: Call, project: Path) -> None:
    message = err(await call("compare_datasets", a="data/sales.csv", b="./data/sales.csv"))
    assert "same dataset" in message
