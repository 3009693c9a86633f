"""Parameter types shared by the testing tools: the schema the model reads comes from these."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from common import kinds

Targets = Annotated[
    list[str] | None,
    Field(
        description="Node ids or paths, e.g. ['tests/test_api.py::test_login', 'tests/unit']; default: all"
    ),
    kinds.NODE_IDS,
]
Keyword = Annotated[str | None, Field(description="pytest -k expression, e.g. 'login and not slow'")]
Marker = Annotated[str | None, Field(description="pytest -m expression, e.g. 'not integration'")]
LastFailed = Annotated[bool, Field(description="Run only the tests that failed last time (all if none did)")]
MaxFailures = Annotated[int | None, Field(ge=1, le=100_000, description="Stop after this many failures")]
Timeout = Annotated[int, Field(ge=1, le=86_400, description="Seconds before the run is stopped")]
Workers = Annotated[
    Annotated[int, Field(ge=1, le=64)] | Literal["auto"] | None,
    Field(description="Parallel workers (needs pytest-xdist in the project)"),
]
Paths = Annotated[
    list[str] | None,
    Field(description="Files or directories, relative to the root; default: all"),
    kinds.PATHS,
]
Select = Annotated[list[str] | None, Field(description="Only these rule codes, e.g. ['F', 'E501']")]
NodeId = Annotated[
    str, Field(description="One test's node id, e.g. 'tests/test_api.py::test_login'"), kinds.NODE_ID
]
Cursor = Annotated[str | None, Field(description="next_cursor of a previous call")]
