"""The rule language and the decision for one tool call (DESIGN §3).

A rule is `server.tool` with `*` globs, optionally followed by `(arg=pattern, ...)`:

    repo.*                              every repo tool
    repo.*(path=**/.env*)               any repo tool given a .env file in any path-like argument
    repo.*(path=**/.env*, path!=**/.env.example)   ... except .env.example
    testing.lint(fix=true)              lint with fix=True
    deploy.*(url=https://prod.*)        value globs for arguments that are not paths

Each tool parameter declares its kind (`common.kinds`). `path=` covers every path-like argument of a
tool whatever its name (`path`, `paths`, `targets`, `node_id`, ...); a condition naming a path-like
argument covers that argument only. Path-like values match gitignore-style globs against the names
the workspace gives them (`common.workspace.canonical_names`: the path as written with `..` folded,
and the file it reaches through links); a pattern without `/` matches at any depth, a pattern that
matches a directory matches everything under it, and `dir/**` also matches `dir` itself. Other
arguments match shell-style globs against their validated value's text (`true`/`false` for
booleans, JSON for lists and objects). URL values arrive in canonical form (`common.urls`); deny and
ask rules match them ignoring case.

A deny or ask rule matches when any value, by any of its names, matches; an allow rule only when
every value by every name does, so a link or a list cannot smuggle a path past a deny or into an
allow.

A deny or ask rule whose conditions are all on paths says a file is sensitive; it covers that
file's content in every tool of its server, not just the tools it names (`content_decision`).

Order: built-in protections -> deny -> ask -> allow -> annotation defaults -> default.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import re2

from common.audit import canonical
from common.config import SCOPES, Action, ConfigError, RuleSource, Settings
from common.errors import OnrecordError
from common.kinds import PATH, Kind
from common.urls import url_pattern
from common.workspace import canonical_names

ANY_PATH = "path"  # in a rule, `path=` covers every path-like argument
_STRICTNESS: dict[Action, int] = {"allow": 0, "ask": 1, "deny": 2}
_RULE = re.compile(r"^\s*(?P<name>[A-Za-z0-9_*?\[\]-]+\.[A-Za-z0-9_*?\[\]-]+)\s*(?:\((?P<args>.*)\))?\s*$")
_ARG_SPLIT = re.compile(r",\s*(?=[A-Za-z_][A-Za-z0-9_]*\s*!?=)")
# The names of each path-like value, per argument.
PathNames = dict[str, list[tuple[str, ...]]]


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

    @functools.cached_property
    def record_json(self) -> str:
        """The record as canonical JSON (common.audit), computed once: the call record splices it in."""
        return canonical(self.record)

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
    # The same conditions as a URL argument reads them (`common.urls.url_pattern`), and what could
    # not be read so, worked out once when the policy is loaded.
    url_arguments: tuple[tuple[str, str], ...] = ()
    url_exceptions: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()

    def path_only(self, kinds: Mapping[str, Kind]) -> bool:
        """True when every condition is on paths: the rule names sensitive files."""
        keys = [k for k, _ in (*self.arguments, *self.exceptions)]
        return bool(self.arguments) and all(k == ANY_PATH or _path_like(kinds, k) for k in keys)

    def matches(
        self, arguments: Mapping[str, Any], kinds: Mapping[str, Kind], paths: PathNames, *, every: bool
    ) -> bool:
        """Whether the argument conditions hold (the caller has matched the name). `every`: each
        path value must match by each of its names (allow rules); else one name of one value will do."""
        for i, (key, pattern) in enumerate(self.arguments):
            url = _url(kinds, key)
            if url and self.url_arguments:
                pattern = self.url_arguments[i][1]
            if key == ANY_PATH or _path_like(kinds, key):
                values = [v for k, vs in paths.items() if key in (ANY_PATH, k) for v in vs]
                hit = [self._path_hit(key, pattern, names, every) for names in values]
                if not values or not (all(hit) if every else any(hit)):
                    return False
            elif (
                key not in arguments
                or arguments[key] is None
                or not _value_hit(_text(arguments[key]), pattern, fold=not every and url)
                or self._excepted(key, _text(arguments[key]), kinds)
            ):
                return False
        return True

    def _path_hit(self, key: str, pattern: str, names: tuple[str, ...], every: bool) -> bool:
        hits = (path_matches(pattern, n) and not self._excepted(key, n, None) for n in names)
        return all(hits) if every else any(hits)

    def _excepted(self, key: str, value: str, kinds: Mapping[str, Kind] | None) -> bool:
        path = kinds is None
        exceptions = self.url_exceptions if kinds is not None and _url(kinds, key) else self.exceptions
        return any(
            k == key and (path_matches(p, value) if path else fnmatch.fnmatchcase(value, p))
            for k, p in exceptions
        )


def _value_hit(value: str, pattern: str, *, fold: bool) -> bool:
    # A URL reaches the rules in canonical form (scheme and host lower-case); a deny or ask rule
    # written `url=https://PROD.*` still names it. Allow rules and exceptions keep case: folding
    # there would let more through.
    if fold:
        return fnmatch.fnmatchcase(value.lower(), pattern.lower())
    return fnmatch.fnmatchcase(value, pattern)


def _url(kinds: Mapping[str, Kind], key: str) -> bool:
    kind = kinds.get(key)
    return kind is not None and kind.url


def _path_like(kinds: Mapping[str, Kind], key: str) -> bool:
    kind = kinds.get(key)
    return kind is not None and kind.path_like


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
    url_args = [(k, url_pattern(p)) for k, p in args]
    url_exceptions = [(k, url_pattern(p)) for k, p in exceptions]
    # Deny and ask rules match URLs ignoring case; an allow rule or an exception that cannot be read
    # as URLs are written would let through what its author meant to hold back.
    warnings: list[str] = []
    for op, effect, written, read in (
        ("=", "never matches it", args if source.action == "allow" else [], url_args),
        ("!=", "never excepts it", exceptions, url_exceptions),
    ):
        for (key, pattern), (_, (_, why)) in zip(written, read, strict=False):
            if why is not None:
                warnings.append(
                    f"{source.file}: policy.{source.action} rule {source.text!r}: {key}{op}{pattern!r}: "
                    f"{why}; where {key!r} is a URL argument the rule {effect}"
                )
    return Rule(
        source.action,
        source.text,
        source.file,
        source.scope,
        m.group("name"),
        tuple(args),
        tuple(exceptions),
        tuple((k, u) for k, (u, _) in url_args),
        tuple((k, u) for k, (u, _) in url_exceptions),
        tuple(warnings),
    )


def rule_warnings(settings: Settings) -> list[str]:
    """What in the settings' rules cannot mean what it seems to (see `parse_rule`)."""
    return [w for source in settings.rules for w in parse_rule(source).warnings]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is reported to the caller, not logged by RE2


