"""The secret rule set, as data: `common/data/secret_rules.toml` in gitleaks' rule-file format.

The audit log's redaction (common.redact) and the repository scan (deploy's scan_secrets) compile the
same rules, so what the scan calls a secret is what the audit log never keeps. A project may add
rules and allowlist entries in a file of the same format; a file that does not parse, or a regex RE2
cannot compile, is a ConfigError that names the file and the rule.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import re2

from common import offload
from common.errors import OnrecordError

BUILTIN = "common/data/secret_rules.toml"

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
MAX_RULES = 500
# Where a rule that can match the empty string does so: every zero-width assertion RE2 has (^ $ \A
# \z \b \B) holds somewhere in this text, so a nullable pattern matches empty in it somewhere.
_EMPTY_PROBES = ("", "aa  \n0_Z.=:\"'\t")
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_PORT_PATH = re.compile(r"\d{1,5}(?:/|$)")  # `host:8080/v1/chat` is an address, not `host: secret`


class RuleError(OnrecordError):
    """A rule file that does not parse or a rule RE2 cannot compile."""


@dataclass(frozen=True)
class Rule:
    """One compiled rule. The replaced (secret) part of a match starts at group `start_group` (its end
    when `from_end`: a `keep` prefix), and `check` may refuse a match (False leaves it in place)."""

    id: str
    description: str
    keywords: tuple[str, ...]
    pattern: Any  # a compiled RE2 expression
    start_group: int
    from_end: bool
    check: Callable[[str], bool] | None = None
    scan: bool = True  # False: for redaction only (too broad to report as a finding)

    def secret_spans(self, text: str, original: str | None = None) -> Iterator[tuple[int, int]]:
        """(start, end) of every secret this rule finds in `text`, left to right, not overlapping,
        found as they are taken: a caller that stops early (a cap, a cancelled call) stops the
        matching too. With `original` (a text of the same length that `text` is a decoded view of),
        the checks read the original's characters."""
        last = 0
        checked = text if original is None else original
        for count, m in enumerate(self.pattern.finditer(text), 1):
            if count % 4096 == 0:
                offload.checkpoint()  # a rule matching all over a large file, its checks refusing each
            group_start, group_end = m.span(self.start_group)
            start = group_end if self.from_end else group_start
            if start < 0:
                start = m.start()
            # A `value` group is the secret itself: what follows it in the match (a closing quote)
            # stays in place.
            end = group_end if self.start_group and not self.from_end and group_end >= 0 else m.end()
            if (
                start < last
                or end <= start
                or (self.check is not None and not self.check(checked[start:end]))
            ):
                continue
            yield start, end
            last = end


@dataclass(frozen=True)
class Allowlist:
    """Secrets that are not: stopwords (substrings, case-insensitive), regexes over the secret, and
    path regexes (files never scanned)."""

    stopwords: tuple[str, ...] = ()
    regexes: tuple[Any, ...] = ()
    paths: tuple[Any, ...] = ()

    def allows_secret(self, secret: str) -> bool:
        lower = secret.lower()
        return any(w in lower for w in self.stopwords) or any(r.search(secret) for r in self.regexes)

    def allows_path(self, path: str) -> bool:
        return any(r.search(path) for r in self.paths)

    def merged(self, other: Allowlist) -> Allowlist:
        return Allowlist(
            self.stopwords + other.stopwords, self.regexes + other.regexes, self.paths + other.paths
        )


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    allowlist: Allowlist = field(default_factory=Allowlist)
    # Ids of rules from a file the project (not its humans) named: they never scan a file the
    # caller may not read, where whether they match would tell what the file holds.
    untrusted: frozenset[str] = frozenset()

    @functools.cached_property
    def trusted(self) -> RuleSet:
        """These rules without the untrusted ones."""
        if not self.untrusted:
            return self
        return RuleSet(tuple(r for r in self.rules if r.id not in self.untrusted), self.allowlist)

    @functools.cached_property
    def keywords(self) -> frozenset[str]:
        """Every rule's keywords: a text holding none of them needs no keyword-gated rule."""
        return frozenset(k for r in self.rules for k in r.keywords)

    def merged(self, other: RuleSet) -> RuleSet:
        """These rules and `other`'s (a rule with the same id is replaced), both allowlists."""
        ids = {r.id for r in other.rules}
        return RuleSet(
            tuple(r for r in self.rules if r.id not in ids) + other.rules,
            self.allowlist.merged(other.allowlist),
            (self.untrusted - ids) | other.untrusted,
        )


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_random(value: str, threshold: float = 3.5) -> bool:
    """Mixed character classes and high entropy; not a git object id, digest, URL or host:port/path."""
    classes = sum(any(test(c) for c in value) for test in (str.islower, str.isupper, str.isdigit))
    return (
        not value.startswith("//")
        and not _PORT_PATH.match(value)
        and classes >= 2
        and entropy(value) >= threshold
        and "REDACTED" not in value
        and not _OBJECT_ID.fullmatch(value)
    )


