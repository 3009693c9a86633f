"""The shape of one settings file (every scope uses the same shape), as pydantic models.

Kept apart from `common.config` so that a server with no settings file never builds these models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["allow", "deny", "ask"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnnotationDefaults(_Strict):
    read_only: Action | None = None
    destructive: Action | None = None
    open_world: Action | None = None


class PolicyFile(_Strict):
    mode: Literal["enforce", "shadow"] | None = None
    default: Action | None = None
    lock: bool = False
    default_denies: bool | None = None
    deny: list[str] = Field(default_factory=list)
    ask: list[str] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)
    annotations: AnnotationDefaults = Field(default_factory=AnnotationDefaults)


class AuditFile(_Strict):
    dir: str | None = None
    fsync: Literal["record", "batch", "off"] | None = None
    batch_ms: int | None = Field(default=None, ge=1, le=60_000)


class ApprovalsFile(_Strict):
    ttl_s: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    uses: int | None = Field(default=None, ge=1, le=1000)


class LimitsFile(_Strict):
    call_timeout_s: float | None = Field(default=None, gt=0, le=24 * 3600)
    heartbeat_s: float | None = Field(default=None, ge=0.1, le=60)
    max_result_tokens: int | None = Field(default=None, ge=1000, le=100_000)


class SettingsFile(BaseModel):
    """One settings file. Server tables (`[testing]`, ...) are extra keys, checked by name in
    `read_settings_file` and by type by their server."""

    model_config = ConfigDict(extra="allow")

    policy: PolicyFile = Field(default_factory=PolicyFile)
    audit: AuditFile = Field(default_factory=AuditFile)
    approvals: ApprovalsFile = Field(default_factory=ApprovalsFile)
    limits: LimitsFile = Field(default_factory=LimitsFile)
