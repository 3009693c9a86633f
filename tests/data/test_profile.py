"""profile_dataset: every figure checked against an independent computation in plain Python."""

from __future__ import annotations

import csv
import io
import math
import random
import statistics
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from servers.data import profile as profiler
from tests.data.conftest import Call, write_parquet
from tests.helpers import err, ok

pytestmark = pytest.mark.anyio
N = 600


def generated() -> list[dict[str, Any]]:
    rng = random.Random(12)
    rows = []
    for i in range(N):
        rows.append(
            {
                "user_id": i + 1,
                "amount": None if i % 4 == 0 else round(rng.lognormvariate(1, 1.2), 3),
                "qty": 0 if i % 3 == 0 else rng.randint(1, 20),
                "country": "NL" if i % 20 else rng.choice(["DE", "FR"]),
                "email": f"person{i}@example.org",
                "code": str(rng.randint(100, 999)) if i % 2 else f"X{i}",
                "constant": "same",
            }
        )
    rows += [dict(rows[0]), dict(rows[1])]  # two exact duplicate rows
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


@pytest.fixture
def people(project: Path) -> list[dict[str, Any]]:
    rows = generated()
    (project / "data" / "people.csv").write_text(to_csv(rows), encoding="utf-8")
    return rows


def column(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["columns"] if c["name"] == name)


