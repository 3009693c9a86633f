"""Which files are datasets, in which format, and the DuckDB reader for each."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal

from common.errors import OnrecordError
from servers.data.sandbox import sql_string

Format = Literal["csv", "tsv", "parquet", "json", "jsonl"]
_SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
SNIFF_BYTES = 64 * 1024


class FormatError(OnrecordError):
    """A file is not a dataset onrecord can read."""


def format_of(name: str) -> tuple[Format, bool] | None:
    """(format, gzipped) from a file name, or None when it is not a dataset."""
    lower = name.lower()
    gz = lower.endswith(".gz")
    if gz:
        lower = lower[:-3]
    suffix = lower[lower.rfind(".") :] if "." in lower else ""
    fmt = _SUFFIXES.get(suffix)
    if fmt is None or (gz and fmt == "parquet"):
        return None
    return fmt, gz


def require_format(name: str) -> tuple[Format, bool]:
    found = format_of(name)
    if found is None:
        known = ", ".join(
            sorted({*_SUFFIXES, *(s + ".gz" for s in _SUFFIXES if s not in (".parquet", ".pq"))})
        )
        raise FormatError(f"{name!r} is not a dataset file onrecord reads; known suffixes: {known}")
    return found


def reader(path: Path, fmt: Format, *, all_varchar: bool = False, buffer_bytes: int | None = None) -> str:
    """The table function that reads `path` (absolute) as `fmt`; CSV and TSV in buffers of
    `buffer_bytes` when given (DuckDB's default is 32 MB per buffer, several held per thread)."""
    quoted = sql_string(str(path))
    if fmt == "parquet":
        return f"read_parquet({quoted})"
    if fmt in ("json", "jsonl"):
        style = ", format='newline_delimited'" if fmt == "jsonl" else ""
        return f"read_json({quoted}{style})"
    options = ", delim='\\t'" if fmt == "tsv" else ""
    if all_varchar:
        options += ", all_varchar=true"
    if buffer_bytes is not None:
        options += f", buffer_size={int(buffer_bytes)}"
    return f"read_csv({quoted}{options})"


def sniffer(path: Path, fmt: Format) -> str:
    """DuckDB's CSV sniffer on `path` (absolute)."""
    options = ", delim='\\t'" if fmt == "tsv" else ""
    return f"sniff_csv({sql_string(str(path))}{options})"


def encoding_of(head: bytes, gz: bool) -> str:
    """The text encoding of a text dataset's first bytes, as a person would name it."""
    if gz:
        import gzip
        import io
        import zlib

        try:
            head = gzip.GzipFile(fileobj=io.BytesIO(head)).read(SNIFF_BYTES)
        except (OSError, EOFError, zlib.error):
            return "unknown (gzip stream could not be read)"
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8 (with BOM)"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start > len(head) - 4:  # a character cut at the end of the sniffed bytes
            return "utf-8"
        return "not utf-8 (DuckDB may refuse or replace bytes)"
    return "utf-8"
