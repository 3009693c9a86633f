"""The deploy server: readiness with evidence, secrets, Dockerfiles, configuration, health probes,
and the release checklist. The only deploy module that imports mcp."""

from __future__ import annotations

from mcp.types import ToolAnnotations

from common.config import Settings, server_section
from common.server import AccountableServer
from common.tools import READ_ONLY, Tool, register_all

NAME = "deploy"
INSTRUCTIONS = (
    "Deployment checks: readiness_report gives one go / no-go (fail, inconclusive, warn, pass) with "
    "evidence and a fix for every check, running the project's tests and lint, git facts, scan_secrets, "
    "check_dockerfile and check_config; scan_secrets never returns a secret, only rule, file, line and the "
    "line redacted; check_http probes a URL on a host the humans allowed; release_checklist lists "
    "what no tool can check (rollback, owner, monitoring, staged rollout) as answered or open."
)
# Runs the project's tests (its code) and writes their history; changes nothing else.
RUNS_CODE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
# Calls a service outside the process (allowed hosts only); sends a GET, changes nothing here.
PROBES = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


def register(server: AccountableServer, settings: Settings) -> None:
    """Add the deploy tools to `server`: the domain functions, bound to one DeployContext."""
    from servers.deploy.context import DeployContext
    from servers.deploy.settings import DeploySettings
    from servers.testing.project import Project
    from servers.testing.settings import TestingSettings

    options = server_section(settings, NAME, DeploySettings)
    project = Project.create(
        settings.root,
        settings.state_dir,
        server_section(settings, "testing", TestingSettings),
        settings.max_result_tokens,
    )
    ctx = DeployContext.create(
        settings.root,
        project,
        options,
        hidden=settings.protected_paths(),
        max_tokens=settings.max_result_tokens,
        sources={k: o for k in DeploySettings.model_fields if (o := settings.origin(NAME, k))},
    )
    register_all(server, NAME, ctx, table)


def table() -> list[Tool]:
    """The deploy tools; their modules are imported when the table is read (common.tools.register_all)."""
    from servers.deploy import configs, dockerfile, http, readiness, secrets

    return [
        (readiness.readiness_report, RUNS_CODE, "Release readiness report"),
        (secrets.scan_secrets, READ_ONLY, "Scan for secrets"),
        (dockerfile.check_dockerfile, READ_ONLY, "Check a Dockerfile"),
        (configs.check_config, READ_ONLY, "Check configuration files"),
        (http.check_http, PROBES, "Probe an HTTP endpoint"),
        (readiness.release_checklist, READ_ONLY, "Release checklist"),
    ]


def build_server(settings: Settings) -> AccountableServer:
    from servers import build

    return build(NAME, settings)
