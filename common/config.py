"""Settings from the policy and config files, highest precedence first (DESIGN §3).

Scopes, highest first:

    managed   /etc/onrecord/policy.toml (or $ONRECORD_MANAGED_POLICY)
    cli       --policy FILE
    user      $XDG_CONFIG_HOME/onrecord/config.toml (~/.config/onrecord/config.toml)
    project   ROOT/.onrecord.toml, else [tool.onrecord] in ROOT/pyproject.toml (tightens only)

Rules from every scope are kept with the file they came from; scalar settings come from the
highest human scope that sets them. A managed file with `lock = true` drops allow rules and scalar
policy settings from lower scopes. The project file comes with the repository and may only
tighten (see `load_settings`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from common.errors import OnrecordError
from common.progress import HEARTBEAT_S

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    from common.settings_file import SettingsFile

Action = Literal["allow", "deny", "ask"]
Scope = Literal["managed", "cli", "user", "project", "builtin"]
# Most trusted first: the humans' files, then the repository's, then what onrecord ships.
SCOPES: tuple[Scope, ...] = ("managed", "cli", "user", "project", "builtin")
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
    heartbeat_s: float = HEARTBEAT_S  # progress at least this often while a call runs
    max_result_tokens: int = 20_000
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    scalar_sources: dict[str, str] = field(default_factory=dict)
    server_sources: dict[str, str] = field(default_factory=dict)  # "testing.python" -> the file
    refused: list[str] = field(default_factory=list)  # what a project file tried and may not do

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


def read_settings_file(
    path: Path, *, pyproject: bool = False, sections: Collection[str] = ()
) -> SettingsFile:
    """Parse one file; raise ConfigError naming the file, the key and what is allowed. Tables
    named in `sections` (one per server) are kept for their server to validate."""
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
    prefix = "tool.onrecord." if pyproject else ""
    for key, value in raw.items():
        if key in sections and not isinstance(value, dict):
            raise ConfigError(f"{path}: key {prefix + key!r} must be a table, e.g. [{prefix + key}]")
        if key not in sections and key not in SettingsFile.model_fields:
            raise ConfigError(
                f"{path}: unknown key {prefix + key!r}; see README 'Settings' for the keys allowed"
            )
    try:
        return SettingsFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc, prefix=prefix)) from exc


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
    sections: Collection[str] = (),
) -> Settings:
    """Merge every scope into one Settings for a server rooted at `root`.

    The managed file, `--policy` and the user's config are the humans' settings (highest first).
    The project's file comes with the repository, which nobody vetted: it may add deny and ask
    rules and lower limits, nothing else; what else it tried is kept in `settings.refused`.
    `sections` are the server tables a file may hold (`[testing]`, ...), named by the caller.
    """
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise ConfigError(f"root {str(root)!r} is not a directory; pass --root with an existing directory")
    humans: list[tuple[Scope, Path, SettingsFile]] = []
    managed = managed_file if managed_file is not None else managed_policy_path()
    if managed.is_file():
        humans.append(("managed", managed, read_settings_file(managed, sections=sections)))
    if policy_file is not None:
        cli = Path(policy_file)
        if not cli.is_file():
            raise ConfigError(f"--policy {str(policy_file)!r}: no such file")
        humans.append(("cli", cli.resolve(), read_settings_file(cli, sections=sections)))
    user = user_file if user_file is not None else user_config_path()
    if user.is_file():
        humans.append(("user", user, read_settings_file(user, sections=sections)))
    project: tuple[Path, SettingsFile] | None = None
    if use_project and (found := _project_file(root_path)):
        project = (found[0], read_settings_file(found[0], pyproject=found[1], sections=sections))

    settings = Settings(root=root_path, state_dir=state if state is not None else state_dir())
    settings.files = [path for _, path, _ in humans] + ([project[0]] if project else [])
    use_defaults = next(
        (f.policy.default_denies for _, _, f in humans if f.policy.default_denies is not None), True
    )
    # Bringing the default denies back is tightening, so the project may do that much.
    if use_defaults or (project is not None and project[1].policy.default_denies):
        settings.rules += [
            RuleSource("deny", text, "built-in default denies", "builtin") for text in DEFAULT_DENIES
        ]
    locked = any(scope == "managed" and f.policy.lock for scope, _, f in humans)
    # Walk the lowest human scope first so higher scopes overwrite scalars.
    for scope, path, f in reversed(humans):
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
        _set(settings, "heartbeat_s", f.limits.heartbeat_s, path)
        _set(settings, "max_result_tokens", f.limits.max_result_tokens, path)
        _sections(settings, f, path)
    if project is not None:
        _tighten(settings, *project)
    return settings


def _sections(settings: Settings, f: SettingsFile, path: Path, *, project: bool = False) -> None:
    """Server tables (`[testing]`, `[deploy]`, ...). A project file adds keys the humans left unset;
    a key a human set keeps the human's value, and the attempt is kept in `settings.refused`."""
    for name, section in (f.model_extra or {}).items():
        table = settings.servers.setdefault(name, {})
        for key, value in section.items():
            where = settings.server_sources.get(f"{name}.{key}")
            if project and where is not None and table.get(key) != value:
                settings.refused.append(
                    f"{path}: {name}.{key} = {value!r} ignored: the humans' settings ({where}) set it"
                )
                continue
            table[key] = value
            settings.server_sources[f"{name}.{key}"] = str(path)


