"""The rule language and the decision for one tool call (DESIGN §3).

A rule is `server.tool` with `*` globs, optionally followed by `(arg=pattern, ...)`:

    repo.*                              every repo tool
    repo.*(path=**/.env*)               any repo tool whose path argument is a .env file
    repo.*(path=**/.env*, path!=**/.env.example)   ... except .env.example
    testing.lint(fix=true)              lint with fix=True
    deploy.*(url=https://prod.*)        value globs for arguments that are not paths

Path arguments (`path`, `paths`, `targets`, ...) match gitignore-style globs against the canonical
path relative to the root (symlinks resolved, `..` folded); a pattern without `/` matches at any
depth, and a pattern that matches a directory matches everything under it. Other arguments match
shell-style globs against their text (`true`/`false` for booleans, JSON for lists and objects).

Order: built-in protections -> deny -> ask -> allow -> annotation defaults -> default.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from common.config import SCOPES, Action, ConfigError, RuleSource, Settings

PATH_ARGUMENTS = frozenset({"path", "paths", "targets", "file", "files", "dir", "directory"})
_STRICTNESS: dict[Action, int] = {"allow": 0, "ask": 1, "deny": 2}
_RULE = re.compile(r"^\s*(?P<name>[A-Za-z0-9_*?\[\]-]+\.[A-Za-z0-9_*?\[\]-]+)\s*(?:\((?P<args>.*)\))?\s*$")
_ARG_SPLIT = re.compile(r",\s*(?=[A-Za-z_][A-Za-z0-9_]*\s*!?=)")


@dataclass(frozen=True)
class Decision:
    """What the policy says about one call, and why."""

    action: Action
    reason: str
    rule: str | None = None
    source: str | None = None
    enforced: bool = True

    @property
    def effective(self) -> Action:
        """The action actually taken: shadow mode records the decision but lets the call run."""
        return self.action if self.enforced else "allow"

    @functools.cached_property
    def record(self) -> dict[str, Any]:
        """as_record(), computed once: decisions are frozen and cached per tool."""
        return self.as_record()

    def as_record(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "effective": self.effective,
            "rule": self.rule,
            "source": self.source,
            "reason": self.reason,
            "enforced": self.enforced,
        }


@dataclass(frozen=True)
class Rule:
    """A parsed rule: a name glob plus argument patterns."""

    action: Action
    text: str
    source: str
    scope: str
    name_glob: str
    arguments: tuple[tuple[str, str], ...]
    exceptions: tuple[tuple[str, str], ...] = ()

    def matches(self, arguments: dict[str, Any], canonical: dict[str, list[str]]) -> bool:
        """Whether the argument conditions hold (the caller has matched the name)."""
        for key, pattern in self.arguments:
            if key in canonical:
                values = [p for p in canonical[key] if not self._excepted(key, p)]
                if not any(path_matches(pattern, p) for p in values):
                    return False
            elif (
                key not in arguments
                or not fnmatch.fnmatchcase(_text(arguments[key]), pattern)
                or self._excepted(key, _text(arguments[key]))
            ):
                return False
        return True

    def _excepted(self, key: str, value: str) -> bool:
        return any(
            k == key and (path_matches(p, value) if key in PATH_ARGUMENTS else fnmatch.fnmatchcase(value, p))
            for k, p in self.exceptions
        )


def parse_rule(source: RuleSource) -> Rule:
    """Parse one rule; raise ConfigError naming the file and the rule."""
    m = _RULE.match(source.text)
    if not m:
        raise ConfigError(
            f"{source.file}: policy.{source.action} rule {source.text!r} is not of the form "
            "'server.tool' or 'server.tool(arg=pattern, ...)', e.g. 'repo.*(path=**/.env*)'"
        )
    args: list[tuple[str, str]] = []
    exceptions: list[tuple[str, str]] = []
    if m.group("args") is not None and m.group("args").strip():
        for part in _ARG_SPLIT.split(m.group("args").strip()):
            key, sep, pattern = part.partition("=")
            negated = key.endswith("!")
            key = key.removesuffix("!").strip()
            if not sep or not key.isidentifier() or not pattern.strip():
                raise ConfigError(
                    f"{source.file}: policy.{source.action} rule {source.text!r}: argument "
                    f"condition {part!r} must be 'name=pattern' or 'name!=pattern'"
                )
            (exceptions if negated else args).append((key, pattern.strip()))
    return Rule(
        source.action, source.text, source.file, source.scope, m.group("name"), tuple(args), tuple(exceptions)
    )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


@lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    anchored = "/" in pattern.rstrip("/")
    pattern = pattern.strip("/")
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and (end := pattern.find("]", i + 1)) > i:
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(prefix + "".join(out) + "(?:/.*)?")


def path_matches(pattern: str, path: str) -> bool:
    """Gitignore-style match of a canonical relative path (or anything under a matched directory)."""
    return _glob_regex(pattern).fullmatch(path) is not None


def canonical_path(root: Path, value: str, *, resolve: bool = True) -> str:
    """The path relative to root with symlinks resolved (or only `..` folded, for paths git itself
    listed); an absolute path when it leaves the root."""
    value = value.split("::", 1)[0]  # pytest node ids: tests/test_a.py::test_b
    if "\x00" in value:
        return value.replace("\x00", "\\0")
    joined = os.path.join(root, value)
    absolute = os.path.realpath(joined) if resolve else os.path.normpath(joined)
    prefix = str(root) + os.sep
    if absolute.startswith(prefix):
        return absolute[len(prefix) :].replace(os.sep, "/")
    return "." if absolute == str(root) else absolute


class Policy:
    """Decides allow / deny / ask for calls on one server, from merged Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.root
        ordered = sorted(settings.rules, key=lambda r: SCOPES.index(r.scope))  # type: ignore[arg-type]
        parsed = [parse_rule(r) for r in ordered]
        self.rules: dict[Action, list[Rule]] = {a: [r for r in parsed if r.action == a] for a in _STRICTNESS}
        self.protected = [os.path.realpath(p) for p in settings.protected_paths()]
        self._by_name: dict[tuple[str, str], list[Rule]] = {}
        # Decisions that depend on no argument are the same every time: cache them per tool.
        self._conditioned = {key for r in parsed for key, _ in (*r.arguments, *r.exceptions)} | PATH_ARGUMENTS
        self._static: dict[tuple[str, str, tuple[tuple[str, bool | None], ...] | None], Decision] = {}

    def canonical_arguments(self, arguments: dict[str, Any], *, resolve: bool = True) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, value in arguments.items():
            if key not in PATH_ARGUMENTS:
                continue
            values = value if isinstance(value, list) else [value]
            out[key] = [canonical_path(self.root, str(v), resolve=resolve) for v in values if v is not None]
        return out

    def _protected_hit(self, canonical: dict[str, list[str]]) -> str | None:
        for paths in canonical.values():
            for p in paths:
                absolute = p if p.startswith("/") else os.path.join(self.root, p)
                for guarded in self.protected:
                    if absolute == guarded or absolute.startswith(guarded + os.sep):
                        return p
        return None

    def _rules(self, action: Action, qualified: str) -> list[Rule]:
        key = (action, qualified)
        found = self._by_name.get(key)
        if found is None:
            found = [r for r in self.rules[action] if fnmatch.fnmatchcase(qualified, r.name_glob)]
            self._by_name[key] = found
        return found

    def decide(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        annotations: dict[str, bool | None] | None = None,
        *,
        resolve: bool = True,
    ) -> Decision:
        """The decision for one call. `resolve=False` skips symlink resolution, for paths that git
        or a directory walk listed (they are already canonical and were not followed)."""
        static = self._conditioned.isdisjoint(arguments)
        key = (server, tool, tuple(sorted(annotations.items())) if annotations is not None else None)
        if static and (cached := self._static.get(key)) is not None:
            return cached
        decision = self._decide(server, tool, arguments, annotations, resolve)
        if static:
            self._static[key] = decision
        return decision

    def _decide(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        annotations: dict[str, bool | None] | None,
        resolve: bool = True,
    ) -> Decision:
        qualified = f"{server}.{tool}"
        canonical = self.canonical_arguments(arguments, resolve=resolve)
        shadow = self.settings.mode == "shadow"
        if (hit := self._protected_hit(canonical)) is not None:
            # Built-in protections hold in shadow mode too: they guard the record itself.
            return Decision(
                "deny",
                f"{hit!r} is inside onrecord's audit log, approvals or policy files, which no tool may read",
                rule="protect(audit, approvals, policy files)",
                source="built-in",
            )
        for action in ("deny", "ask", "allow"):
            for rule in self._rules(action, qualified):
                if rule.matches(arguments, canonical):
                    return Decision(
                        action,
                        f"{qualified} matched {action} rule {rule.text!r} ({rule.scope} scope)",
                        rule=rule.text,
                        source=rule.source,
                        enforced=not shadow,
                    )
        applicable = _annotation_categories(annotations) if annotations is not None else []
        if applicable:
            defaults = self.settings.annotation_defaults
            category = max(applicable, key=lambda c: _STRICTNESS[defaults[c]])
            action = defaults[category]
            return Decision(
                action,
                f"no rule matched {qualified}; the tool is {category.replace('_', '-')}, "
                f"and policy.annotations.{category} = {action!r}",
                rule=f"annotations.{category}",
                source=self.settings.scalar_sources.get(f"annotations.{category}", "built-in default"),
                enforced=not shadow,
            )
        return Decision(
            self.settings.default,
            f"no rule or annotation default matched {qualified}; policy.default = {self.settings.default!r}",
            rule="default",
            source=self.settings.scalar_sources.get("default", "built-in default"),
            enforced=not shadow,
        )


def _annotation_categories(annotations: dict[str, bool | None]) -> list[str]:
    read_only = bool(annotations.get("read_only"))
    categories = []
    if read_only:
        categories.append("read_only")
    # The MCP spec's defaults: a tool that is not read-only is destructive unless it says otherwise,
    # and every tool is open-world unless it says otherwise.
    if not read_only and annotations.get("destructive") is not False:
        categories.append("destructive")
    if annotations.get("open_world") is not False:
        categories.append("open_world")
    return categories
