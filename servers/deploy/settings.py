"""The `[deploy]` table of a settings file (`[tool.onrecord.deploy]` in pyproject.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# In the order they run: the git facts first, before running the tests writes caches into the tree.
CheckId = Literal[
    "worktree_clean",
    "pushed",
    "version_bumped",
    "changelog",
    "dependencies_pinned",
    "no_debug_added",
    "no_large_binaries",
    "secrets",
    "dockerfile",
    "config",
    "tests",
    "lint",
]
CHECK_IDS: tuple[str, ...] = CheckId.__args__  # type: ignore[attr-defined]
# Keys that loosen what the server may reach: only the humans' settings may set them.
HUMANS_ONLY = ("allowed_hosts", "allow_private_hosts", "ca_file")


class DeploySettings(BaseModel):
    """Which checks run and how; which hosts check_http may reach. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    disabled: list[CheckId] = Field(default_factory=list, description="Checks readiness_report never runs")
    advisory: list[CheckId] = Field(
        default_factory=list, description="Checks whose failure warns instead of blocking the release"
    )
    fail_on_inconclusive: bool = Field(
        default=False, description="`onrecord readiness` also fails when a check was skipped"
    )
    base: str | None = Field(
        default=None,
        description="Default base for the diff checks; default: the last tag, else the upstream branch",
    )
    large_file_kb: int = Field(default=1024, ge=1, le=10_000_000, description="A larger added file is large")
    lock_files: list[str] = Field(
        default_factory=lambda: [
            "uv.lock",
            "poetry.lock",
            "pdm.lock",
            "Pipfile.lock",
            "requirements.txt",
            "requirements.lock",
            "package-lock.json",
            "yarn.lock",
            "pnpm-lock.yaml",
            "Cargo.lock",
            "go.sum",
            "Gemfile.lock",
        ],
        description="Files that pin dependencies",
    )
    secret_rules: str | None = Field(
        default=None, description="A rule file (gitleaks format) under the root adding rules and allowlists"
    )
    secrets_baseline: str = Field(
        default=".onrecord-secrets-baseline",
        description="Accepted findings, one `path:rule:line` or `path:rule` per line",
    )
    max_file_bytes: int = Field(
        default=2_000_000, ge=1000, le=100_000_000, description="Larger files are not scanned"
    )
    history_commits: int = Field(
        default=1000, ge=1, le=100_000, description="Commits scan_secrets reads at most"
    )
    checklist: dict[str, str] = Field(
        default_factory=dict,
        description="Release checklist answers: item -> a file under the root or an https link",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Hosts (or host:port) check_http may call"
    )
    allow_private_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts that may resolve to loopback, private, link-local or metadata addresses",
    )
    ca_file: str | None = Field(
        default=None, description="A PEM file of extra certificate authorities to trust"
    )
    min_cert_days: int = Field(default=14, ge=0, le=3650, description="Fewer days of certificate left warns")
    max_body_bytes: int = Field(
        default=1_000_000, ge=1024, le=50_000_000, description="Response bodies read at most"
    )
    max_redirects: int = Field(default=5, ge=0, le=20)
