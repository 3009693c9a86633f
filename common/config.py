"""Settings from the policy and config files, highest precedence first (DESIGN §3).

Scopes, highest first:

    managed   /etc/onrecord/policy.toml (or $ONRECORD_MANAGED_POLICY)
    cli       --policy FILE
    user      $XDG_CONFIG_HOME/onrecord/config.toml (~/.config/onrecord/config.toml)
    project   ROOT/.onrecord.toml, else [tool.onrecord] in ROOT/pyproject.toml (tightens only;
              one project file: when both exist the table is not read, and a warning says so)

Rules from every scope are kept with the file they came from; scalar settings come from the
highest human scope that sets them. A managed file with `lock = true` drops allow rules and scalar
policy settings from lower scopes. The project file comes with the repository and may only
tighten (see `load_settings`).

Trust comes from the scope a value was loaded from, recorded when it is loaded, never from where a
file's path leads. A server table's keys from the project file are kept apart
(`Settings.project_servers`) and applied by `server_section`, which reads what each key of the
server's model lets a project do (`ProjectMay`, metadata on the field; none means never). A project
file that is a symbolic link, does not parse, or holds keys or values that are not allowed is
refused, in whole or key by key, with the reason in `Settings.refused`; the server starts with the
humans' settings.
"""

from __future__ import annotations

import os
import reprlib
import stat
import tomllib
from collections.abc import Callable, Collection
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


ProjectRule = Literal["set", "lower", "raise", "narrow", "add", "never"]


@dataclass(frozen=True)
class ProjectMay:
    """What the project's own file may do to one server setting; `Annotated` metadata on the field
    of the server's settings model. A field without it is the humans' alone (`never`).

    set     any value, where the humans left the key unset
    lower   a number at most the humans' value (or the default): a limit or a cost
    raise   a number (or true) at least the humans' value: a stricter threshold
    narrow  a list holding only entries of the humans' list (each entry loosens something)
    add     a table: entries under names the humans' table lacks (theirs stay as they are)
    never   nothing: the key loosens what the server may reach or what counts as passing
    """

    rule: ProjectRule


PROJECT_SETS = ProjectMay("set")
PROJECT_LOWERS = ProjectMay("lower")
PROJECT_RAISES = ProjectMay("raise")
PROJECT_NARROWS = ProjectMay("narrow")
PROJECT_ADDS = ProjectMay("add")
HUMANS_ONLY = ProjectMay("never")
# The largest project settings file read: a settings file is a few kilobytes.
MAX_PROJECT_FILE_BYTES = 1_000_000
_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 120
_SHOWN.maxlist = _SHOWN.maxdict = 12
_SHOWN.maxlevel = 3


def shown(value: object) -> str:
    """A value from a settings file in a message: its repr, bounded (a hostile file can be large)."""
    return _SHOWN.repr(value)


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
    server_scopes: dict[str, Scope] = field(default_factory=dict)  # "testing.python" -> its scope
    # The project file's server tables, as written; `server_section` takes what each key allows.
    project_servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    project_file: Path | None = None
    refused: list[str] = field(default_factory=list)  # what a project file tried and may not do
    warnings: list[str] = field(default_factory=list)  # settings written but not read, and why

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

    def refuse(self, message: str) -> None:
        """Keep what a project file tried and was not allowed (once: a table may be read twice)."""
        if message not in self.refused:
            self.refused.append(message)

    def origin(self, name: str, key: str) -> tuple[str, Scope] | None:
        """The file and scope that set key `key` of server table `name`; None when nothing did."""
        where = self.server_sources.get(f"{name}.{key}")
        if where is None:
            return None
        return where, self.server_scopes.get(f"{name}.{key}", "user")


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


