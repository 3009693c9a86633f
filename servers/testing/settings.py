"""The `[testing]` table of a settings file (`[tool.onrecord.testing]` in pyproject.toml)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from common.config import PROJECT_SETS


class TestingSettings(BaseModel):
    """How the testing server runs the project's tools. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
    __test__ = False  # not a pytest test class, whatever its name

    # The project's own interpreter runs the project's own tests: the project may name it.
    python: Annotated[str | None, PROJECT_SETS] = Field(
        default=None, min_length=1, description="The project's interpreter, e.g. '.venv/bin/python'"
    )
    command: Annotated[list[str] | None, PROJECT_SETS] = Field(
        default=None, min_length=1, description="A prefix that runs the project's Python, e.g. ['uv', 'run']"
    )
