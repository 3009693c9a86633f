"""Settings from the policy and config files, highest precedence first (DESIGN §3).

Scopes, highest first:

    managed   /etc/onrecord/policy.toml (or $ONRECORD_MANAGED_POLICY)
    cli       --policy FILE
    project   ROOT/.onrecord.toml, else [tool.onrecord] in ROOT/pyproject.toml
    user      $XDG_CONFIG_HOME/onrecord/config.toml (~/.config/onrecord/config.toml)

Rules from every scope are kept with the file they came from; scalar settings come from the
highest scope that sets them. A managed file with `lock = true` drops allow rules and scalar
policy settings from lower scopes.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from common.errors import OnrecordError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from common.settings_file import SettingsFile

Action = Literal["allow", "deny", "ask"]
Scope = Literal["managed", "cli", "project", "user", "builtin"]
SCOPES: tuple[Scope, ...] = ("managed", "cli", "project", "user", "builtin")
# Denied unless a settings file says `default_denies = false`: secrets an agent never needs to read.
DEFAULT_DENIES = (
    "*.*(path=**/.env*, path!=**/.env.example, path!=**/.env.sample, path!=**/.env.template)",
    "*.*(path=**/*.pem)",
    "*.*(path=**/*.key)",
    "*.*(path=**/*.p12)",
    "*.*(path=**/*.pfx)",
    "*.*(path=**/id_rsa*)",
    "*.*(path=**/id_dsa*)",
    "*.*(path=**/id_ecdsa*)",
    "*.*(path=**/id_ed25519*)",
    "*.*(path=**/.netrc)",
    "*.*(path=**/.pgpass)",
    "*.*(path=**/.aws/credentials)",
    "*.*(path=**/.docker/config.json)",
    "*.*(path=**/.npmrc)",
    "*.*(path=**/.pypirc)",
)
# Allowed unless a rule says otherwise: the read-only use of a tool that can also write.
DEFAULT_ALLOWS = ("testing.lint(fix=false)",)
SERVER_SECTIONS = ("repo", "testing", "data", "evals", "deploy")


class ConfigError(OnrecordError):
    """A settings file is unreadable or holds a key or value that is not allowed."""


@dataclass(frozen=True)
class RuleSource:
    """One rule as written, with where it was written."""

    action: Action
    text: str
    file: str
    scope: Scope


@dataclass
class Settings:
    """Everything a server needs to know, merged from all scopes."""

    root: Path
    state_dir: Path
    mode: Literal["enforce", "shadow"] = "enforce"
    default: Action = "allow"
    annotation_defaults: dict[str, Action] = field(
        default_factory=lambda: {"read_only": "allow", "destructive": "ask", "open_world": "ask"}
    )
    rules: list[RuleSource] = field(default_factory=list)
    audit_dir: Path | None = None
    fsync: Literal["record", "batch", "off"] = "batch"
    batch_ms: int = 200
    approval_ttl_s: int = 900
    approval_uses: int = 1
    call_timeout_s: float = 600.0
    max_result_tokens: int = 20_000
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    scalar_sources: dict[str, str] = field(default_factory=dict)

    @property
    def audit_path(self) -> Path:
        return self.audit_dir if self.audit_dir is not None else self.state_dir / "audit"

    @property
    def approvals_path(self) -> Path:
        return self.state_dir / "approvals"

    def protected_paths(self) -> list[Path]:
        """Paths no tool may read: the audit log, the approvals, and every policy file loaded."""
        protected = [self.audit_path, self.state_dir]
        protected += [f for f in self.files if f.name != "pyproject.toml"]
        return protected


def state_dir() -> Path:
    """The directory for audit logs, approvals and run history."""
    if explicit := os.environ.get("ONRECORD_STATE_DIR"):
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "onrecord"


def managed_policy_path() -> Path:
    return Path(os.environ.get("ONRECORD_MANAGED_POLICY", "/etc/onrecord/policy.toml"))


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "onrecord" / "config.toml"


def read_settings_file(path: Path, *, pyproject: bool = False) -> SettingsFile:
    """Parse one file; raise ConfigError naming the file, the key and what is allowed."""
    # The schema's models are built only when there is a file to check (start-up time).
    from pydantic import ValidationError

    from common.settings_file import SettingsFile

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings file: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    if pyproject:
        raw = raw.get("tool", {}).get("onrecord", {})
    try:
        return SettingsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc, prefix="tool.onrecord." if pyproject else "")) from exc


def _describe(path: Path, exc: ValidationError, prefix: str) -> str:
    lines = []
    for err in exc.errors():
        key = prefix + ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key {key!r}; see README 'Settings' for the keys allowed")
        else:
            lines.append(f"{path}: key {key!r}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def _project_file(root: Path) -> tuple[Path, bool] | None:
    dedicated = root / ".onrecord.toml"
    if dedicated.is_file():
        return dedicated, False
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            has_section = "onrecord" in tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            # A broken pyproject.toml belongs to the project; it is not ours to reject.
            return None
        if has_section:
            return pyproject, True
    return None


def load_settings(
    root: Path | str,
    *,
    policy_file: Path | str | None = None,
    managed_file: Path | None = None,
    user_file: Path | None = None,
    use_project: bool = True,
    state: Path | None = None,
) -> Settings:
    """Merge every scope into one Settings for a server rooted at `root`."""
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise ConfigError(f"root {str(root)!r} is not a directory; pass --root with an existing directory")
    layers: list[tuple[Scope, Path, SettingsFile]] = []
    managed = managed_file if managed_file is not None else managed_policy_path()
    if managed.is_file():
        layers.append(("managed", managed, read_settings_file(managed)))
    if policy_file is not None:
        cli = Path(policy_file)
        if not cli.is_file():
            raise ConfigError(f"--policy {str(policy_file)!r}: no such file")
        layers.append(("cli", cli.resolve(), read_settings_file(cli)))
    if use_project and (found := _project_file(root_path)):
        layers.append(("project", found[0], read_settings_file(found[0], pyproject=found[1])))
    user = user_file if user_file is not None else user_config_path()
    if user.is_file():
        layers.append(("user", user, read_settings_file(user)))

    settings = Settings(root=root_path, state_dir=state if state is not None else state_dir())
    settings.files = [path for _, path, _ in layers]
    use_defaults = next(
        (f.policy.default_denies for _, _, f in layers if f.policy.default_denies is not None), True
    )
    if use_defaults:
        settings.rules += [
            RuleSource("deny", text, "built-in default denies", "builtin") for text in DEFAULT_DENIES
        ]
    locked = any(scope == "managed" and f.policy.lock for scope, _, f in layers)
    if not locked:
        settings.rules += [
            RuleSource("allow", t, "built-in default allows", "builtin") for t in DEFAULT_ALLOWS
        ]
    # Walk lowest scope first so higher scopes overwrite scalars.
    for scope, path, f in reversed(layers):
        lower_locked = locked and scope != "managed"
        for action in ("deny", "ask", "allow"):
            if action == "allow" and lower_locked:
                continue
            settings.rules += [
                RuleSource(action, text, str(path), scope) for text in getattr(f.policy, action)
            ]
        if not lower_locked:
            _set(settings, "mode", f.policy.mode, path)
            _set(settings, "default", f.policy.default, path)
            for key, value in f.policy.annotations.model_dump().items():
                if value is not None:
                    settings.annotation_defaults[key] = value
                    settings.scalar_sources[f"annotations.{key}"] = str(path)
        _set(settings, "audit_dir", Path(f.audit.dir).expanduser() if f.audit.dir else None, path)
        _set(settings, "fsync", f.audit.fsync, path)
        _set(settings, "batch_ms", f.audit.batch_ms, path)
        _set(settings, "approval_ttl_s", f.approvals.ttl_s, path)
        _set(settings, "approval_uses", f.approvals.uses, path)
        _set(settings, "call_timeout_s", f.limits.call_timeout_s, path)
        _set(settings, "max_result_tokens", f.limits.max_result_tokens, path)
        for name in SERVER_SECTIONS:
            section = getattr(f, name)
            if section:
                settings.servers.setdefault(name, {}).update(section)
    return settings


def _set(settings: Settings, name: str, value: object, path: Path) -> None:
    if value is not None:
        setattr(settings, name, value)
        settings.scalar_sources[name] = str(path)
