"""Secret and credential redaction for everything that reaches the audit log.

Two kinds of rule:
- by key name: a mapping key that names a secret (`password`, `api_key`, `Authorization`, ...) has
  its scalar value replaced whatever it looks like;
- by value shape: a string anywhere that looks like a private key block, a provider token, a JWT,
  a bearer header, a URL with credentials or a secret-looking assignment has that part replaced.

Each replacement reads `[REDACTED:<rule>]`, and `redact` returns which rule fired where, so the
record can say what was taken out without keeping it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

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
    ("authorization_header", r"(?i)(?P<keep>\b(?:proxy-)?authorization\s*[:=]\s*)[^\r\n]+"),
    ("bearer_token", r"(?i)(?P<keep>\b(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=\-]{12,}"),
    ("cookie_header", r"(?i)(?P<keep>\b(?:set-)?cookie\s*:\s*)[^\r\n]+"),
    ("url_credentials", r"(?i)(?P<keep>\b[a-z][a-z0-9+.\-]*://)[^/\s:@]+:[^/\s@]+@"),
    ("url_token", r"(?i)(?P<keep>\bhttps?://)[A-Za-z0-9_\-]{20,}@"),
    (
        "secret_assignment",
        # The key must end in a secret word (so `max_tokens = 20000` is left alone) and the value
        # must not be a bare number.
        r"(?i)(?P<keep>\b[A-Za-z0-9_.\-]*(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_\-]?key|"
        r"access[_\-]?key|private[_\-]?key|credentials?|auth[_\-]?key|auth)(?![A-Za-z0-9])[\"']?\s*(?:=|:|=>)\s*"
        r"[\"']?)(?!\[REDACTED)(?!\d+(?:[\s\"',;]|$))[^\s\"'`,;(){}<>]{4,}",
    ),
]
_HIGH_ENTROPY_ASSIGNMENT = re.compile(
    r"(?P<keep>\b[A-Za-z_][A-Za-z0-9_]*\s*[=:]\s*[\"']?)(?P<value>[A-Za-z0-9+/_\-=.]{20,})"
)


def _scoped(name: str, pattern: str) -> str:
    pattern = pattern.replace("?P<keep>", f"?P<{name}_k>")
    if pattern.startswith("(?i)"):
        pattern = f"(?i:{pattern[4:]})"
    return f"(?P<{name}>{pattern})"


_COMBINED = re.compile("|".join(_scoped(name, pattern) for name, pattern in _SHAPES))
_NAMES = [name for name, _ in _SHAPES]


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

    def shape(m: re.Match[str]) -> str:
        for name in _NAMES:
            if m.group(name) is not None:
                fired.append(name)
                keep = m.groupdict().get(f"{name}_k") or ""
                return f"{keep}[REDACTED:{name}]"
        return m.group(0)  # pragma: no cover - one alternative always matched

    out = _COMBINED.sub(shape, text)

    def entropy(m: re.Match[str]) -> str:
        value = m.group("value")
        has_classes = sum(bool(re.search(c, value)) for c in (r"[a-z]", r"[A-Z]", r"[0-9]")) >= 2
        if has_classes and _entropy(value) >= 3.5 and "REDACTED" not in value:
            fired.append("high_entropy_assignment")
            return f"{m.group('keep')}[REDACTED:high_entropy_assignment]"
        return m.group(0)

    if "=" in out or ":" in out:
        out = _HIGH_ENTROPY_ASSIGNMENT.sub(entropy, out)
    return out, fired


def redact(value: Any, where: str = "") -> tuple[Any, list[Redaction]]:
    """Return a redacted copy of a JSON-shaped value and every redaction made."""
    found: list[Redaction] = []
    return _walk(value, where, found), found


def _walk(value: Any, where: str, found: list[Redaction]) -> Any:
    if isinstance(value, str):
        new, fired = redact_text(value)
        found.extend(Redaction(rule, where) for rule in fired)
        return new
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
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
                out[key] = _walk(item, child, found)
        return out
    if isinstance(value, list | tuple):
        return [_walk(item, f"{where}[{i}]", found) for i, item in enumerate(value)]
    return value
