"""Result models of the data tools: every one carries the envelope (DESIGN §5). Results that
carry values read from a dataset are FileText, so the content gate checks their files on the way out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

from common.budget import Envelope
from common.content import FileText
from servers.data.formats import Format


class DatasetEntry(BaseModel):
    path: str
    format: Format
    gzipped: bool = False
    size: int = Field(description="Bytes on disk")


class DatasetList(Envelope):
    root: str
    datasets: list[DatasetEntry]


class Column(BaseModel):
    name: str
    type: str = Field(description="DuckDB's type for the column")
    nullable: bool = True


class CsvOptions(BaseModel):
    delimiter: str
    quote: str | None
    escape: str | None
    header: bool
    newline: str
    skip_rows: int
    date_format: str | None = None
    timestamp_format: str | None = None


class DatasetDescription(Envelope, FileText):
    path: str
    ref: str | None = None
    format: Format
    gzipped: bool = False
    size: int = Field(description="Bytes of the file")
    rows: int
    columns: list[Column]
    encoding: str | None = Field(default=None, description="Text encoding detected (text formats)")
    csv: CsvOptions | None = Field(default=None, description="What DuckDB's sniffer detected (CSV/TSV)")


class QueryResult(Envelope, FileText):
    columns: list[Column]
    rows: list[list[Any]] = Field(description="At most `limit` rows; values made JSON-safe")
    elapsed_ms: float
    files: list[str] = Field(default_factory=list, description="The dataset files the query named")

    def content_paths(self) -> Iterable[str]:
        return self.files


Severity = Literal["info", "warning"]


class Alert(BaseModel):
    column: str | None = Field(default=None, description="None for an alert about the whole dataset")
    kind: Literal[
        "constant",
        "high_cardinality",
        "unique",
        "high_missing",
        "skewed",
        "zeros",
        "imbalance",
        "mixed_types",
        "outliers",
        "identifier",
        "pii",
        "duplicates",
        "empty",
        "non_finite",
    ]
    message: str
    value: float | None = Field(default=None, description="The observed value that raised the alert")
    threshold: float | None = Field(default=None, description="The threshold it crossed")


class TopValue(BaseModel):
    value: Any
    count: int


class Bin(BaseModel):
    low: float
    high: float
    count: int


class ColumnProfile(BaseModel):
    name: str
    type: str
    count: int = Field(description="Non-null values")
    nulls: int
    null_fraction: float
    distinct: int | None = None
    distinct_approximate: bool = Field(default=False, description="True when `distinct` is an estimate")
    min: Any = None
    max: Any = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] | None = Field(
        default=None, description="p05, p25, p50, p75, p95 (approximate on large data)"
    )
    zeros: int | None = None
    negatives: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    mean_length: float | None = None
    numeric_text: int | None = Field(
        default=None, description="For text columns: values that read as numbers (mixed types)"
    )
    non_finite: int | None = Field(
        default=None, description="For float columns: NaN and infinite values, left out of the statistics"
    )
    top_values: list[TopValue] = Field(default_factory=list)
    top_values_approximate: bool = Field(
        default=False, description="True when a more frequent value may be missing from top_values"
    )
    histogram: list[Bin] = Field(default_factory=list)


class DatasetProfile(Envelope, FileText):
    path: str
    ref: str | None = None
    format: Format
    rows: int = Field(description="Rows in the dataset")
    profiled_rows: int = Field(description="Rows the statistics come from")
    sampled: bool
    duplicate_rows: int | None = Field(default=None, description="Rows that repeat an earlier row exactly")
    columns: list[ColumnProfile]
    alerts: list[Alert]
    elapsed_ms: float