def alerts(data: dict[str, Any], name: str | None) -> dict[str, dict[str, Any]]:
    return {a["kind"]: a for a in data["alerts"] if a["column"] == name}


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (DuckDB's quantile_cont)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def test_numeric_statistics_match_python(call: Call, people: list[dict[str, Any]]) -> None:
    data = ok(await call("profile_dataset", path="data/people.csv"))
    assert data["rows"] == len(people) and data["profiled_rows"] == len(people) and data["sampled"] is False
    amounts = [r["amount"] for r in people if r["amount"] is not None]
    amount = column(data, "amount")
    assert amount["count"] == len(amounts) and amount["nulls"] == len(people) - len(amounts)
    assert amount["null_fraction"] == pytest.approx((len(people) - len(amounts)) / len(people), abs=1e-6)
    assert amount["distinct"] == len(set(amounts)) and amount["distinct_approximate"] is False
    assert amount["min"] == min(amounts) and amount["max"] == max(amounts)
    assert amount["mean"] == pytest.approx(statistics.fmean(amounts))
    assert amount["std"] == pytest.approx(statistics.stdev(amounts))
    for key, q in (("p05", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95)):
        assert amount["quantiles"][key] == pytest.approx(quantile(amounts, q)), key
    lo, hi = min(amounts), max(amounts)
    width = (hi - lo) / 10
    expected = Counter(min(int((a - lo) // width), 9) for a in amounts)
    assert [b["count"] for b in amount["histogram"]] == [expected.get(i, 0) for i in range(10)]
    assert amount["histogram"][0]["low"] == pytest.approx(lo) and amount["histogram"][-1][
        "high"
    ] == pytest.approx(hi)
    qty = column(data, "qty")
    assert qty["zeros"] == sum(1 for r in people if r["qty"] == 0) and qty["negatives"] == 0


async def test_text_statistics_and_top_values_match_python(call: Call, people: list[dict[str, Any]]) -> None:
    data = ok(await call("profile_dataset", path="data/people.csv"))
    country = column(data, "country")
    counts = Counter(r["country"] for r in people)
    assert [(t["value"], t["count"]) for t in country["top_values"]] == counts.most_common()
    email = column(data, "email")
    lengths = [len(r["email"]) for r in people]
    assert (email["min_length"], email["max_length"]) == (min(lengths), max(lengths))
    assert email["mean_length"] == pytest.approx(statistics.fmean(lengths))
    assert email["min"] == min(r["email"] for r in people) and email["max"] == max(r["email"] for r in people)
    code = column(data, "code")
    assert code["numeric_text"] == sum(1 for r in people if r["code"].isdigit())
    assert data["duplicate_rows"] == 2


async def test_alerts_name_the_threshold_they_crossed(call: Call, people: list[dict[str, Any]]) -> None:
    data = ok(await call("profile_dataset", path="data/people.csv"))
    assert alerts(data, None)["duplicates"]["value"] == 2
    assert "constant" in alerts(data, "constant")
    assert "unique" not in alerts(data, "user_id")  # the two duplicated rows repeat their ids
    assert alerts(data, "amount")["high_missing"]["threshold"] == 0.2
    assert alerts(data, "amount")["high_missing"]["value"] == pytest.approx(151 / 602, abs=1e-6)
    assert "skewed" in alerts(data, "amount") and "outliers" in alerts(data, "amount")
    assert alerts(data, "qty")["zeros"]["threshold"] == 0.1
    assert alerts(data, "country")["imbalance"]["value"] == pytest.approx(
        Counter(r["country"] for r in people)["NL"] / len(people), abs=1e-4
    )
    assert "mixed_types" in alerts(data, "code")
    assert alerts(data, "email")["pii"]["message"].endswith("look like an email address")


async def test_a_column_named_row_hash_is_profiled_like_any_other(call: Call, project: Path) -> None:
    (project / "data" / "hashes.csv").write_text(
        "row_hash,v\n" + "".join(f"{i % 7},{i % 2}\n" for i in range(40)), encoding="utf-8"
    )
    data = ok(await call("profile_dataset", path="data/hashes.csv"))
    assert [c["name"] for c in data["columns"]] == ["row_hash", "v"] and data["total"] == 2
    assert column(data, "row_hash")["distinct"] == 7 and column(data, "row_hash")["max"] == 6
    assert data["duplicate_rows"] == 40 - 14


async def test_an_id_column_is_flagged_as_an_identifier(call: Call, project: Path) -> None:
    (project / "data" / "ids.csv").write_text(
        "order_id,v\n" + "".join(f"{i},{i % 3}\n" for i in range(50)), encoding="utf-8"
    )
    data = ok(await call("profile_dataset", path="data/ids.csv"))
    assert {"unique", "identifier"} <= set(alerts(data, "order_id"))
    assert "identifier" not in alerts(data, "v")


async def test_a_sample_is_marked_and_counts_every_row(call: Call, project: Path) -> None:
    (project / "data" / "big.csv").write_text(
        "x\n" + "".join(f"{i}\n" for i in range(5000)), encoding="utf-8"
    )
    data = ok(await call("profile_dataset", path="data/big.csv", sample_rows=1000))
    assert data["sampled"] is True and data["rows"] == 5000 and data["profiled_rows"] == 1000
    assert "sample of 1000 of 5000 rows" in data["note"]
    whole = ok(await call("profile_dataset", path="data/big.csv", sample_rows=10000))
    assert whole["sampled"] is False and whole["profiled_rows"] == 5000


async def test_profile_of_parquet_jsonl_empty_and_header_only(call: Call) -> None:
    parquet = ok(await call("profile_dataset", path="data/numbers.parquet", columns=["bucket", "label"]))
    assert [c["name"] for c in parquet["columns"]] == ["bucket", "label"] and parquet["total"] == 4
    bucket = column(parquet, "bucket")
    assert bucket["distinct"] == 7 and bucket["min"] == 0 and bucket["max"] == 6
    assert sum(t["count"] for t in column(parquet, "label")["top_values"]) == 100
    jsonl = ok(await call("profile_dataset", path="data/events.jsonl.gz"))
    assert column(jsonl, "k")["mean"] == 2.0
    empty = ok(await call("profile_dataset", path="data/header_only.csv"))
    assert empty["rows"] == 0 and [a["kind"] for a in empty["alerts"]] == ["empty"]
    assert ok(await call("profile_dataset", path="data/empty.csv"))["rows"] == 0


async def test_an_unknown_column_is_an_error_naming_the_columns(call: Call) -> None:
    text = err(await call("profile_dataset", path="data/sales.csv", columns=["nope"]))
    assert "no column 'nope'" in text and "'region'" in text


async def test_profile_of_a_denied_file_is_refused(call: Call) -> None:
    assert "Denied by policy" in err(await call("profile_dataset", path="secrets.csv"))


async def test_a_large_dataset_keeps_exact_counts_and_close_quantiles(call: Call, project: Path) -> None:
    """Above 200,000 rows distinct counts are approximate and quantiles and top-value candidates
    come from a sample of the rows; counts of top values and duplicate rows stay exact."""
    rng = random.Random(7)
    n = 240_000
    rows = [(i, rng.choice("abcdefgh") if i % 50 else "rare", round(rng.gauss(100, 15), 2)) for i in range(n)]
    rows += rows[:3]  # three duplicate rows
    text = "id,kind,value\n" + "".join(f"{i},{k},{v}\n" for i, k, v in rows)
    (project / "data" / "large.csv").write_text(text, encoding="utf-8")
    data = ok(await call("profile_dataset", path="data/large.csv"))
    again = ok(await call("profile_dataset", path="data/large.csv"))
    assert {**data, "elapsed_ms": 0} == {**again, "elapsed_ms": 0}
    assert data["rows"] == n + 3 and data["duplicate_rows"] == 3
    kind = column(data, "kind")
    counts = Counter(k for _, k, _ in rows)
    assert [(t["value"], t["count"]) for t in kind["top_values"]] == counts.most_common(5)
    assert kind["distinct_approximate"] is True and abs(kind["distinct"] - len(counts)) <= 1
    values = [v for _, _, v in rows]
    value = column(data, "value")
    for key, q in (("p05", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95)):
        assert value["quantiles"][key] == pytest.approx(quantile(values, q), abs=1.0), key
    assert value["min"] == min(values) and value["max"] == max(values)
    assert value["mean"] == pytest.approx(statistics.fmean(values))
    assert sum(b["count"] for b in value["histogram"]) == len(values)


def skewed(project: Path, n: int = 20_000) -> dict[str, list[Any]]:
    """A file whose top values are close together (many near ties, some exact ones): a sketch of the
    most frequent values gets them wrong."""
    rng = random.Random(3)
    cats = [f"c{rng.randint(0, 3000)}" for _ in range(n)]
    most = max(Counter(cats).values())
    cats[:most] = ["b-tie"] * most  # as frequent as the most frequent value, and first in value order
    cols: dict[str, list[Any]] = {
        "cat": cats,
        "num": [int(rng.paretovariate(1.5)) + rng.randint(0, 2000) for _ in range(n)],
        "x": [rng.gauss(0, 1) * 10 ** rng.randint(-3, 6) for _ in range(n)],
    }
    text = "cat,num,x\n" + "".join(f"{c},{v},{x!r}\n" for c, v, x in zip(*cols.values(), strict=True))
    (project / "data" / "skewed.csv").write_text(text, encoding="utf-8")
    return cols


def top(values: list[Any], k: int = 5) -> list[tuple[Any, int]]:
    """The k most frequent values, ties in value order."""
    return sorted(Counter(values).items(), key=lambda vc: (-vc[1], vc[0]))[:k]


@pytest.mark.parametrize("held", [True, False], ids=["counted", "grouped"])
async def test_top_values_of_a_small_dataset_are_the_most_frequent(
    call: Call, project: Path, monkeypatch: pytest.MonkeyPatch, held: bool
) -> None:
    """Up to 200,000 rows every value is counted: in pass 2 while the counts fit the memory share
    they may hold, else grouped in a statement of their own."""
    if not held:
        monkeypatch.setattr(profiler, "VALUE_BYTES", 1 << 40)
    cols = skewed(project)
    assert top(cols["cat"])[0][1] == top(cols["cat"])[1][1]  # a tie, in value order
    data = ok(await call("profile_dataset", path="data/skewed.csv"))
    for name in ("cat", "num"):
        profile = column(data, name)
        assert profile["distinct_approximate"] is False and profile["top_values_approximate"] is False
        assert [(t["value"], t["count"]) for t in profile["top_values"]] == top(cols[name]), name


async def test_a_profile_is_the_same_on_every_run(call: Call, project: Path) -> None:
    skewed(project)
    runs = []
    for _ in range(3):
        data = ok(await call("profile_dataset", path="data/skewed.csv"))
        data.pop("elapsed_ms")
        runs.append(data)
    assert runs[0] == runs[1] == runs[2]


async def test_a_large_profile_is_the_same_on_every_run_and_says_what_is_approximate(
    call: Call, project: Path
) -> None:
    """Above 200,000 rows (Parquet, read in place): top values of a column of many values come from
    sampled candidates, marked approximate; those of a column of few values are exact."""
    write_parquet(
        project / "data" / "large.parquet",
        "SELECT i AS id, 'k' || (hash(i) % 7) AS kind, 'u' || (hash(i * 3) % 90000) AS many, "
        "sqrt(i) * sin(i) AS x FROM range(230000) t(i)",
    )
    runs = []
    for _ in range(2):
        data = ok(await call("profile_dataset", path="data/large.parquet"))
        data.pop("elapsed_ms")
        runs.append(data)
    assert runs[0] == runs[1]
    assert column(runs[0], "kind")["top_values_approximate"] is False
    assert column(runs[0], "many")["top_values_approximate"] is True


def sample_skewness(values: list[int]) -> float:
    """DuckDB's skewness(): the sample skewness sqrt(n(n-1))/(n-2) * m3 / m2^1.5, in exact
    fractions around the exact mean."""
    n = len(values)
    mean = Fraction(sum(values), n)
    m2 = sum((Fraction(v) - mean) ** 2 for v in values) / n
    m3 = sum((Fraction(v) - mean) ** 3 for v in values) / n
    return math.sqrt(n * (n - 1)) / (n - 2) * float(m3) / float(m2) ** 1.5


@pytest.mark.parametrize("offset", [0, 10**15], ids=["near-zero", "far-from-zero"])
async def test_moments_keep_their_digits_far_from_zero(call: Call, project: Path, offset: int) -> None:
    """Mean, std and skewness of values a long way from zero (epoch milliseconds, say) match an
    exact computation: the sums of powers are taken around a value of the column, not around zero,
    where squares and cubes of 10^15 leave too few digits for a spread of a few hundred. The first rows are the
    largest values, so the value they give is not the middle."""
    values = [offset + 500 + (i % 7) for i in range(4000)]
    values[:80] = [offset + 5000 + i % 3 for i in range(80)]
    text = "t\n" + "".join(f"{v}\n" for v in values)
    (project / "data" / "times.csv").write_text(text, encoding="utf-8")
    data = ok(await call("profile_dataset", path="data/times.csv"))
    t = column(data, "t")
    exact_mean = Fraction(sum(values), len(values))
    assert t["mean"] == pytest.approx(float(exact_mean), rel=1e-12, abs=1e-9)
    assert t["std"] == pytest.approx(statistics.stdev(Fraction(v) for v in values), rel=1e-9)
    skew = sample_skewness(values)
    alert = alerts(data, "t").get("skewed")
    assert abs(skew) > profiler.SKEW and alert is not None
    assert alert["value"] == pytest.approx(skew, abs=1e-4)  # the alert's value has 4 decimals


async def test_value_counts_of_many_columns_are_told_apart(call: Call, project: Path) -> None:
    """Every value of 70 columns is counted in statements of grouping sets, 16 sets each: each
    column gets its own values' counts, and each number column its histogram."""
    rng = random.Random(5)
    width, n = 70, 3000
    cols: dict[str, list[Any]] = {
        f"c{j}": [rng.randint(0, 3 + j % 5) if j % 2 else f"v{rng.randint(0, j % 9)}" for _ in range(n)]
        for j in range(width)
    }
    for j in (0, 33, 69):  # some missing values, which no top value or bin counts
        cols[f"c{j}"][:100] = [None] * 100
    text = ",".join(cols) + "\n"
    text += "".join(
        ",".join("" if v is None else str(v) for v in row) + "\n" for row in zip(*cols.values(), strict=True)
    )
    (project / "data" / "wide.csv").write_text(text, encoding="utf-8")
    data = ok(await call("profile_dataset", path="data/wide.csv"))
    for name, values in cols.items():
        profile = column(data, name)
        present = [v for v in values if v is not None]
        assert [(t["value"], t["count"]) for t in profile["top_values"]] == top(present), name
        if all(isinstance(v, int) for v in present):
            lo, hi = min(present), max(present)
            width_ = (hi - lo) / 10
            expected = Counter(min(int((v - lo) / width_), 9) for v in present)
            assert [b["count"] for b in profile["histogram"]] == [expected.get(i, 0) for i in range(10)], name


async def test_nan_and_infinities_are_counted_apart_from_the_statistics(call: Call, project: Path) -> None:
    """NaN and infinities are counted (`non_finite`, and an alert) and left out of the moments,
    quantiles, histogram and outliers, which are those of the finite values; the result is valid
    JSON for its schema (the in-memory Client checks it)."""
    finite = [float(i % 97) for i in range(2000)]
    odd = ["nan"] * 150 + ["inf"] * 3 + ["-inf"] * 2
    text = "f\n" + "".join(f"{v}\n" for v in [*odd, *finite])
    (project / "data" / "odd.csv").write_text(text, encoding="utf-8")
    data = ok(await call("profile_dataset", path="data/odd.csv"))
    f = column(data, "f")
    assert f["non_finite"] == len(odd) and f["count"] == len(odd) + len(finite)
    assert f["mean"] == pytest.approx(statistics.fmean(finite)) and f["std"] == pytest.approx(
        statistics.stdev(finite)
    )
    for key, q in (("p05", 0.05), ("p50", 0.5), ("p95", 0.95)):
        assert f["quantiles"][key] == pytest.approx(quantile(finite, q)), key
    assert sum(b["count"] for b in f["histogram"]) == len(finite)
    assert f["histogram"][0]["low"] == 0.0 and f["histogram"][-1]["high"] == 96.0
    assert alerts(data, "f")["non_finite"]["value"] == pytest.approx(len(odd) / f["count"], abs=1e-4)
    assert "outliers" not in alerts(data, "f")


async def test_moments_when_the_first_rows_hold_no_value(call: Call, project: Path) -> None:
    """A column whose first rows are empty and whose values lie far from zero: its sums are taken
    again around the mean, so the std keeps its digits."""
    rng = random.Random(9)
    late = [1_700_000_000_000 + rng.randint(-1000, 1000) for _ in range(5000)]
    text = (
        "k,late\n"
        + "".join(f"{i},\n" for i in range(5000))
        + "".join(f"{i},{v}\n" for i, v in enumerate(late))
    )
    (project / "data" / "late.csv").write_text(text, encoding="utf-8")
    data = ok(await call("profile_dataset", path="data/late.csv"))
    col = column(data, "late")
    assert col["std"] == pytest.approx(statistics.stdev(Fraction(v) for v in late), rel=1e-9)
    assert col["mean"] == pytest.approx(float(Fraction(sum(late), len(late))), abs=1)  # shown to the unit


async def test_a_mean_far_from_zero_shows_its_spread(call: Call, project: Path) -> None:
    """Values near 10^15 a few thousand apart: the mean and the bin edges keep the digits that
    tell them apart (12 significant digits would show 1.7e15 for all of them)."""
    base = 1_700_000_000_000_000
    write_parquet(
        project / "data" / "micros.parquet", "SELECT 1700000000000000 + i AS t FROM range(5000) r(i)"
    )
    data = ok(await call("profile_dataset", path="data/micros.parquet"))
    t = column(data, "t")
    assert t["mean"] == pytest.approx(base + 2499.5, abs=1.0)
    lows = [b["low"] for b in t["histogram"]]
    assert lows == sorted(set(lows)) and len(lows) == 10
    assert [b["count"] for b in t["histogram"]] == [500] * 10


async def test_a_wide_table_is_profiled_within_the_default_memory(call: Call, project: Path) -> None:
    """150 text columns of few values and 120 number columns: exact distinct counts and grouping
    sets go in statements of a bounded size, so each column's hash tables fit the default limit."""
    rng = random.Random(4)
    texts = {f"t{j}": [f"v{rng.randint(0, 9)}" for _ in range(50)] for j in range(150)}
    header = ",".join(texts) + "\n"
    (project / "data" / "wide_text.csv").write_text(
        header + "".join(",".join(row) + "\n" for row in zip(*texts.values(), strict=True)), encoding="utf-8"
    )
    numbers = {f"n{j}": [rng.randint(0, 5) for _ in range(40)] for j in range(120)}
    (project / "data" / "wide_numbers.csv").write_text(
        ",".join(numbers)
        + "\n"
        + "".join(",".join(map(str, row)) + "\n" for row in zip(*numbers.values(), strict=True)),
        encoding="utf-8",
    )
    for path, cols in (("data/wide_text.csv", texts), ("data/wide_numbers.csv", numbers)):
        data = ok(await call("profile_dataset", path=path))
        for name in (next(iter(cols)), list(cols)[-1]):
            profile = column(data, name)
            assert profile["distinct"] == len(set(cols[name])), (path, name)
            assert [(t["value"], t["count"]) for t in profile["top_values"]] == top(cols[name]), (path, name)


async def test_columns_asked_for_are_sampled_and_deduplicated_by_whole_rows(
    call: Call, project: Path
) -> None:
    """Above 200,000 rows with `columns`: the sample goes by the hash of the whole row, not of the
    columns asked for (which would take or leave together every row repeating their values), and
    duplicate rows are whole rows (these all differ by id)."""
    n = 240_000
    prices = [(i % 1000) / 10 for i in range(n)]
    text = "id,cat,price\n" + "".join(f"{i},{i % 3},{p}\n" for i, p in zip(range(n), prices, strict=True))
    (project / "data" / "big.csv").write_text(text, encoding="utf-8")
    data = ok(await call("profile_dataset", path="data/big.csv", columns=["price", "cat"]))
    assert data["duplicate_rows"] == 0 and "duplicates" not in alerts(data, None)
    price = column(data, "price")
    for key, q in (("p05", 0.05), ("p25", 0.25), ("p75", 0.75)):
        assert price["quantiles"][key] == pytest.approx(quantile(prices, q), abs=1.0), key


async def test_one_row_is_neither_constant_nor_unique(call: Call, project: Path) -> None:
    (project / "data" / "one.csv").write_text("a,b\n1,x\n", encoding="utf-8")
    data = ok(await call("profile_dataset", path="data/one.csv"))
    assert data["rows"] == 1 and data["alerts"] == []


async def test_values_near_the_largest_double_are_profiled(call: Call, project: Path) -> None:
    """The range of -1e308..1e308 overflows a double: the bins and the outlier fences are still
    numbers, never a bare `inf` in the SQL or a NaN edge in the result."""
    values = [-1e308, 1e308, 0.0, 5.0, -5.0]
    (project / "data" / "huge.csv").write_text("x\n" + "".join(f"{v!r}\n" for v in values), encoding="utf-8")
    data = ok(await call("profile_dataset", path="data/huge.csv"))
    x = column(data, "x")
    assert x["non_finite"] == 0 and sum(b["count"] for b in x["histogram"]) == len(values)
    assert x["histogram"][0]["low"] == -1e308 and x["histogram"][-1]["high"] == pytest.approx(1e308)
    assert [b["count"] for b in x["histogram"]] == [1, 0, 0, 0, 0, 3, 0, 0, 0, 1]