def _parse_toml(text: str, path: Path) -> dict[str, Any]:
    """TOML text as a table; a ConfigError naming the file for anything tomllib cannot take."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError as exc:
        raise ConfigError(f"{path}: not read: its tables or arrays are nested too deeply") from exc
    except ValueError as exc:  # an integer with more digits than Python converts
        raise ConfigError(f"{path}: not read: {exc}") from exc


def _onrecord_table(raw: dict[str, Any], path: Path) -> dict[str, Any] | None:
    """The [tool.onrecord] table of a pyproject.toml; None when it has none."""
    tool = raw.get("tool")
    if not isinstance(tool, dict) or "onrecord" not in tool:
        return None
    table = tool["onrecord"]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: key 'tool.onrecord' must be a table, e.g. [tool.onrecord.policy]")
    return table


def read_settings_file(
    path: Path, *, pyproject: bool = False, sections: Collection[str] = ()
) -> SettingsFile:
    """Parse one of the humans' files; raise ConfigError naming the file, the key and what is
    allowed. Tables named in `sections` (one per server) are kept for their server to validate."""
    # The schema's models are built only when there is a file to check (start-up time).
    from pydantic import ValidationError

    from common.settings_file import SettingsFile

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read settings file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    raw: dict[str, Any] | None = _parse_toml(text, path)
    if pyproject:
        raw = _onrecord_table(raw or {}, path)
    raw = raw or {}
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
            lines.append(f"{path}: key {key!r}: {err['msg']} (got {shown(err.get('input'))})")
    return "\n".join(lines)


@dataclass
class ProjectFile:
    """The project's settings file, read as hostile input."""

    path: Path
    pyproject: bool
    settings: SettingsFile | None  # None: refused whole (the reason is in the refusals)


def _project_bytes(path: Path) -> bytes:
    """The bytes of a project settings file, which must be a regular file in the root, not a link.

    Raises:
        ConfigError: the file is a link, not a regular file, too large or unreadable.
    """
    link = f"{path}: a symbolic link; a project settings file must be a regular file in the root"
    if path.is_symlink():
        raise ConfigError(link)
    # O_NOFOLLOW: a file swapped for a link after the check; O_NONBLOCK: a FIFO does not hang the start.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ConfigError(link if path.is_symlink() else f"{path}: cannot read: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{path}: not a regular file")
        data = file.read(MAX_PROJECT_FILE_BYTES + 1)
    if len(data) > MAX_PROJECT_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_PROJECT_FILE_BYTES} bytes; not read")
    return data


def _project_file(root: Path) -> tuple[Path, bool] | None:
    """Where the project's settings would be: ROOT/.onrecord.toml when present (a link too, to be
    refused), else ROOT/pyproject.toml when present (its [tool.onrecord] table, if it has one)."""
    dedicated = root / ".onrecord.toml"
    if os.path.lexists(dedicated):
        return dedicated, False
    pyproject = root / "pyproject.toml"
    if pyproject.is_symlink() or pyproject.is_file():
        return pyproject, True
    return None


SHADOWED_PYPROJECT = "pyproject.toml [tool.onrecord] not read: .onrecord.toml takes precedence; merge them"


def shadowed_pyproject(root: Path) -> str | None:
    """A warning when the project has both a `.onrecord.toml` and a `[tool.onrecord]` table in its
    pyproject.toml: only the first is read (one project file), so the table is silently ignored
    unless someone says so. None when there is nothing to warn about."""
    if not os.path.lexists(root / ".onrecord.toml"):
        return None
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or pyproject.is_symlink():
        return None
    try:
        raw = _parse_toml(_project_bytes(pyproject).decode("utf-8"), pyproject)
    except (ConfigError, UnicodeDecodeError):
        return None  # not ours to judge: its table, if any, would not be read anyway
    tool = raw.get("tool")
    if not isinstance(tool, dict) or "onrecord" not in tool:
        return None
    return f"{root / 'pyproject.toml'}: {SHADOWED_PYPROJECT} ({root / '.onrecord.toml'})"


