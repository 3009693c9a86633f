"""Symbols: exact for Python (ast), top-level definitions by pattern for other languages."""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import Field

from common import content, kinds, offload
from common.budget import clamp, join_notes, take_within
from common.errors import OnrecordError
from servers.repo.context import RepoContext, decode, is_binary
from servers.repo.files import refuse_git_internals
from servers.repo.models import OutlineResult, Reference, Symbol, SymbolResult
from servers.repo.params import FilePath
from servers.repo.search import Hit, grep_lines

MAX_SYMBOL_FILE = 4 * 1024 * 1024
MAX_SYMBOLS = 2000

LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".cs": "csharp",
    ".rb": "ruby",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".php": "php",
    ".swift": "swift",
    ".scala": "scala",
    ".sh": "shell",
}

_PATTERNS: dict[str, list[tuple[str, re.Pattern[str]]]] = {
    "javascript": [
        ("class", re.compile(r"^(?:export\s+)?(?:default\s+)?class\s+([A-Za-z_$][\w$]*)")),
        (
            "function",
            re.compile(r"^(?:export\s+)?(?:default\s+)?(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)"),
        ),
        ("variable", re.compile(r"^(?:export\s+)?(?:const|let|var)\s+([A-Za-z_$][\w$]*)\s*=")),
    ],
    "go": [
        ("function", re.compile(r"^func\s+(?:\([^)]*\)\s*)?([A-Za-z_]\w*)")),
        ("type", re.compile(r"^type\s+([A-Za-z_]\w*)")),
    ],
    "rust": [
        (
            "function",
            re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+([A-Za-z_]\w*)"),
        ),
        ("type", re.compile(r"^(?:pub(?:\([^)]*\))?\s+)?(?:struct|enum|trait|type|union)\s+([A-Za-z_]\w*)")),
        ("impl", re.compile(r"^impl(?:<[^>]*>)?\s+(?:[\w:<>]+\s+for\s+)?([A-Za-z_][\w:]*)")),
        ("module", re.compile(r"^(?:pub\s+)?mod\s+([A-Za-z_]\w*)")),
    ],
    "java": [
        (
            "class",
            re.compile(
                r"^\s*(?:(?:public|private|protected|abstract|final|static|sealed)\s+)*(?:class|interface|enum|record)\s+([A-Za-z_]\w*)"
            ),
        ),
    ],
    "ruby": [
        ("class", re.compile(r"^\s*(?:class|module)\s+([A-Z][\w:]*)")),
        ("function", re.compile(r"^\s*def\s+(?:self\.)?([A-Za-z_]\w*[?!=]?)")),
    ],
    "c": [
        ("function", re.compile(r"^(?!\s)(?:[\w\*\s]+?)\b([A-Za-z_]\w*)\s*\([^;]*$")),
        ("type", re.compile(r"^(?:typedef\s+)?(?:struct|enum|union)\s+([A-Za-z_]\w*)")),
    ],
    "php": [
        ("class", re.compile(r"^\s*(?:abstract\s+|final\s+)?(?:class|interface|trait)\s+([A-Za-z_]\w*)")),
        (
            "function",
            re.compile(r"^\s*(?:public\s+|private\s+|protected\s+|static\s+)*function\s+([A-Za-z_]\w*)"),
        ),
    ],
    "shell": [("function", re.compile(r"^(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)\s*\{?"))],
}
_PATTERNS["python"] = [
    ("class", re.compile(r"^class\s+([A-Za-z_]\w*)")),
    ("function", re.compile(r"^(?:async\s+)?def\s+([A-Za-z_]\w*)")),
]
_PATTERNS["typescript"] = [
    *_PATTERNS["javascript"],
    ("type", re.compile(r"^(?:export\s+)?(?:declare\s+)?(?:interface|type|enum)\s+([A-Za-z_$][\w$]*)")),
]
_PATTERNS["kotlin"] = [
    ("class", re.compile(r"^\s*(?:\w+\s+)*(?:class|interface|object)\s+([A-Za-z_]\w*)")),
    ("function", re.compile(r"^\s*(?:\w+\s+)*fun\s+(?:<[^>]*>\s*)?([A-Za-z_]\w*)")),
]
_PATTERNS["csharp"] = _PATTERNS["java"]
_PATTERNS["cpp"] = _PATTERNS["c"] + [("class", re.compile(r"^(?:class|struct|namespace)\s+([A-Za-z_]\w*)"))]
_PATTERNS["swift"] = [
    ("type", re.compile(r"^\s*(?:\w+\s+)*(?:class|struct|enum|protocol|extension)\s+([A-Za-z_]\w*)")),
    ("function", re.compile(r"^\s*(?:\w+\s+)*func\s+([A-Za-z_]\w*)")),
]
_PATTERNS["scala"] = [
    ("class", re.compile(r"^\s*(?:\w+\s+)*(?:class|object|trait)\s+([A-Za-z_]\w*)")),
    ("function", re.compile(r"^\s*(?:\w+\s+)*def\s+([A-Za-z_]\w*)")),
]


