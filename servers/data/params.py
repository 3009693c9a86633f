"""Parameter types shared by the data tools: the schema the model reads comes from these."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from common import kinds

DatasetPath = Annotated[
    str,
    Field(
        description="A dataset file relative to the root, e.g. 'data/sales.csv' (CSV, TSV, Parquet, JSON, JSONL, or .gz)"
    ),
    kinds.DATASET,
]
Ref = Annotated[
    str | None,
    Field(
        description="Read the dataset as it was at this git revision, e.g. 'HEAD~1' or a tag; default: the working tree"
    ),
    kinds.REV,
]
Sql = Annotated[
    str,
    Field(
        description="One read statement (SELECT, WITH, SUMMARIZE, DESCRIBE, PIVOT) naming files by string "
        "literal relative to the root, e.g. \"SELECT region, sum(amount) FROM 'data/sales.csv' GROUP BY 1\"",
        min_length=1,
        max_length=100_000,
    ),
    kinds.SQL,
]
Cursor = Annotated[
    str | None, Field(description="The next_cursor of a previous call with the same arguments")
]
Columns = Annotated[
    list[str] | None,
    Field(description="Only these columns (default: all, up to 200)", max_length=1000),
]
