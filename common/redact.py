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
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import re2

_SECRET_KEY = re.compile(
    r"(?:^|[_\-.])(?:pass(?:word|wd|phrase)?|pwd|secret|secrets|token|api[_\-]?key|apikey|auth|"
    r"authorization|cookie|set[_\-]cookie|credentials?|private[_\-]?key|access[_\-]?key|"
    r"secret[_\-]?key|client[_\-]?secret|session[_\-]?(?:id|key|token)|x[_\-]api[_\-]key)$",
    re.IGNORECASE,
)

# (rule name, pattern). A group named `keep` is left in place; the rest of the match is replaced.
_SHAPES: list[tuple[str, str]] = [
    (
        "private_key_block",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
        r"|[\s\S]*)",
    ),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9]{2,12}-[A-Za-z0-9_\-]{20,}"),
    ("openai_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    ("aws_access_key_id", r"\b(?:AKIA|ASIA|ABIA|ACCA|AROA|AIDA)[0-9A-Z]{16}\b"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("gitlab_token", r"\bgl(?:pat|dt|rt|ptt|ft|soat|cbt|imt|agent)-[A-Za-z0-9_\-]{20,}"),
    ("slack_token", r"\bxox[abposre]-[A-Za-z0-9\-]{10,}"),
    ("slack_webhook", r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]{20,}"),
    ("stripe_key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}|\bwhsec_[A-Za-z0-9]{24,}"),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("huggingface_token", r"\bhf_[A-Za-z0-9]{30,}"),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36}"),
    ("pypi_token", r"\bpypi-AgE[A-Za-z0-9_\-]{40,}"),
    ("sendgrid_key", r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{20,}"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    (
        "authorization_header",
        r"(?i)(?P<keep>\b(?:proxy-)?authorization(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?)[^\"'\r\n\\]+",
    ),
    ("bearer_token", r"(?i)(?P<keep>\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=\-]{12,}"),
    ("cookie_header", r"(?i)(?P<keep>\b(?:set-)?cookie(?:\\?[\"'])?\s*:\s*(?:\\?[\"'])?)[^\"'\r\n\\]+"),
    ("url_credentials", r"(?i)(?P<keep>\b[a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@"),
    ("url_token", r"(?i)(?P<keep>\bhttps?://)[A-Za-z0-9_\-]{20,}@"),
    (
        "secret_assignment",
        # Starts at the secret word (a prefix such as DB_ is left in place), which must end the key,
        # so `max_tokens = 20000` is left alone; the value must not be a bare number.
        # (Values that are bare numbers or already redacted are left alone by the replacement.)
        r"(?i)(?P<keep>(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_\-]?key|"
        r"access[_\-]?key|private[_\-]?key|credentials?|auth[_\-]?key|auth|session[_\-]?(?:id|key|token))"
        r"(?:\\?[\"'])?\s*(?:=|:|=>)\s*(?:\\?[\"'])?)(?P<value>[^\s\"'`,;(){}<>\\]{4,})",
    ),
]
_HIGH_ENTROPY_ASSIGNMENT = (
    r"(?P<pre>[A-Za-z0-9_])(?P<keep>\s*[=:]\s*(?:\\?[\"'])?)(?P<value>[A-Za-z0-9+/_\-=.]{20,})"
)
_OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_PORT_PATH = re.compile(r"\d{1,5}(?:/|$)")  # `host:8080/v1/chat` is an address, not `host: secret`


# A cheap test per rule (a substring of the lower-cased text) decides whether its regex runs at all;
# one compiled alternation of every rule is far slower than this on ordinary text.
_GATES: dict[str, tuple[str, ...]] = {
    "private_key_block": ("private key",),
    "anthropic_key": ("sk-ant-",),
    "openai_key": ("sk-",),
    "aws_access_key_id": ("akia", "asia", "abia", "acca", "aroa", "aida"),
    "github_token": ("gh", "github_pat_"),
    "gitlab_token": ("gl",),
    "slack_token": ("xox",),
    "slack_webhook": ("hooks.slack.com",),
    "stripe_key": ("_live_", "_test_", "whsec_"),
    "google_api_key": ("aiza",),
    "huggingface_token": ("hf_",),
    "npm_token": ("npm_",),
    "pypi_token": ("pypi-",),
    "sendgrid_key": ("sg.",),
    "jwt": ("eyj",),
    "authorization_header": ("authorization",),
    "bearer_token": ("bearer", "basic", "token"),
    "cookie_header": ("cookie",),
    "url_credentials": ("://",),
    "url_token": ("://",),
    "secret_assignment": (
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "credential",
        "auth",
        "session",
        "authorization",
        "private key",
    ),
}


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@dataclass(frozen=True)
class _Shape:
    name: str
    gates: tuple[str, ...]
    pattern: Any  # a compiled RE2 expression
    start_group: int  # the replaced part starts where this group starts (0: the whole match)
    from_end: bool  # True: where the group ends instead (a `keep` prefix)
    check: Callable[[str], bool] | None = None  # False leaves a match in place