def language_of(path: str) -> str | None:
    return LANGUAGES.get(PurePosixPath(path).suffix.lower())


def python_symbols(source: str, path: str | None = None) -> list[Symbol]:
    """Every class, function and method, with qualified names, ranges, signatures and docstrings."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    lines = source.splitlines()
    out: list[Symbol] = []

    def visit(node: ast.AST, prefix: str, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                qualified = f"{prefix}{child.name}"
                kind = "class" if isinstance(child, ast.ClassDef) else "method" if in_class else "function"
                header = lines[child.lineno - 1].strip() if child.lineno - 1 < len(lines) else ""
                doc = ast.get_docstring(child, clean=True)
                out.append(
                    Symbol(
                        kind=kind,
                        name=child.name,
                        qualified_name=qualified,
                        start_line=min([d.lineno for d in child.decorator_list] + [child.lineno]),
                        end_line=child.end_lineno or child.lineno,
                        signature=header[:300],
                        doc=doc.splitlines()[0][:300] if doc else None,
                        path=path,
                    )
                )
                visit(child, qualified + ".", isinstance(child, ast.ClassDef))
            elif isinstance(child, ast.Assign | ast.AnnAssign) and not prefix:
                targets = child.targets if isinstance(child, ast.Assign) else [child.target]
                for t in targets:
                    if isinstance(t, ast.Name) and (t.id.isupper() or t.id[:1].isupper()):
                        out.append(
                            Symbol(
                                kind="variable",
                                name=t.id,
                                qualified_name=t.id,
                                start_line=child.lineno,
                                end_line=child.end_lineno or child.lineno,
                                signature=lines[child.lineno - 1].strip()[:300],
                                path=path,
                            )
                        )
            elif isinstance(child, ast.If | ast.Try | ast.With):
                visit(child, prefix, in_class)

    visit(tree, "", False)
    return out


def pattern_symbols(source: str, language: str, path: str | None = None) -> list[Symbol]:
    out: list[Symbol] = []
    for number, line in enumerate(source.splitlines(), start=1):
        for kind, pattern in _PATTERNS.get(language, []):
            m = pattern.match(line)
            if m:
                out.append(
                    Symbol(
                        kind=kind,
                        name=m.group(1),
                        qualified_name=m.group(1),
                        start_line=number,
                        end_line=number,
                        signature=line.strip()[:300],
                        path=path,
                    )
                )
                break
    return out


def symbols_of(source: str, path: str) -> tuple[list[Symbol], str | None, bool]:
    language = language_of(path)
    if language == "python":
        return python_symbols(source, path), language, True
    if language is None:
        return [], None, False
    return pattern_symbols(source, language, path), language, False


def _find(
    ctx: RepoContext, hits: list[Hit], name: str, kind: str | None, include_references: bool
) -> tuple[list[Symbol], list[Reference]]:
    candidates = sorted({p for p, _, _ in hits if language_of(p) and content.allows(p)})
    definitions: list[Symbol] = []
    def_lines: set[tuple[str, int]] = set()
    for path in candidates:
        offload.checkpoint()
        try:
            read = _read_source(ctx, path)
        except (OnrecordError, OSError):
            continue
        if read is None:
            continue
        symbols, _, _ = symbols_of(*read)
        for s in symbols:
            if (s.qualified_name == name or s.name == name or s.qualified_name.endswith("." + name)) and (
                kind is None or s.kind == kind
            ):
                definitions.append(s)
                def_lines.add((path, s.start_line))
                def_lines.update((path, n) for n in range(s.start_line, s.start_line + 3))
    definitions.sort(key=lambda s: (s.path or "", s.start_line))
    references: list[Reference] = []
    if include_references:
        for path, line, raw in hits:
            if (path, line) in def_lines or not content.allows(path):
                continue
            references.append(Reference(path=path, line=line, text=decode(raw)[0].strip()[:300]))
    return definitions, references


def _read_source(ctx: RepoContext, path: str) -> tuple[str, str] | None:
    data, _, resolved = ctx.workspace.read_bytes(path, MAX_SYMBOL_FILE)
    if is_binary(data):
        return None
    return decode(data)[0], resolved.relative


async def outline(ctx: RepoContext, path: FilePath) -> OutlineResult:
    """The symbols of one file: kind, qualified name, line range, signature, first docstring line.
    Exact for Python; top-level definitions for other common languages."""
    resolved = ctx.workspace.resolve(path)
    refuse_git_internals(resolved.relative)
    read = _read_source(ctx, path)
    if read is None:
        return OutlineResult(
            path=resolved.relative, language=None, exact=False, symbols=[], note="binary file"
        )
    source, relative = read
    symbols, language, exact = symbols_of(source, relative)
    broken = None
    if language == "python":
        try:
            ast.parse(source)
        except (SyntaxError, ValueError) as exc:
            # No parser result: fall back to top-level patterns, and say the outline is not exact.
            line = getattr(exc, "lineno", None)
            broken = f"the file does not parse as Python ({getattr(exc, 'msg', exc)}" + (
                f" at line {line})" if line else ")"
            )
            symbols, exact = pattern_symbols(source, "python", relative), False
    for s in symbols:
        s.path = None  # the path is given once, above
    total = len(symbols)
    kept: list[Symbol] = []
    used = 0
    for s in symbols[:MAX_SYMBOLS]:
        size = len(s.model_dump_json()) + 1
        if used + size > ctx.max_chars:
            break
        kept.append(s)
        used += size
    return OutlineResult(
        path=relative,
        language=language,
        exact=exact,
        symbols=kept,
        total=total,
        returned=len(kept),
        truncated=len(kept) < total,
        note=join_notes(
            broken and f"{broken}; symbols found by pattern, top level only",
            len(kept) < total
            and f"{total - len(kept)} symbols left out to stay in budget; use read_file with line ranges",
        )
        if language
        else "no outline for this file type",
    )


async def find_symbol(
    ctx: RepoContext,
    name: Annotated[str, Field(description="Symbol name, e.g. 'load_config' or 'Config.load'"), kinds.TEXT],
    kind: Annotated[
        str | None, Field(description="Only this kind: class, function, method, variable, type, ...")
    ] = None,
    include_references: Annotated[bool, Field(description="Also list lines that mention the name")] = False,
    limit: Annotated[int, Field(ge=1, le=500, description="Results to return")] = 50,
) -> SymbolResult:
    """Find where a symbol is defined across the repository, and optionally where it is used."""
    limit = clamp(limit, 1, 500, 50)
    bare = name.rsplit(".", 1)[-1]
    if not re.fullmatch(r"[A-Za-z_$][\w$]*[?!]?", bare):
        raise OnrecordError(f"name {name!r} is not an identifier; pass e.g. 'parse_config' or 'Config.load'")
    hits, _ = await grep_lines(ctx, bare, regex=False, case_sensitive=True, word=True)
    # Parsing every candidate file is the CPU-heavy part: off the event loop, stoppable per file.
    definitions, references = await offload.run(_find, ctx, hits, name, kind, include_references)
    total = len(definitions) + len(references)
    shown_defs = take_within(definitions[:limit], ctx.max_chars)
    used = sum(len(d.model_dump_json()) + 1 for d in shown_defs)
    shown_refs = take_within(references[: max(0, limit - len(shown_defs))], max(0, ctx.max_chars - used))
    if len(shown_defs) < len(definitions[:limit]):
        shown_refs = []
    more = len(shown_defs) + len(shown_refs) < total
    return SymbolResult(
        name=name,
        definitions=shown_defs,
        references=shown_refs,
        total=total,
        returned=len(shown_defs) + len(shown_refs),
        truncated=more,
        note=f"{total - len(shown_defs) - len(shown_refs)} more; raise limit (max 500) or narrow with kind"
        if more
        else None,
    )
