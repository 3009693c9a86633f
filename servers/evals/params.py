"""Parameter types shared by the evals tools: the schema the model reads comes from these."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from common import kinds
from servers.evals.store import NAME

Column = Annotated[str, Field(min_length=1, max_length=256)]
OptionalColumn = Annotated[str | None, Field(min_length=1, max_length=256)]
TaskParam = Annotated[
    Literal["binary", "multiclass", "regression"],
    Field(
        description="binary (0/1 labels or positive_label), multiclass (class names), regression (numbers)"
    ),
]
RunName = Annotated[
    str,
    Field(
        description="The run's name, e.g. 'churn-model'; runs of one name are compared over time",
        pattern=NAME,
        max_length=64,
    ),
]
RunRef = Annotated[
    str,
    Field(
        description="A run id from list_runs, or name@<git ref> for the newest run of that name at a commit, "
        "e.g. 'churn-model@main'",
        min_length=1,
        max_length=300,
    ),
    kinds.TEXT,
]
Cursor = Annotated[
    str | None, Field(description="The next_cursor of a previous call with the same arguments")
]
Dataset = Annotated[
    str,
    Field(
        description="A CSV, TSV, Parquet or JSON Lines file relative to the root, e.g. 'eval/preds.parquet'"
    ),
    kinds.DATASET,
]