def read_project_file(
    root: Path, sections: Collection[str], refuse: Callable[[str], None]
) -> ProjectFile | None:
    """The project's settings, untrusted: a file that cannot be read as a regular TOML file in the
    root is refused whole, a key that is unknown or holds a wrong value is refused alone; each
    refusal is passed to `refuse` with its reason. None when the project has no settings file."""
    found = _project_file(root)
    if found is None:
        return None
    path, pyproject = found
    try:
        raw: dict[str, Any] | None = _parse_toml(_project_bytes(path).decode("utf-8"), path)
        if pyproject:
            raw = _onrecord_table(raw or {}, path)
    except (ConfigError, UnicodeDecodeError) as exc:
        problem = str(exc) if isinstance(exc, ConfigError) else f"{path}: not valid TOML: {exc}"
        if pyproject and "tool.onrecord" not in problem:
            # The project's own pyproject.toml is not ours to reject; what it may hold for us is not read.
            refuse(f"{problem}; its [tool.onrecord] table, if any, is not read")
        else:
            refuse(f"{problem}; the project's settings are ignored, the humans' apply")
        return ProjectFile(path, pyproject, None)
    if raw is None:
        return None
    return ProjectFile(path, pyproject, _lenient(path, raw, pyproject, sections, refuse))


def _lenient(
    path: Path, raw: dict[str, Any], pyproject: bool, sections: Collection[str], refuse: Callable[[str], None]
) -> SettingsFile:
    """A project file's table as a SettingsFile, each key that is unknown or wrong left out."""
    from pydantic import ValidationError

    from common.settings_file import SettingsFile

    prefix = "tool.onrecord." if pyproject else ""
    kept: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in sections and key not in SettingsFile.model_fields:
            refuse(
                f"{path}: {prefix}{key} = {shown(value)} ignored: unknown key; "
                "see README 'Settings' for the keys allowed"
            )
        elif not isinstance(value, dict):
            refuse(f"{path}: {prefix}{key} = {shown(value)} ignored: must be a table, e.g. [{prefix}{key}]")
        else:
            kept[key] = value
    # Each round drops the keys pydantic names; a table has finitely many keys, so this ends.
    for _ in range(1000):
        try:
            return SettingsFile.model_validate(kept)
        except ValidationError as exc:
            for err in exc.errors():
                loc, dropped = _drop(kept, err["loc"])
                key = prefix + ".".join(str(p) for p in loc)
                why = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
                why = _project_may_not(loc, err["type"]) or why
                if len(err["loc"]) > len(loc):  # an element of a list: the list goes
                    why = f"{'.'.join(str(p) for p in err['loc'][len(loc) :])}: {why}"
                refuse(f"{path}: {key} = {shown(dropped)} ignored: {why}")
    refuse(f"{path}: ignored: too many keys that are not valid; the humans' settings apply")
    return SettingsFile()


_ONLY_TIGHTEN = "a project file may only tighten the policy"
_ONLY_HUMANS_ALLOW = "only the humans' settings may allow"
_ONLY_MANAGED_LOCKS = "only the managed file may lock the policy"
_ONLY_HUMANS_AUDIT = "only the humans' settings say where and how the audit log is kept"
_ONLY_LOWER = "a project file may only lower limits"


def _project_may_not(loc: tuple[int | str, ...], error: str) -> str | None:
    """Why a project may not set the top-level key at `loc` at all, whatever its value: checked before
    the value's bounds, so a refusal never suggests a value the project could not set either."""
    if loc[:1] == ("audit",):
        return _ONLY_HUMANS_AUDIT
    if loc[:2] == ("policy", "allow"):
        return _ONLY_HUMANS_ALLOW
    if loc[:2] == ("policy", "lock"):
        return _ONLY_MANAGED_LOCKS
    # Above a bound is above any value the humans can have set: raising a limit, which is theirs.
    if loc[:1] in (("limits",), ("approvals",)) and error in ("less_than_equal", "less_than"):
        return _ONLY_LOWER
    return None