def _not_number_or_redacted(value: str) -> bool:
    return not value.isdigit() and not value.startswith("[REDACTED")


@functools.cache
def _rules() -> list[_Shape]:
    """The compiled shape rules, built on first use (start-up time)."""
    shapes = []
    for name, pattern in _SHAPES:
        compiled = re2.compile(pattern, _RE2_OPTIONS)
        groups = compiled.groupindex
        if "value" in groups:
            shape = _Shape(name, _GATES[name], compiled, groups["value"], False, _not_number_or_redacted)
        elif "keep" in groups:
            shape = _Shape(name, _GATES[name], compiled, groups["keep"], True)
        else:
            shape = _Shape(name, _GATES[name], compiled, 0, False)
        shapes.append(shape)
    return shapes


@functools.cache
def _entropy_rule() -> _Shape:
    compiled = re2.compile(_HIGH_ENTROPY_ASSIGNMENT, _RE2_OPTIONS)
    return _Shape("high_entropy_assignment", (), compiled, compiled.groupindex["value"], False, _looks_random)


def _looks_random(value: str) -> bool:
    classes = sum(any(test(c) for c in value) for test in (str.islower, str.isupper, str.isdigit))
    # Git object ids and digests are high-entropy by nature and are not secrets.
    # `scheme://host/path` is a URL, not `scheme: secret` (credentials in a URL have their own rule).
    return (
        not value.startswith("//")
        and not _PORT_PATH.match(value)
        and classes >= 2
        and _entropy(value) >= 3.5
        and "REDACTED" not in value
        and not _OBJECT_ID.fullmatch(value)
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


def _apply(shape: _Shape, out: str, view: str, fired: list[str]) -> tuple[str, str]:
    pieces_out: list[str] = []
    pieces_view: list[str] = []
    last = 0
    for m in shape.pattern.finditer(view):
        span = m.span(shape.start_group)
        start = span[1] if shape.from_end else span[0]
        if start < 0:
            start = m.start()
        end = m.end()
        if start < last or (shape.check is not None and not shape.check(out[start:end])):
            continue
        replacement = f"[REDACTED:{shape.name}]"
        pieces_out += [out[last:start], replacement]
        pieces_view += [view[last:start], replacement]
        last = end
        fired.append(shape.name)
    if not pieces_out:
        return out, view
    return "".join([*pieces_out, out[last:]]), "".join([*pieces_view, view[last:]])


_ALL_GATES = frozenset(g for gs in _GATES.values() for g in gs)
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/_\-=.]{20}")


@dataclass(frozen=True)
class Redaction:
    """One replacement: which rule fired and where (a dotted path into the value)."""

    rule: str
    where: str

    def as_record(self) -> dict[str, str]:
        return {"rule": self.rule, "where": self.where}


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def redact_text(text: str) -> tuple[str, list[str]]:
    """Replace secret-shaped parts of one string; return the new text and the rules that fired."""
    fired: list[str] = []
    if len(text) < 6:
        return text, fired
    view = _view(text)
    lower = view.lower()
    present = {g for g in _ALL_GATES if g in lower}  # substring tests are far cheaper than a regex scan
    out = text
    for shape in _rules() if present else ():
        if not present.isdisjoint(shape.gates):
            out, view = _apply(shape, out, view, fired)
    if ("=" in view or ":" in view) and _LONG_TOKEN.search(view):
        out, view = _apply(_entropy_rule(), out, view, fired)
    return out, fired


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
            child = f"{where}.{key}" if where else str(key)
            if (
                isinstance(key, str)
                and _SECRET_KEY.search(key)
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
