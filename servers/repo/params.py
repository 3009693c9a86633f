"""Parameter types shared by the repo tools: the schema the model reads comes from these."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from common import kinds

FilePath = Annotated[
    str, Field(description="A path relative to the repository root, e.g. 'src/app.py'"), kinds.PATH
]
OptionalPath = Annotated[str | None, Field(description="Only this file or directory"), kinds.PATH]
Cursor = Annotated[
    str | None, Field(description="The next_cursor of a previous call with the same arguments")
]
Rev = Annotated[
    str | None,
    Field(description="A revision: branch, tag, commit id, or an expression such as 'HEAD~2'"),
    kinds.REV,
]
