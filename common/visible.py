"""Control characters made visible: a record is data, never terminal commands or markup (DESIGN §4).

One rule for every view: C0 controls, DEL, C1 controls (U+0080-U+009F, which some terminals obey
like ESC), bidirectional controls (which reorder what a reviewer reads) and line and paragraph
separators are shown as `\\xNN` or `\\u{NNNN}` escapes. Tabs and newlines are escaped too unless the
caller keeps them (a file's lines shown to a model keep both).
"""

from __future__ import annotations

import re

_BIDI_AND_SEPARATORS = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff"
_ALL = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI_AND_SEPARATORS}]")
_KEEP_LINES = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_BIDI_AND_SEPARATORS}]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{{{code:04x}}}"


def visible(text: str, *, keep_lines: bool = False) -> str:
    """`text` with every control character shown as an escape (tabs and newlines kept if asked)."""
    return (_KEEP_LINES if keep_lines else _ALL).sub(_escape, text)


def visible_lines(text: str) -> str:
    """`visible(text, keep_lines=True)`, for hot loops over a file's lines."""
    return _KEEP_LINES.sub(_escape, text)