def _drop(table: dict[str, Any], loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], Any]:
    """Remove the innermost table key on the path `loc` of a validation error: its path and value."""
    node: Any = table
    for i, part in enumerate(loc):
        value = node.get(part) if isinstance(node, dict) else None
        if i == len(loc) - 1 or not isinstance(value, dict):
            if isinstance(node, dict):
                node.pop(part, None)
            return loc[: i + 1], value
        node = value
    return loc, None


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

    The managed file, `--policy` and the user's config are the humans' settings (highest first); an
    error in one is a ConfigError. The project's file comes with the repository, which nobody vetted:
    it may add deny and ask rules and lower limits; its server tables are applied by `server_section`
    as each key allows. What else it tried, and any key or file that is not valid, is kept in
    `settings.refused`. `sections` are the server tables a file may hold (`[testing]`, ...).
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

    settings = Settings(root=root_path, state_dir=state if state is not None else state_dir())
    found = read_project_file(root_path, sections, settings.refuse) if use_project else None
    if use_project and (warning := shadowed_pyproject(root_path)):
        settings.warnings.append(warning)
    project = (found.path, found.settings) if found is not None and found.settings is not None else None
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
        _sections(settings, f, path, scope)
    if project is not None:
        _tighten(settings, *project)
    return settings


def _sections(settings: Settings, f: SettingsFile, path: Path, scope: Scope) -> None:
    """The humans' server tables (`[testing]`, `[deploy]`, ...): a higher scope overwrites a key."""
    for name, section in (f.model_extra or {}).items():
        table = settings.servers.setdefault(name, {})
        for key, value in section.items():
            table[key] = value
            settings.server_sources[f"{name}.{key}"] = str(path)
            settings.server_scopes[f"{name}.{key}"] = scope


_STRICT: dict[str, int] = {"allow": 0, "ask": 1, "deny": 2}


def _tighten(settings: Settings, path: Path, f: SettingsFile) -> None:
    """Apply a project file: what tightens the humans' policy is taken, the rest refused."""
    where = str(path)

    def refuse(key: str, value: object, why: str = _ONLY_TIGHTEN) -> None:
        settings.refuse(f"{where}: {key} = {shown(value)} ignored: {why}")

    from common.policy import parse_rule

    policy = f.policy
    for action in ("deny", "ask"):
        for text in getattr(policy, action):
            rule = RuleSource(action, text, where, "project")
            try:
                parse_rule(rule)
            except ConfigError as exc:  # one bad rule of the project's must not stop the server
                settings.refuse(f"{exc}; ignored")
                continue
            settings.rules.append(rule)
    for text in policy.allow:
        refuse("policy.allow", text, _ONLY_HUMANS_ALLOW)
    if policy.mode == "shadow" and settings.mode != "shadow":
        refuse("policy.mode", policy.mode)
    elif policy.mode == "enforce" and settings.mode == "shadow":
        _set(settings, "mode", "enforce", path)
    if policy.default_denies is False:
        refuse("policy.default_denies", False)
    if policy.lock:
        refuse("policy.lock", True, _ONLY_MANAGED_LOCKS)
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
            refuse(f"audit.{key}", value, _ONLY_HUMANS_AUDIT)
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
            refuse(key, value, _ONLY_LOWER)
    settings.project_file = path
    settings.project_servers = {name: dict(table) for name, table in (f.model_extra or {}).items()}


def _set(settings: Settings, name: str, value: object, path: Path) -> None:
    if value is not None:
        setattr(settings, name, value)
        settings.scalar_sources[name] = str(path)


SectionT = TypeVar("SectionT", bound="BaseModel")


def server_section(settings: Settings, name: str, model: type[SectionT]) -> SectionT:
    """A server's table (`[name]`), validated by the server's own model: the humans' keys as they
    wrote them (a ConfigError names the file and the key when one is unknown or wrong), then each key
    of the project's table as far as the field's `ProjectMay` lets it; the rest is refused and kept
    in `settings.refused`."""
    from pydantic import ValidationError

    raw = settings.servers.get(name, {})
    try:
        humans = model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe_section(settings, name, model, exc)) from exc
    project = settings.project_servers.get(name)
    if not project or settings.project_file is None:
        return humans
    merged = dict(raw)
    for key, value in project.items():
        taken = _project_value(settings, name, model, humans, merged, key, value)
        if taken is not _REFUSED:
            merged[key] = taken
            settings.server_sources[f"{name}.{key}"] = str(settings.project_file)
            settings.server_scopes[f"{name}.{key}"] = "project"
    return model.model_validate(merged)


