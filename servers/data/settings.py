"""The `[data]` table of a settings file (`[tool.onrecord.data]` in pyproject.toml)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from common.config import PROJECT_LOWERS


class DataSettings(BaseModel):
    """What one data call may spend. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    # What one call may spend: a project may only lower it.
    timeout_s: Annotated[float, PROJECT_LOWERS] = Field(
        default=30.0, gt=0, le=3600, description="Time limit of one call's queries"
    )
    memory_mb: Annotated[int, PROJECT_LOWERS] = Field(
        default=1024,
        ge=64,
        le=1_048_576,
        description="Memory limit per call (DuckDB's buffer manager gets three quarters, the rest is headroom "
        "for what it allocates outside it)",
    )
    threads: Annotated[int, PROJECT_LOWERS] = Field(
        default=2, ge=1, le=256, description="DuckDB threads per call (at most one per 64 MB of memory_mb)"
    )
    spill_mb: Annotated[int, PROJECT_LOWERS] = Field(
        default=2048, ge=0, le=1_048_576, description="Temp space for queries larger than memory; 0: none"
    )
    max_ref_mb: Annotated[int, PROJECT_LOWERS] = Field(
        default=512, ge=1, le=65_536, description="Largest dataset read from git history (`ref`)"
    )