def _not_number_or_redacted(value: str) -> bool:
    return not value.isdigit() and not value.startswith("[REDACTED")


def _compile(pattern: str, where: str) -> Any:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        raise RuleError(f"{where}: regex {pattern!r} does not compile (RE2 syntax): {exc}") from exc


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _matches_empty(pattern: Any) -> bool:
    """Whether a compiled rule can match the empty string: such a rule matches at every position of
    every file, millions of times per megabyte, and never finds a secret."""
    return any(m.end() == m.start() for probe in _EMPTY_PROBES for m in pattern.finditer(probe))


def _secret_group(raw: dict[str, Any], groups: int, where: str) -> int:
    group = raw.get("secretGroup", 0)
    if isinstance(group, bool) or not isinstance(group, int) or not 0 <= group <= groups:
        raise RuleError(
            f"{where}: `secretGroup` must be a group number from 0 to {groups} (the regex has {groups} "
            f"group(s)), got {group!r}"
        )
    return group


def parse(text: str, source: str) -> RuleSet:
    """A rule file's text (gitleaks format, with onrecord's additions) as a RuleSet."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{source}: not valid TOML: {exc}") from exc
    except RecursionError as exc:
        raise RuleError(f"{source}: not valid TOML: it nests too deeply") from exc
    except ValueError as exc:  # an integer of thousands of digits
        raise RuleError(f"{source}: not valid TOML: {str(exc)[:200]}") from exc
    listed = data.get("rules", [])
    if not isinstance(listed, list):
        raise RuleError(f"{source}: `rules` must be an array of tables ([[rules]])")
    if len(listed) > MAX_RULES:
        raise RuleError(f"{source}: {len(listed)} rules; a rule file may hold at most {MAX_RULES}")
    rules: list[Rule] = []
    for i, raw in enumerate(listed):
        where = f"{source}: rules[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
            raise RuleError(f"{where}: every rule needs an `id`")
        where = f"{source}: rule {raw['id']!r}"
        if not isinstance(raw.get("regex"), str) or not raw["regex"]:
            raise RuleError(f"{where}: needs a `regex`")
        compiled = _compile(raw["regex"], where)
        if _matches_empty(compiled):
            raise RuleError(
                f"{where}: regex {raw['regex']!r} matches the empty string; make every part of it "
                "match at least one character (`x+`, not `x*`)"
            )
        groups = compiled.groupindex
        threshold = raw.get("entropy")
        if threshold is not None and not isinstance(threshold, int | float):
            raise RuleError(f"{where}: `entropy` must be a number")
        keywords = tuple(k.lower() for k in _strings(raw.get("keywords", []), f"{where} keywords"))
        check: Callable[[str], bool] | None = None
        if threshold is not None:
            check = functools.partial(looks_random, threshold=float(threshold))
        if "value" in groups:
            start, from_end = groups["value"], False
            check = check or _not_number_or_redacted
        elif "keep" in groups:
            start, from_end = groups["keep"], True
        else:
            start, from_end = _secret_group(raw, compiled.groups, where), False
        rules.append(
            Rule(
                raw["id"],
                str(raw.get("description", "")),
                keywords,
                compiled,
                start,
                from_end,
                check,
                scan=bool(raw.get("scan", True)),
            )
        )
    allow = data.get("allowlist", {})
    if not isinstance(allow, dict):
        raise RuleError(f"{source}: [allowlist] must be a table")
    allowlist = Allowlist(
        tuple(w.lower() for w in _strings(allow.get("stopwords", []), f"{source}: allowlist.stopwords")),
        tuple(
            _compile(r, f"{source}: allowlist.regexes") for r in _strings(allow.get("regexes", []), source)
        ),
        tuple(_compile(r, f"{source}: allowlist.paths") for r in _strings(allow.get("paths", []), source)),
    )
    return RuleSet(tuple(rules), allowlist)


@functools.cache
def builtin() -> RuleSet:
    """The rules shipped with onrecord (read once, on first use)."""
    text = resources.files("common").joinpath("data/secret_rules.toml").read_text(encoding="utf-8")
    return parse(text, BUILTIN)