_REFUSED = object()


def _project_value(
    settings: Settings,
    name: str,
    model: type[BaseModel],
    humans: BaseModel,
    merged: dict[str, Any],
    key: str,
    value: Any,
) -> Any:
    """What of the project's `value` for `name.key` is taken (as raw TOML data), or _REFUSED; every
    part left out is refused with its reason."""
    from pydantic import ValidationError

    def refuse(why: str, part: object = value) -> None:
        settings.refuse(f"{settings.project_file}: {name}.{key} = {shown(part)} ignored: {why}")

    declared = model.model_fields.get(key)
    if declared is None:
        allowed = ", ".join(sorted(model.model_fields))
        refuse(f"unknown key; [{name}] takes: {allowed or 'no keys'}")
        return _REFUSED
    rule = next((m.rule for m in declared.metadata if isinstance(m, ProjectMay)), "never")
    current = getattr(humans, key)
    origin = settings.origin(name, key)
    theirs = f"the humans' settings ({origin[0]})" if key in merged and origin else "the default"
    try:
        candidate = getattr(model.model_validate({**merged, key: value}), key)
        invalid: list[str] = []
    except ValidationError as exc:
        errors = [e for e in exc.errors() if e["loc"][:1] == (key,)] or exc.errors()
        candidate, invalid = _REFUSED, [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors]
    if candidate == current:
        return value
    # What the project may do with the key comes first: a value's bounds matter only to a value the
    # project could set at all (a bound named for a key it may not touch reads as an invitation).
    if rule == "never":
        refuse("only the humans' settings may set it")
        return _REFUSED
    if rule == "set" and key in settings.servers.get(name, {}):
        refuse(f"{theirs} set it")
        return _REFUSED
    stricter = _comparable(value, current) and (value < current if rule == "lower" else value > current)
    if rule in ("lower", "raise") and _comparable(value, current) and not stricter:
        refuse(f"a project file may only {rule} it ({theirs}: {shown(current)})")
        return _REFUSED
    if invalid:
        refuse("; ".join(invalid))
        return _REFUSED
    if rule == "set":
        return value
    if rule in ("lower", "raise"):
        lower = rule == "lower"
        if (
            current is not None
            and candidate is not None
            and (candidate < current if lower else candidate > current)
        ):
            return value
        refuse(f"a project file may only {rule} it ({theirs}: {shown(current)})")
        return _REFUSED
    if rule == "narrow" and isinstance(candidate, list):
        kept = [item for item in candidate if item in current]
        extra = [item for item in candidate if item not in current]
        if extra:
            refuse(f"a project file may only drop entries of this list ({theirs}: {shown(current)})", extra)
        return kept
    if rule == "add" and isinstance(candidate, dict) and isinstance(value, dict):
        table = dict(merged.get(key, {}))
        for entry, spec in value.items():
            if entry not in current:
                table[entry] = spec
            elif candidate[entry] != current[entry]:
                refuse(f"{theirs} define {entry!r}; a project file may only add entries", {entry: spec})
        return table
    refuse("only the humans' settings may set it")
    return _REFUSED


def _comparable(value: object, current: object) -> bool:
    """Whether a project's raw value compares with the humans' as a number (or both are booleans)."""
    if isinstance(value, bool) or isinstance(current, bool):
        return isinstance(value, bool) and isinstance(current, bool)
    return isinstance(value, int | float) and isinstance(current, int | float)


def _describe_section(settings: Settings, name: str, model: type[BaseModel], exc: ValidationError) -> str:
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
            lines.append(f"{where}: key {key!r}: {err['msg']} (got {shown(err.get('input'))})")
    return "\n".join(lines)