class GlobError(OnrecordError):
    """A glob pattern cannot be compiled."""


@lru_cache(maxsize=512)
def _glob_regex(pattern: str) -> Any:
    """The glob as an RE2 expression: matching runs in time linear in the path, whatever the pattern
    (a backtracking engine takes minutes on `*a*a*a*a*a*a*a*a*ax` against a long name)."""
    return _compile(pattern, "(?s)" + _glob_source(pattern, lines=False))


def _compile(original: str, source: str) -> Any:
    try:
        return re2.compile(source, _RE2_OPTIONS)
    except re2.error as exc:
        reason = (
            exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        )
        raise GlobError(
            f"glob {original!r} is not a valid pattern ({reason}); use *, **, ? and [abc] or [!abc]"
        ) from exc


def _glob_source(pattern: str, *, lines: bool) -> str:
    """The RE2 source of a glob; with `lines`, no part of it matches a newline (for matching the
    lines of a newline-joined listing in one pass)."""
    any_char = "[^\\n]" if lines else "."
    not_slash = "[^/\\n]" if lines else "[^/]"
    anchored = "/" in pattern.rstrip("/")
    folder = pattern.endswith("/**")  # `dir/**` covers `dir` itself too
    pattern = pattern.strip("/")
    if folder:
        pattern = pattern[:-3]
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append(f"(?:{any_char}*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(f"{any_char}*")
            i += 2
        elif c == "*":
            out.append(f"{not_slash}*")
            i += 1
        elif c == "?":
            out.append(not_slash)
            i += 1
        elif c == "[" and (end := pattern.find("]", i + 1)) > i:
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            newline = "\\n" if lines else ""
            out.append("[^" + body[1:] + newline + "]" if body.startswith("!") else "[" + body + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    prefix = "" if anchored else f"(?:{any_char}*/)?"
    return prefix + "".join(out) + f"(?:/{any_char}*)?"


@lru_cache(maxsize=64)
def _lines_regex(patterns: tuple[str, ...]) -> Any:
    alternatives = "|".join(f"(?:{_glob_source(p, lines=True)})" for p in patterns)
    return _compile(", ".join(patterns), f"(?m)^(?:{alternatives})$")


@lru_cache(maxsize=64)
def _suspects_regex(literals: tuple[str, ...]) -> Any:
    # A line that holds a literal, or is not a clean relative name (absolute, `//`, `.` or `..`).
    unclean = r"^/|//|(?:^|/)\.\.?(?:/|$)|/$"
    held = "|".join(re.escape(literal) for literal in literals)
    return re2.compile(f"(?m)^[^\\n]*(?:{unclean}{'|' + held if held else ''})[^\\n]*$", _RE2_OPTIONS)


def suspects(literals: tuple[str, ...], names: list[str]) -> set[str] | None:
    """Of clean listing names, those a content screen (`Policy.content_screen`) cannot clear: the
    ones holding one of the literals, or not clean relative names. One RE2 pass over the listing;
    None when a name holds a newline (decide each name then)."""
    if any("\n" in n for n in names):
        return None
    return {m.group(0) for m in _suspects_regex(literals).finditer("\n".join(names))}


def matching(patterns: tuple[str, ...], paths: list[str]) -> list[str]:
    """The paths any of the globs matches (as `path_matches`), in order: one RE2 pass over the
    newline-joined listing instead of one match per path and pattern."""
    if not patterns or not paths:
        return []
    if any("\n" in p for p in paths):  # a name with a newline (git allows it): path by path
        return [p for p in paths if any(path_matches(g, p) for g in patterns)]
    return [m.group(0) for m in _lines_regex(patterns).finditer("\n".join(paths))]


def path_matches(pattern: str, path: str) -> bool:
    """Gitignore-style match of a canonical relative path (or anything under a matched directory)."""
    literal = _required_literal(pattern)
    if literal and literal not in path:
        return False  # a substring test is far cheaper than an RE2 call, and most rules miss
    return _glob_regex(pattern).fullmatch(path) is not None


@lru_cache(maxsize=512)
def _required_literal(pattern: str) -> str:
    """The longest run of plain characters every path the glob matches must contain."""
    runs, current, i = [], "", 0
    while i < len(pattern):
        c = pattern[i]
        if c in "*?":
            runs.append(current)
            current = ""
        elif c == "[" and (end := pattern.find("]", i + 1)) > i:
            runs.append(current)
            current = ""
            i = end
        else:
            current += c
        i += 1
    runs.append(current)
    return max((r.strip("/") for r in runs), key=len, default="")


class Policy:
    """Decides allow / deny / ask for calls on one server, from merged Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.root
        ordered = sorted(settings.rules, key=lambda r: SCOPES.index(r.scope))
        parsed = [parse_rule(r) for r in ordered]
        self.warnings = [w for r in parsed for w in r.warnings]
        self.rules: dict[Action, list[Rule]] = {a: [r for r in parsed if r.action == a] for a in _STRICTNESS}
        self.protected = [os.path.realpath(p) for p in settings.protected_paths()]
        self._tools: dict[str, list[str]] = {}  # server -> qualified names of its tools
        self._by_name: dict[tuple[Action, str], list[Rule]] = {}
        # Decisions that depend on no argument are the same every time: cache them per tool.
        self.conditioned = {key for r in parsed for key, _ in (*r.arguments, *r.exceptions)} - {ANY_PATH}
        self._static: dict[tuple[Any, ...], Decision] = {}
        self._content: dict[tuple[str, str, tuple[str, ...]], Decision] = {}
        self._screens: dict[tuple[str, str], tuple[str, ...] | Literal[False]] = {}

    def register(self, server: str, tool: str) -> None:
        """Make `server.tool` known, so that path-only rules for its server cover its content."""
        self._tools.setdefault(server, []).append(f"{server}.{tool}")
        self._by_name.clear()

    def path_names(self, arguments: Mapping[str, Any], kinds: Mapping[str, Kind]) -> PathNames:
        """The canonical names of every path-like value, per argument."""
        out: PathNames = {}
        for key, kind in kinds.items():
            if kind.path_like:
                out[key] = [canonical_names(self.root, v) for v in kind.values(arguments.get(key))]
        return out

    def _protected_hit(self, paths: PathNames) -> str | None:
        for values in paths.values():
            for names in values:
                for p in names:
                    absolute = p if p.startswith("/") else os.path.join(self.root, p)
                    for guarded in self.protected:
                        if absolute == guarded or absolute.startswith(guarded + os.sep):
                            return p
        return None

    def _rules(self, action: Action, server: str, qualified: str) -> list[Rule]:
        """Rules naming this tool, then (deny and ask) path-only rules naming any tool of its server."""
        key = (action, qualified)
        found = self._by_name.get(key)
        if found is None:
            found = [r for r in self.rules[action] if fnmatch.fnmatchcase(qualified, r.name_glob)]
            if action != "allow":
                siblings = self._tools.get(server, [])
                found += [
                    r
                    for r in self.rules[action]
                    if r not in found
                    and r.path_only({})
                    and any(fnmatch.fnmatchcase(t, r.name_glob) for t in siblings)
                ]
            self._by_name[key] = found
        return found

    def decide(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        annotations: dict[str, bool | None] | None = None,
        *,
        kinds: Mapping[str, Kind] | None = None,
    ) -> Decision:
        """The decision for one call, on the validated arguments the tool will get."""
        kinds = kinds or {}
        paths = self.path_names(arguments, kinds)
        # A decision that depends on nothing but the canonical path names is remembered by them.
        static = self.conditioned.isdisjoint(arguments)
        key = (
            server,
            tool,
            tuple(sorted(annotations.items())) if annotations is not None else None,
            tuple((k, tuple(v)) for k, v in paths.items() if v),
        )
        if static and (cached := self._static.get(key)) is not None:
            return cached
        decision = self._decide(server, tool, arguments, kinds, paths, annotations)
        if static and len(self._static) < 100_000:
            self._static[key] = decision
        return decision

    def argument_free(self, decision: Decision) -> bool:
        """Whether `decision` holds for every call of its tool whatever the arguments: it came from
        an annotation default, the default, or a rule with no argument conditions."""
        for rule in self.rules.get(decision.action, []):
            if rule.text == decision.rule and rule.source == decision.source:
                return not rule.arguments and not rule.exceptions
        return decision.rule == "default" or (decision.rule or "").startswith("annotations.")

    def content_decision(self, server: str, tool: str, path: str, *, follow_links: bool = False) -> Decision:
        """Whether text from file `path` may leave through `server.tool` without asking: denied or
        asked when a protection or a deny / ask rule on paths names the file, else allowed.

        `follow_links=False` for paths git or a walk listed (their text is the file's own, links
        are not followed); True for files read through the working tree."""
        names = canonical_names(self.root, path, follow_links=follow_links)
        key = (server, tool, names)
        if (cached := self._content.get(key)) is not None:
            return cached
        screen = self.content_screen(server, tool)
        # One combined check: a name inside the root that holds none of the text every rule on paths
        # (and every protected folder inside the root) requires is named by nothing; no glob runs.
        if (
            screen is not False
            and not any(n == ".." or n.startswith(("/", "../")) for n in names)
            and not any(literal in n for n in names for literal in screen)
        ):
            return _NAMED_BY_NOTHING
        decision = self._decide(server, tool, {}, {ANY_PATH: PATH}, {ANY_PATH: [names]}, None, content=True)
        if len(self._content) < 200_000:
            self._content[key] = decision
        return decision

    def content_screen(self, server: str, tool: str) -> tuple[str, ...] | Literal[False]:
        """The fixed text (see `_screen`) a file name must hold for a content decision of
        `server.tool` to be anything but "allowed"; False when every name needs the full decision."""
        screen = self._screens.get((server, tool))
        if screen is None:
            screen = self._screens[(server, tool)] = self._screen(server, f"{server}.{tool}")
        return screen

    def _screen(self, server: str, qualified: str) -> tuple[str, ...] | Literal[False]:
        """For content decisions of one tool: the text one of which a root-relative name must hold
        for any deny / ask rule on paths or any protection to name it; False when some rule could
        name any file (a pattern with no fixed text), so every name takes the full decision."""
        literals: list[str] = []
        for action in ("deny", "ask"):
            for rule in self._rules(action, server, qualified):  # type: ignore[arg-type]
                if not rule.path_only({ANY_PATH: PATH}):
                    continue
                best = max((_required_literal(p) for _, p in rule.arguments), key=len, default="")
                if not best:
                    return False
                literals.append(best)
        root = str(self.root)
        for guarded in self.protected:  # as `_protected_hit` joins a relative name to the root
            if root == guarded or root.startswith(guarded + os.sep):
                return False  # the root is inside a protected folder: every name is protected
            if guarded.startswith(root + os.sep):
                literals.append(guarded[len(root) + 1 :].replace(os.sep, "/"))
        return tuple(dict.fromkeys(literals))

    def _decide(
        self,
        server: str,
        tool: str,
        arguments: Mapping[str, Any],
        kinds: Mapping[str, Kind],
        paths: PathNames,
        annotations: dict[str, bool | None] | None,
        *,
        content: bool = False,
    ) -> Decision:
        qualified = f"{server}.{tool}"
        shadow = self.settings.mode == "shadow"
        if (hit := self._protected_hit(paths)) is not None:
            # Built-in protections hold in shadow mode too: they guard the record itself.
            return Decision(
                "deny",
                f"{hit!r} is inside onrecord's audit log, approvals or policy files, which no tool may read",
                rule="protect(audit, approvals, policy files)",
                source="built-in",
            )
        for action in ("deny", "ask") if content else ("deny", "ask", "allow"):
            for rule in self._rules(action, server, qualified):
                if content and not rule.path_only(kinds):
                    continue
                if rule.matches(arguments, kinds, paths, every=action == "allow"):
                    what = f"{qualified}'s output from that file" if content else qualified
                    return Decision(
                        action,
                        f"{what} matched {action} rule {rule.text!r} ({rule.scope} scope)",
                        rule=rule.text,
                        source=rule.source,
                        enforced=not shadow,
                    )
        if content:
            return Decision("allow", "no deny or ask rule names this file", rule=None, source=None)
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


_NAMED_BY_NOTHING = Decision("allow", "no deny or ask rule names this file", rule=None, source=None)


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
