"""The `[testing]` table of a settings file (`[tool.onrecord.testing]` in pyproject.toml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TestingSettings(BaseModel):
    """How the testing server runs the project's tools. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
    __test__ = False  # not a pytest test class, whatever its name

    python: str | None = Field(
        default=None, min_length=1, description="The project's interpreter, e.g. '.venv/bin/python'"
    )
    command: list[str] | None = Field(
        default=None, min_length=1, description="A prefix that runs the project's Python, e.g. ['uv', 'run']"
    )
