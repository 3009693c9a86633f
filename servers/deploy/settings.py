"""The `[deploy]` table of a settings file (`[tool.onrecord.deploy]` in pyproject.toml).

Each key says what the project's own file may do to it (`common.config.ProjectMay`): a key that
decides what passes (which checks run or block, what the scan reads, the base of the diff checks)
or what the server may reach is the humans' alone.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.config import (
    HUMANS_ONLY,
    PROJECT_ADDS,
    PROJECT_LOWERS,
    PROJECT_NARROWS,
    PROJECT_RAISES,
    PROJECT_SETS,
)

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


class DeploySettings(BaseModel):
    """Which checks run and how; which hosts check_http may reach. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    # A project may take checks out of the humans' lists (run them, let them block), never add one.
    disabled: Annotated[list[CheckId], PROJECT_NARROWS] = Field(
        default_factory=list, description="Checks readiness_report never runs"
    )
    advisory: Annotated[list[CheckId], PROJECT_NARROWS] = Field(
        default_factory=list, description="Checks whose failure warns instead of blocking the release"
    )
    fail_on_inconclusive: Annotated[bool, PROJECT_RAISES] = Field(
        default=False, description="`onrecord readiness` also fails when a check was skipped"
    )
    # `base = "HEAD"` would leave the diff checks nothing to look at.
    base: Annotated[str | None, HUMANS_ONLY] = Field(
        default=None,
        description="Default base for the diff checks; default: the last tag, else the upstream branch",
    )
    large_file_kb: Annotated[int, PROJECT_LOWERS] = Field(
        default=1024, ge=1, le=10_000_000, description="A larger added file is large"
    )
    # Naming any file that exists as a lock file would make dependencies_pinned pass.
    lock_files: Annotated[list[str], PROJECT_NARROWS] = Field(
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
    # From the project, the rule file may add rules only: its allowlists and built-in ids are refused.
    secret_rules: Annotated[str | None, PROJECT_SETS] = Field(
        default=None,
        description="A rule file (gitleaks format) under the root adding rules (and, from the humans' "
        "settings, allowlists)",
    )
    secrets_baseline: Annotated[str, PROJECT_SETS] = Field(
        default=".onrecord-secrets-baseline",
        description="Accepted findings, one fingerprint `path:rule:line:hash` per line",
    )
    # Both decide what the scan reads: fewer bytes or commits would skip secrets.
    max_file_bytes: Annotated[int, HUMANS_ONLY] = Field(
        default=2_000_000, ge=1000, le=100_000_000, description="Larger files are not scanned"
    )
    history_commits: Annotated[int, HUMANS_ONLY] = Field(
        default=1000, ge=1, le=100_000, description="Commits scan_secrets reads at most"
    )
    # An answer is a file under the root or an https link, as a file in the repository would be.
    checklist: Annotated[dict[str, str], PROJECT_ADDS] = Field(
        default_factory=dict,
        description="Release checklist answers: item -> a file under the root or an https link",
    )
    # Where the server may connect, and whom it trusts there: the humans' alone.
    allowed_hosts: Annotated[list[str], HUMANS_ONLY] = Field(
        default_factory=list, description="Hosts (or host:port) check_http may call"
    )
    allow_private_hosts: Annotated[list[str], HUMANS_ONLY] = Field(
        default_factory=list,
        description="Hosts that may resolve to loopback, private, link-local or metadata addresses",
    )
    ca_file: Annotated[str | None, HUMANS_ONLY] = Field(
        default=None, description="A PEM file of extra certificate authorities to trust"
    )
    min_cert_days: Annotated[int, PROJECT_RAISES] = Field(
        default=14, ge=0, le=3650, description="Fewer days of certificate left warns"
    )
    max_body_bytes: Annotated[int, PROJECT_LOWERS] = Field(
        default=1_000_000, ge=1024, le=50_000_000, description="Response bodies read at most"
    )
    max_redirects: Annotated[int, PROJECT_LOWERS] = Field(default=5, ge=0, le=20)
