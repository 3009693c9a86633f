"""The `[evals]` table of a settings file (`[tool.onrecord.evals]` in pyproject.toml)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.config import HUMANS_ONLY, PROJECT_ADDS, PROJECT_LOWERS, PROJECT_RAISES, PROJECT_SETS


class GateSpec(BaseModel):
    """One gate: a metric that must stay above a floor, below a ceiling, or near the baseline."""

    model_config = ConfigDict(extra="forbid")

    metric: str | None = Field(
        default=None, description="The metric, e.g. 'accuracy'; in settings, defaults to the table's key"
    )
    direction: Literal["higher", "lower"] | None = Field(
        default=None,
        description="Which way is better; default: the metric's own (accuracy higher, mae lower)",
    )
    min: float | None = Field(default=None, description="Floor: the candidate's value must be at least this")
    max: float | None = Field(default=None, description="Ceiling: the candidate's value must be at most this")
    max_drop: float | None = Field(
        default=None, ge=0, description="Allowed absolute change for the worse against the baseline"
    )
    max_relative_drop: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Allowed change for the worse as a fraction of the baseline value",
    )
    min_samples: int | None = Field(
        default=None, ge=1, le=1_000_000_000, description="Fewer items than this makes the gate inconclusive"
    )


class EvalsSettings(BaseModel):
    """Where runs are kept, how intervals are drawn, which endpoints may be called. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    store: Annotated[str, PROJECT_SETS] = Field(
        default=".onrecord/evals", min_length=1, description="The eval store, relative to the root"
    )
    bootstrap: Annotated[int, PROJECT_SETS] = Field(
        default=1000, ge=0, le=10_000, description="Bootstrap resamples (0: no intervals)"
    )
    seed: Annotated[int, PROJECT_SETS] = Field(
        default=0, ge=0, le=2**31 - 1, description="Seed of the bootstrap resamples"
    )
    max_bootstrap_cells: Annotated[int, PROJECT_LOWERS] = Field(
        default=20_000_000, ge=1000, le=500_000_000, description="Resamples × items drawn at most"
    )
    max_items_stored: Annotated[int, PROJECT_LOWERS] = Field(
        default=200_000,
        ge=0,
        le=10_000_000,
        description="Per-item results kept with a run, for paired comparisons",
    )
    # The humans' gates stay as they wrote them; a project may add gates of its own.
    gates: Annotated[dict[str, GateSpec], PROJECT_ADDS] = Field(
        default_factory=dict, description="Gates by name ([evals.gates.NAME])"
    )
    fail_on_inconclusive: Annotated[bool, PROJECT_RAISES] = Field(
        default=False, description="`onrecord gates` fails on inconclusive too"
    )
    # Where evaluate_endpoint may connect: the humans' alone.
    allowed_hosts: Annotated[list[str], HUMANS_ONLY] = Field(
        default_factory=list, description="Hosts (or host:port) evaluate_endpoint may call"
    )
    allow_private_hosts: Annotated[list[str], HUMANS_ONLY] = Field(
        default_factory=list,
        description="Hosts that may resolve to loopback, private or link-local addresses (refused otherwise)",
    )
    request_timeout_s: Annotated[float, PROJECT_LOWERS] = Field(default=60.0, gt=0, le=3600)
    retries: Annotated[int, PROJECT_LOWERS] = Field(default=3, ge=0, le=10)
    retry_base_s: Annotated[float, PROJECT_LOWERS] = Field(
        default=0.5, ge=0, le=60, description="First backoff; doubles per retry"
    )
    max_concurrency: Annotated[int, PROJECT_LOWERS] = Field(default=16, ge=1, le=256)
