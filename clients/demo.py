"""`onrecord demo`: a scripted agent session against a sample project, then its audit trail.

It builds a small git repository (a Python package with tests and a few commits) in a temporary
directory, starts `onrecord serve repo` over stdio as a host would, makes a series of calls (one
denied by the demo policy, one that needs a human's approval, which the scripted client grants
through elicitation), then prints the session's audit records and verifies the chain.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

SAMPLE_FILES: dict[str, str] = {
    "README.md": """\
        # acme-invoices

        Invoice totals for the Acme billing service.

        Run the tests with `pytest`.
        """,
    "pyproject.toml": """\
        [project]
        name = "acme-invoices"
        version = "0.3.0"
        requires-python = ">=3.11"

        [tool.pytest.ini_options]
        testpaths = ["tests"]
        """,
    "invoices/__init__.py": '''\
        """Invoices and their totals."""

        from invoices.models import Invoice, Line
        from invoices.totals import total, total_with_tax

        __all__ = ["Invoice", "Line", "total", "total_with_tax"]
        ''',
    "invoices/models.py": '''\
        """Invoice records."""

        from dataclasses import dataclass, field


        @dataclass(frozen=True)
        class Line:
            """One billed item."""

            description: str
            quantity: int
            unit_cents: int


        @dataclass
        class Invoice:
            """An invoice: a customer and its lines."""

            customer: str
            lines: list[Line] = field(default_factory=list)
        ''',
    "invoices/totals.py": '''\
        """Totals in cents; tax rates in basis points."""

        from invoices.models import Invoice


        def total(invoice: Invoice) -> int:
            """Sum of quantity times unit price over all lines."""
            return sum(line.quantity * line.unit_cents for line in invoice.lines)


        def total_with_tax(invoice: Invoice, rate_bp: int) -> int:
            """Total plus tax, rounded half up to the cent."""
            subtotal = total(invoice)
            return subtotal + (subtotal * rate_bp + 5000) // 10000
        ''',
    "tests/test_totals.py": """\
        from invoices import Invoice, Line, total, total_with_tax


        def test_total_sums_lines():
            inv = Invoice("acme", [Line("widget", 2, 250), Line("gear", 1, 1000)])
            assert total(inv) == 1500


        def test_tax_rounds_half_up():
            inv = Invoice("acme", [Line("widget", 1, 999)])
            assert total_with_tax(inv, 2000) == 1199
        """,
    "deploy/prod.toml": """\
        [service]
        replicas = 3
        region = "eu-west-1"
        """,
    ".env": """\
        STRIPE_API_KEY=sk_live_51Hdemo0nlyN0tRealKey00000000
        DATABASE_URL=postgres://billing:hunter2@db.internal:5432/billing
        """,
    ".gitignore": ".env\n__pycache__/\n",
}

COMMITS = [
    (
        "Add invoice models",
        ["README.md", "pyproject.toml", ".gitignore", "invoices/__init__.py", "invoices/models.py"],
    ),
    ("Add totals with tax", ["invoices/totals.py", "tests/test_totals.py"]),
    ("Add production deploy config", ["deploy/prod.toml"]),
]

DEMO_POLICY = """\
# The demo's policy: secrets are off limits, production config needs a human's yes.
[policy]
mode = "enforce"
deny = ["repo.*(path=**/.env*)"]
ask = ["repo.read_file(path=deploy/**)"]
allow = ["repo.*"]
"""

SCRIPT: list[tuple[str, str, dict[str, Any], str]] = [
    ("repo", "overview", {}, "get the lie of the land"),
    ("repo", "list_files", {"pattern": "**/*.py"}, "find the Python files"),
    ("repo", "search", {"query": "def total", "context_lines": 1}, "find where totals are computed"),
    ("repo", "outline", {"path": "invoices/totals.py"}, "see the module's symbols"),
    (
        "repo",
        "read_file",
        {"path": "invoices/totals.py", "start_line": 9, "end_line": 14},
        "read the tax code",
    ),
    ("repo", "git_log", {"path": "invoices/totals.py", "limit": 5}, "who changed it, and why"),
    ("repo", "read_file", {"path": ".env"}, "try to read the secrets file"),
    ("repo", "read_file", {"path": "deploy/prod.toml"}, "read production config (needs approval)"),
    ("repo", "related_files", {"path": "invoices/totals.py"}, "what else to look at"),
    ("testing", "run_affected_tests", {"base": "HEAD~2"}, "run the tests the last two commits can break"),
    ("testing", "run_tests", {}, "run the whole suite"),
]


def make_sample_project(root: Path) -> None:
    """A git repository with a Python package, tests and a few commits."""
    for name, text in SAMPLE_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada Example",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada Example",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    for message, files in COMMITS:
        git("add", "--", *files)
        git("commit", "-q", "-m", message)


def _summary(result: Any) -> str:
    if result.is_error:
        return " ".join(getattr(b, "text", "") for b in result.content)
    data = result.structured_content or {}
    if "status" in data and "counts" in data:
        c = data["counts"]
        return f"{data['status']}: {c['passed']} passed, {c['failed']} failed, {c['errors']} errors"
    if "selected" in data:
        picked = ", ".join(f"{x['path']} ({'; '.join(x['reasons'])})" for x in data["selected"])
        run = data.get("run") or {}
        return f"selected {picked}; run {run.get('status')}"
    if "query" in data:
        return f"{data['total']} matches in {len(data['files'])} file(s)"
    for key in ("entries", "symbols", "commits", "related"):
        if key in data:
            return f"{len(data[key])} {key}" + (f" (of {data['total']})" if data.get("total") else "")
    if "content" in data:
        return f"lines {data.get('start_line')}-{data.get('end_line')} of {data.get('total_lines')}"
    if "languages" in data:
        return f"branch {data.get('branch')}, {data.get('files_tracked')} files, languages {list(data['languages'])}"
    from clients.review import clip

    return clip(json.dumps(data), 100)


async def run_demo(keep: bool = False) -> int:
    from mcp import Client
    from mcp.types import ElicitResult

    from clients import review
    from clients.stdio import server_params
    from common.audit import verify_dir

    base = Path(tempfile.mkdtemp(prefix="onrecord-demo-"))
    project, state = base / "acme-invoices", base / "state"
    project.mkdir()
    make_sample_project(project)
    policy = base / "demo-policy.toml"
    policy.write_text(DEMO_POLICY, encoding="utf-8")
    print(f"Sample project: {project} (git repo, 3 commits)")
    print(f"Policy:         {policy}\n{textwrap.indent(DEMO_POLICY, '    ')}")

    async def human(context: Any, params: Any) -> ElicitResult:
        print(f"    [host asks the human] {params.message}")
        print("    [human] approves")
        return ElicitResult(action="accept", content={"approve": True})

    env = {"ONRECORD_STATE_DIR": str(state), "XDG_CONFIG_HOME": str(base / "config")}
    print("Starting `onrecord serve repo` and `onrecord serve testing` over stdio, as a host would ...\n")
    try:
        async with AsyncExitStack() as stack:
            clients = {
                name: await stack.enter_async_context(
                    Client(
                        server_params(name, project, policy=policy, env=env),
                        mode="legacy",
                        elicitation_callback=human,
                    )
                )
                for name in ("repo", "testing")
            }
            for server, tool, arguments, why in SCRIPT:
                print(f"agent → {server}.{tool} {json.dumps(arguments)}   # {why}")
                result = await clients[server].call_tool(tool, arguments)
                mark = "DENIED/ERROR" if result.is_error else "ok"
                print(f"    {mark}: {_summary(result)}")
        reports = verify_dir(state / "audit")
        print("\nAudit trail of this session:")
        for report in reports:
            print(f"\n{report.records[0].get('server')} server:")
            print(review.render_timeline(report.records))
        print("\n" + review.render_verify(reports))
        secrets_found = any(
            s in path.read_text(encoding="utf-8")
            for path in (state / "audit").rglob("*.jsonl")
            for s in ("sk_live_51Hdemo", "hunter2")
        )
        print("Secrets in the audit log: " + ("FOUND (bug!)" if secrets_found else "none"))
        ok = all(r.ok for r in reports) and not secrets_found
        return 0 if ok else 1
    finally:
        if keep:
            print(f"\nKept: {base}  (audit log under {state / 'audit'})")
        else:
            shutil.rmtree(base, ignore_errors=True)
