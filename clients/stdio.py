"""Start an onrecord server over stdio exactly as a host would."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mcp import StdioServerParameters

# Hosts pass a minimal environment; these are the variables onrecord itself reads.
PASSED_ENV = (
    "ONRECORD_STATE_DIR",
    "ONRECORD_MANAGED_POLICY",
    "XDG_STATE_HOME",
    "XDG_CONFIG_HOME",
    "HOME",
    "PATH",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
)


def server_params(
    server: str,
    root: Path | str,
    *,
    policy: Path | str | None = None,
    env: dict[str, str] | None = None,
) -> StdioServerParameters:
    """The command a host config would hold: this interpreter running `onrecord serve`."""
    from mcp import StdioServerParameters

    args = ["-m", "clients.cli", "serve", server, "--root", str(root)]
    if policy is not None:
        args += ["--policy", str(policy)]
    passed = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    passed.update(env or {})
    return StdioServerParameters(command=sys.executable, args=args, env=passed)
