"""list_datasets, describe_dataset and query through the in-memory client."""

from __future__ import annotations

import pytest

from tests.data.conftest import Call
from tests.helpers import err, ok

pytestmark = pytest.mark.anyio


async def test_list_datasets_finds_every_format_with_size(call: Call) -> None:
    data = ok(await call("list_datasets"))
    found = {d["path"]: d for d in data["datasets"]}
    assert {"data/sales.csv", "data/numbers.parquet", "data/events.jsonl", "data/tabs.tsv"} <= set(found)
    assert (
        found["data/events.jsonl.gz"]["gzipped"] is True
        and found["data/events.jsonl.gz"]["format"] == "jsonl"
    )
    assert found["data/numbers.parquet"]["format"] == "parquet" and found["data/numbers.parquet"]["size"] > 0
    assert "README.md" not in found and ".env" not in found
    assert "data/link_out.csv" not in found  # a link out of the root is no dataset of ours
    assert "secrets.csv" not in found and data["excluded_by_policy"] >= 1


async def test_list_datasets_pages_with_a_cursor(call: Call) -> None:
    first = ok(await call("list_datasets", limit=3))
    assert first["returned"] == 3 and first["truncated"] and first["next_cursor"]
    second = ok(await call("list_datasets", limit=3, cursor=first["next_cursor"]))
    names = [d["path"] for d in first["datasets"] + second["datasets"]]
    assert len(set(names)) == 6 and second["total"] == first["total"]


async def test_describe_csv_reports_columns_rows_and_sniffed_options(call: Call) -> None:
    data = ok(await call("describe_dataset", path="data/sales.csv"))
    assert data["rows"] == 4 and data["format"] == "csv"
    assert [c["name"] for c in data["columns"]] == ["id", "region", "amount", "note"]
    assert data["columns"][2]["type"] == "DOUBLE"
    assert data["csv"]["delimiter"] == "," and data["csv"]["header"] is True and data["csv"]["quote"] == '"'
    assert data["encoding"] == "utf-8"


async def test_describe_handles_bom_tsv_gzip_jsonl_parquet_empty_and_header_only(call: Call) -> None:
    bom = ok(await call("describe_dataset", path="data/bom.csv"))
    assert [c["name"] for c in bom["columns"]] == ["id", "name"] and bom["encoding"] == "utf-8 (with BOM)"
    tsv = ok(await call("describe_dataset", path="data/tabs.tsv"))
    assert tsv["csv"]["delimiter"] == "\t" and tsv["rows"] == 2
    gz = ok(await call("describe_dataset", path="data/sales.csv.gz"))
    assert gz["rows"] == 4 and gz["gzipped"] is True
    jsonl = ok(await call("describe_dataset", path="data/events.jsonl.gz"))
    assert jsonl["rows"] == 5 and [c["name"] for c in jsonl["columns"]] == ["k", "tag"]
    parquet = ok(await call("describe_dataset", path="data/numbers.parquet"))
    assert parquet["rows"] == 100 and parquet["encoding"] is None
    empty = ok(await call("describe_dataset", path="data/empty.csv"))
    assert empty["rows"] == 0
    header = ok(await call("describe_dataset", path="data/header_only.csv"))
    assert header["rows"] == 0 and [c["name"] for c in header["columns"]] == ["a", "b", "c"]


async def test_describe_refuses_a_file_that_is_not_a_dataset(call: Call) -> None:
    assert "not a dataset file" in err(await call("describe_dataset", path="README.md"))


async def test_query_returns_typed_rows_and_time(call: Call) -> None:
    data = ok(
        await call(
            "query", sql="SELECT region, sum(amount) AS total FROM 'data/sales.csv' GROUP BY 1 ORDER BY 1"
        )
    )
    assert data["rows"] == [["east", None], ["north", 17.75], ["south", 0.0]]
    assert [c["type"] for c in data["columns"]] == ["VARCHAR", "DOUBLE"]
    assert data["files"] == ["data/sales.csv"] and data["elapsed_ms"] >= 0 and data["truncated"] is False


async def test_query_caps_rows_and_says_so(call: Call) -> None:
    data = ok(await call("query", sql="SELECT * FROM range(1000000000) t(i)", limit=5))
    assert data["returned"] == 5 and data["truncated"] is True and "more than 5 rows" in data["note"]


async def test_query_reads_every_format_by_reader_or_name(call: Call) -> None:
    sql = (
        "SELECT (SELECT count(*) FROM read_parquet('data/numbers.parquet')) AS p, "
        "(SELECT count(*) FROM read_json('data/events.jsonl')) AS j, "
        '(SELECT count(*) FROM "data/sales.csv.gz") AS g, '
        "(SELECT count(*) FROM read_csv(['data/sales.csv', 'data/sales.csv'])) AS two"
    )
    assert ok(await call("query", sql=sql))["rows"] == [[100, 5, 4, 8]]


async def test_query_allows_summarize_describe_with_and_pivot(call: Call) -> None:
    assert ok(await call("query", sql="SUMMARIZE SELECT * FROM 'data/numbers.parquet'"))["returned"] == 4
    assert ok(await call("query", sql="DESCRIBE SELECT * FROM 'data/numbers.parquet'"))["returned"] == 4
    assert ok(await call("query", sql="WITH t AS (SELECT 1 AS x) SELECT * FROM t;"))["rows"] == [[1]]
    pivot = ok(await call("query", sql="PIVOT 'data/sales.csv' ON region USING count(*)"))
    assert {"east", "north", "south"} <= {c["name"] for c in pivot["columns"]}


async def test_a_string_that_is_not_in_a_file_position_is_left_alone(call: Call) -> None:
    data = ok(await call("query", sql="SELECT 'data/sales.csv' AS name"))
    assert data["rows"] == [["data/sales.csv"]] and data["files"] == []


async def test_query_errors_are_clear_and_name_no_absolute_root(call: Call, project) -> None:
    text = err(await call("query", sql="SELECT nope FROM 'data/sales.csv'"))
    assert "nope" in text and str(project) not in text
