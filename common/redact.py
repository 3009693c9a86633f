"""Secret and credential redaction for everything that reaches the audit log.

Two kinds of rule:
- by key name: a mapping key that names a secret (`password`, `api_key`, `Authorization`, ...) has
  its scalar value replaced whatever it looks like;
- by value shape: a string anywhere that looks like a private key block, a provider token, a JWT,
  a bearer header, a URL with credentials or a secret-looking assignment has that part replaced.

Each replacement reads `[REDACTED:<rule>]`, and `redact` returns which rule fired where, so the
record can say what was taken out without keeping it.

The text is matched through a view of the same length in which escapes (`\t`, `\n`, `\x1b`,
`\u001b`, ...) and URL-encoded separators (`%3D`, `%3A`, `%22`, ...) read as the separators they stand
for, so `\tghp_...` in a JSON preview or `password%3D...` in a URL is still a secret's shape. Every
shape runs on RE2: linear in the text's length whatever the text.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from typing import Any

from common.secret_rules import Rule, builtin

_SECRET_KEY = re.compile(
    r"(?:^|[_\-.])(?:pass(?:word|wd|phrase)?|pwd|secret|secrets|token|api[_\-]?key|apikey|auth|"
    r"authorization|cookie|set[_\-]cookie|credentials?|private[_\-]?key|access[_\-]?key|"
    r"secret[_\-]?key|client[_\-]?secret|session[_\-]?(?:id|key|token)|x[_\-]api[_\-]key)$",
    re.IGNORECASE,
)


@functools.cache
def _rules() -> tuple[list[Rule], Rule]:
    """The shared rule set (common.secret_rules), compiled on first use: the keyword-gated rules, and
    the entropy rule, which runs only where a long token follows `=` or `:`."""
    rules = builtin().rules
    return [r for r in rules if r.id != "high_entropy_assignment"], next(
        r for r in rules if r.id == "high_entropy_assignment"
    )


# Escapes and URL-encoded separators, each read as the separator it stands for; the replacement has
# the same length, so positions in the view are positions in the text.
_ESCAPE = re.compile(
    # a terminal colour or cursor sequence, raw or escaped: ESC [ params letter
    r"(?:\x1b|\\u001[bB]|\\x1[bB]|\\e)\[[0-9;?]{0,32}[A-Za-z]|"
    r"\\(?:u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|[0-7]{1,3}|[tnrbfvae\\/\"'])|%(?:3[dDaA]|2[0-7]|0[9aAdD]|5[cC])"
)
_DECODED = {"%3d": "=", "%3a": ":", "%22": '"', "%27": "'", '\\"': '"', "\\'": "'"}


def _view(text: str) -> str:
    if "\\" not in text and "%" not in text and "\x1b" not in text:
        return text
    # The common two-character escapes at C speed; the regex below handles what is left.
    for escape in ("\\n", "\\t", "\\r"):
        text = text.replace(escape, "  ")
    if "\\" not in text and "%" not in text and "\x1b" not in text:
        return text

    def plain(m: re.Match[str]) -> str:
        token = m.group(0)
        last = _DECODED.get(token.lower(), " ")
        return " " * (len(token) - 1) + last

    return _ESCAPE.sub(plain, text)


def _apply(rule: Rule, out: str, view: str, fired: list[str]) -> tuple[str, str]:
    pieces_out: list[str] = []
    pieces_view: list[str] = []
    last = 0
    for start, end in rule.secret_spans(view, out):
        replacement = f"[REDACTED:{rule.id}]"
        pieces_out += [out[last:start], replacement]
        pieces_view += [view[last:start], replacement]
        last = end
        fired.append(rule.id)
    if not pieces_out:
        return out, view
    return "".join([*pieces_out, out[last:]]), "".join([*pieces_view, view[last:]])


@functools.cache
def _all_gates() -> frozenset[str]:
    return frozenset(k for r in _rules()[0] for k in r.keywords)


@functools.cache
def _gate_set() -> tuple[Any, tuple[str, ...]]:
    """Every keyword gate in one RE2 set: which of them a text holds, overlapping ones included, in
    one linear pass (a substring test per keyword costs 37 passes: 60 us on a 900-character preview)."""
    import re2

    gates = tuple(sorted(_all_gates()))
    matcher = re2.Set.SearchSet()
    for gate in gates:
        matcher.Add(re.escape(gate))
    matcher.Compile()
    return matcher, gates


def _present_gates(lower: str) -> set[str]:
    matcher, gates = _gate_set()
    # Bytes, encoded here: the gates are ASCII, and a lone surrogate (which the wrapper's own
    # encoding refuses) is three bytes no gate holds.
    return {gates[i] for i in matcher.Match(lower.encode("utf-8", "surrogatepass")) or ()}


_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/_\-=.]{20}")
# The same test at C speed: token characters (all ASCII) read as `a`, every other byte as a space.
_TOKEN_BYTES = bytes(
    ord("a") if chr(b) in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-=." else ord(" ")
    for b in range(256)
)


def _has_long_token(text: str) -> bool:
    """Whether `text` has a run of 20 characters `_LONG_TOKEN` matches."""
    return b"a" * 20 in text.encode("utf-8", "surrogatepass").translate(_TOKEN_BYTES)


@dataclass(frozen=True)
class Redaction:
    """One replacement: which rule fired and where (a dotted path into the value)."""

    rule: str
    where: str

    def as_record(self) -> dict[str, str]:
        return {"rule": self.rule, "where": self.where}


def redact_text(text: str) -> tuple[str, list[str]]:
    """Replace secret-shaped parts of one string; return the new text and the rules that fired."""
    fired: list[str] = []
    if len(text) < 6:
        return text, fired
    view = _view(text)
    lower = view.lower()
    present = _present_gates(lower)
    gated, broad = _rules()
    out = text
    for rule in gated if present else ():
        if not present.isdisjoint(rule.keywords):
            out, view = _apply(rule, out, view, fired)
    if ("=" in view or ":" in view) and _has_long_token(view):
        out, view = _apply(broad, out, view, fired)
    return out, fired


# Where a path or URL divides: a secret-shaped piece is redacted up to the next of these, never past
# it, so what follows (the part that says which file or host) stays readable.
_PIECES = re.compile(r"([/?#&;])")
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*)@")


def redact_target(text: str) -> tuple[str, list[str]]:
    """Redact a path or URL piece by piece: a secret-shaped piece hides only itself, never the
    parts after it that decide what is read. URL credentials (`user:pass@`) are hidden whole."""
    out, fired = redact_text(text)
    if not fired:
        return out, fired
    fired = []
    prefix = ""
    if userinfo := _USERINFO.match(text):
        prefix = f"{userinfo.group(1)}[REDACTED:url_credentials]@"
        fired.append("url_credentials")
        text = text[userinfo.end() :]
    pieces = []
    for piece in _PIECES.split(text):
        shown, hit = redact_text(piece)
        pieces.append(shown)
        fired += hit
    return prefix + "".join(pieces), fired


def redact(value: Any, where: str = "", *, budget: int | None = None) -> tuple[Any, list[Redaction]]:
    """Return a redacted copy of a JSON-shaped value and every redaction made.

    With `budget`, only about that many characters are kept (for previews): strings are cut with
    a margin wider than any secret shape before redaction, and the walk stops once the budget is
    spent, so a preview of a large result costs no more than the preview.
    """
    found: list[Redaction] = []
    return _walk(value, where, found, [budget] if budget is not None else None), found


# Wider than any token-shaped secret; a private key block that starts in the preview is redacted to
# the end of the text whether or not its END line is in the window.
PREVIEW_MARGIN = 512


_KEY_NAMES: dict[str, bool] = {}  # whether a key names a secret, for the keys seen so far


def _secret_key(key: str) -> bool:
    named = _KEY_NAMES.get(key)
    if named is None:
        named = _SECRET_KEY.search(key) is not None
        if len(_KEY_NAMES) < 4096:
            _KEY_NAMES[key] = named
    return named


def _walk(value: Any, where: str, found: list[Redaction], budget: list[int] | None = None) -> Any:
    if budget is not None and budget[0] <= 0:
        return "…"
    if isinstance(value, str):
        if budget is not None:
            value = value[: budget[0] + PREVIEW_MARGIN]
            budget[0] -= len(value)
        new, fired = redact_text(value)
        found.extend(Redaction(rule, where) for rule in fired)
        return new
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and len(key) >= 6:
                # A secret can arrive as a key: {"ghp_...": 1} is as leaky as a value.
                shown, fired = redact_text(key)
                if fired:
                    found.extend(Redaction(rule, f"{where}.<key>" if where else "<key>") for rule in fired)
                    while shown in out:
                        shown += "'"
                    out[shown] = _walk(item, f"{where}.{shown}" if where else shown, found, budget)
                    continue
            if budget is None and type(item) is str and type(key) is str and not _secret_key(key):
                # The common case, a string under a plain name: its path is built only if a rule fires.
                new, fired = redact_text(item)
                if fired:
                    found.extend(Redaction(rule, f"{where}.{key}" if where else key) for rule in fired)
                out[key] = new
                continue
            child = f"{where}.{key}" if where else str(key)
            if (
                isinstance(key, str)
                and _secret_key(key)
                and isinstance(item, str | int | float)
                and not isinstance(item, bool)
                and item != ""
            ):
                found.append(Redaction(f"key:{key.lower()}", child))
                out[key] = "[REDACTED:key]"
            else:
                out[key] = _walk(item, child, found, budget)
            if budget is not None and budget[0] <= 0:
                break
        return out
    if isinstance(value, list | tuple):
        items = []
        for i, item in enumerate(value):
            items.append(_walk(item, f"{where}[{i}]", found, budget))
            if budget is not None and budget[0] <= 0:
                break
        return items
    return value


class RedactingFilter(logging.Filter):
    """Log output passes the same redaction as the audit log: hosts keep a server's stderr in
    their own logs, and the SDK logs a crashed tool's exception there, arguments and all."""

    def filter(self, record: logging.LogRecord) -> bool:
        message, _ = redact_text(record.getMessage())
        if record.exc_info:
            trace, _ = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_text, record.exc_info = trace, None
        elif record.exc_text:
            record.exc_text, _ = redact_text(record.exc_text)
        record.msg, record.args = message, None
        return True


def redact_logs() -> None:
    """Put a RedactingFilter on every handler of the root logger (once each)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