def humans_only(settings: Settings, name: str, keys: Collection[str]) -> None:
    """Drop the keys of server table `name` that the project's own file (under the root) set: keys
    that loosen what a server may reach (hosts it may call, certificates it trusts)."""
    section = settings.servers.get(name, {})
    for key in keys:
        where = settings.server_sources.get(f"{name}.{key}")
        if key in section and where and Path(where).resolve().is_relative_to(settings.root):
            section.pop(key)
            settings.refused.append(f"{where}: {name}.{key} ignored: only the humans' settings may set it")


_STRICT: dict[str, int] = {"allow": 0, "ask": 1, "deny": 2}


def _tighten(settings: Settings, path: Path, f: SettingsFile) -> None:
    """Apply a project file: what tightens the humans' policy is taken, the rest refused."""
    where = str(path)

    def refuse(key: str, value: object, why: str = "a project file may only tighten the policy") -> None:
        settings.refused.append(f"{where}: {key} = {value!r} ignored: {why}")

    policy = f.policy
    for action in ("deny", "ask"):
        settings.rules += [RuleSource(action, text, where, "project") for text in getattr(policy, action)]
    for text in policy.allow:
        refuse("policy.allow", text, "only the humans' settings may allow")
    if policy.mode == "shadow" and settings.mode != "shadow":
        refuse("policy.mode", policy.mode)
    elif policy.mode == "enforce" and settings.mode == "shadow":
        _set(settings, "mode", "enforce", path)
    if policy.default_denies is False:
        refuse("policy.default_denies", False)
    if policy.lock:
        refuse("policy.lock", True, "only the managed file may lock the policy")
    if policy.default is not None:
        if _STRICT[policy.default] > _STRICT[settings.default]:
            _set(settings, "default", policy.default, path)
        elif policy.default != settings.default:
            refuse("policy.default", policy.default)
    for key, value in policy.annotations.model_dump().items():
        if value is None:
            continue
        if _STRICT[value] > _STRICT[settings.annotation_defaults[key]]:
            settings.annotation_defaults[key] = value
            settings.scalar_sources[f"annotations.{key}"] = where
        elif value != settings.annotation_defaults[key]:
            refuse(f"policy.annotations.{key}", value)
    for key, value in f.audit.model_dump().items():
        if value is not None:
            refuse(f"audit.{key}", value, "only the humans' settings say where and how the audit log is kept")
    for key, name in (
        ("approvals.ttl_s", "approval_ttl_s"),
        ("approvals.uses", "approval_uses"),
        ("limits.call_timeout_s", "call_timeout_s"),
        ("limits.heartbeat_s", "heartbeat_s"),
        ("limits.max_result_tokens", "max_result_tokens"),
    ):
        section, field_name = key.split(".")
        value = getattr(getattr(f, section), field_name)
        if value is None:
            continue
        if value <= getattr(settings, name):
            _set(settings, name, value, path)
        else:
            refuse(key, value, "a project file may only lower limits")
    _sections(settings, f, path, project=True)


def _set(settings: Settings, name: str, value: object, path: Path) -> None:
    if value is not None:
        setattr(settings, name, value)
        settings.scalar_sources[name] = str(path)


SectionT = TypeVar("SectionT", bound="BaseModel")


def server_section(settings: Settings, name: str, model: type[SectionT]) -> SectionT:
    """A server's table (`[name]`), validated by the server's own model; a ConfigError names the
    file and the key when a key is unknown or its value wrong."""
    from pydantic import ValidationError

    raw = settings.servers.get(name, {})
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = f"{name}." + ".".join(str(p) for p in err["loc"])
            where = settings.server_sources.get(key) or settings.server_sources.get(
                f"{name}.{err['loc'][0]}" if err["loc"] else name, "settings"
            )
            if err["type"] == "extra_forbidden":
                allowed = ", ".join(sorted(model.model_fields))
                lines.append(f"{where}: unknown key {key!r}; [{name}] takes: {allowed or 'no keys'}")
            else:
                lines.append(f"{where}: key {key!r}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("\n".join(lines)) from exc
