"""What clients read of every tool: strict, lean, bounded schemas that every real result satisfies."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import Client
from mcp.types import Tool

from common.budget import Envelope
from common.schema import ENVELOPE, size
from servers import SERVERS, build
from tests.helpers import make_repo, ok, settings_for, write

pytestmark = pytest.mark.anyio

# tools/list of each server in characters of compact JSON (bench/tools_list.py): before the lean
# schemas, and the bound now, the figure measured then plus about 10%, never above half of before.
# deploy was built on the lean schemas, so it has no "before".
BEFORE = {"repo": 41_679, "testing": 31_118, "data": 29_523, "evals": 34_059}
MEASURED = {"repo": 16_216, "testing": 12_707, "data": 13_735, "evals": 16_901, "deploy": 10_080}
BOUND = {name: min(int(MEASURED[name] * 1.1), BEFORE.get(name, 10**9) // 2) for name in SERVERS}

# Numbers that are the caller's data rather than knobs of the tool: a rule's value range, a gate's
# floor or ceiling on a metric, the metric values themselves. Every other number is bounded.
DATA_VALUES = {
    ("check_dataset", "checks[].min"),
    ("check_dataset", "checks[].max"),
    ("check_dataset", "checks[].values[]"),
    ("check_gates", "gates{}.min"),
    ("check_gates", "gates{}.max"),
    ("check_gates", "gates{}.max_drop"),
    ("record_run", "metrics{}"),
}


def numbers(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, schema) of every numeric value an input schema accepts, at any depth."""
    if not isinstance(node, dict):
        return
    declared = node.get("type")
    types = set(declared) if isinstance(declared, list) else {declared}
    if {"integer", "number"} & types:
        yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from numbers(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from numbers(node["items"], path + "[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from numbers(node["additionalProperties"], path + "{}")
    for key in ("anyOf", "oneOf", "allOf"):
        for child in node.get(key) or ():
            yield from numbers(child, path)


def descriptions(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("description"), str):
            yield node["description"]
        for key, value in node.items():
            if key not in ("default", "enum", "const", "examples"):
                yield from descriptions(value)
    elif isinstance(node, list):
        for value in node:
            yield from descriptions(value)


async def tools_of(name: str, root: Path, tmp_path: Path) -> list[Tool]:
    async with Client(build(name, settings_for(root, tmp=tmp_path))) as client:
        return (await client.list_tools()).tools


async def test_every_tool_refuses_unknown_arguments_and_reads_cleanly(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"README.md": "x\n"})
    tools = await tools_of("all", root, tmp_path)
    # `all` serves every server's tools, each once: as many as the servers serve on their own.
    alone = [await tools_of(name, root, tmp_path) for name in SERVERS]
    assert len(tools) == sum(len(t) for t in alone) == len({t.name for t in tools}) >= 32
    for tool in tools:
        assert tool.input_schema.get("additionalProperties") is False, tool.name
        assert tool.description, tool.name
        for text in [tool.description, *descriptions(tool.input_schema), *descriptions(tool.output_schema)]:
            assert not any(line.startswith((" ", "\t")) for line in text.splitlines()), (tool.name, text)


async def test_every_numeric_argument_states_its_bounds(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"README.md": "x\n"})
    for tool in await tools_of("all", root, tmp_path):
        for path, node in numbers(tool.input_schema):
            if (tool.name, path) in DATA_VALUES:
                continue
            assert "minimum" in node or "exclusiveMinimum" in node, (tool.name, path)
            assert "maximum" in node, (tool.name, path)
            # Prose limits would drift from the schema's; the schema says them.
            assert not re.search(r"at most [\d,]+|\(\d+ to \d+\)", node.get("description", "")), (
                tool.name,
                path,
            )


async def test_a_value_past_a_bound_is_refused_naming_the_argument_and_the_bound(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"README.md": "x\n"})
    async with Client(build("repo", settings_for(root, tmp=tmp_path))) as client:
        result = await client.call_tool("list_files", {"limit": 10**9})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert "'limit'" in text and "1000" in text


async def test_each_tools_list_is_at_most_half_what_it_was(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"README.md": "x\n"})
    for name in SERVERS:
        async with Client(build(name, settings_for(root, tmp=tmp_path))) as client:
            listed = await client.list_tools()
            instructions = client.instructions or ""
        chars = size(listed.model_dump(mode="json", by_alias=True, exclude_none=True))
        assert chars <= BOUND[name], (name, chars)
        # What the output schemas leave out, the instructions say once.
        assert ENVELOPE in instructions


# ------------------------------------------------------------------ every result fits its schema


class Answers(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that answers 'Paris' to everything."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        data = json.dumps({"choices": [{"message": {"content": "Paris"}}]}).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


FILES: dict[str, str | bytes] = {
    "pyproject.toml": '[project]\nname = "demo"\nversion = "0"\n',
    "pkg/__init__.py": "",
    "pkg/core.py": '"""Core."""\n\n\ndef add(a, b):\n    """Add."""\n    return a + b\n',
    "tests/test_core.py": "from pkg.core import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n",
    "data/sales.csv": "region,amount\nnorth,10\nsouth,20\nnorth,5\n",
    "eval/preds.csv": "y,p\n1,0.9\n0,0.2\n1,0.6\n0,0.4\n1,0.3\n0,0.1\n",
    "qa.csv": "question,answer\ncapital of France,Paris\ncapital of Spain,Madrid\n",
    "Dockerfile": "FROM python:3.12-slim\nCMD python app.py\n",
}


def calls(hostport: str) -> list[tuple[str, dict[str, Any]]]:
    """One valid call of every tool, in an order where each finds what it needs."""
    return [
        ("overview", {}),
        ("list_files", {}),
        ("read_file", {"path": "pkg/core.py"}),
        ("search", {"query": "add", "context_lines": 1}),
        ("outline", {"path": "pkg/core.py"}),
        ("find_symbol", {"name": "add", "include_references": True}),
        ("git_status", {}),
        ("git_diff", {}),
        ("git_log", {}),
        ("git_show", {}),
        ("git_blame", {"path": "pkg/core.py"}),
        ("related_files", {"path": "pkg/core.py"}),
        ("discover_tests", {}),
        ("run_tests", {}),
        ("run_affected_tests", {"base": "HEAD"}),
        ("lint", {}),
        ("fix_lint", {}),
        ("format_check", {}),
        ("check_flaky", {"node_id": "tests/test_core.py::test_add", "runs": 2}),
        ("test_history", {"node_id": "tests/test_core.py::test_add"}),
        ("list_datasets", {}),
        ("describe_dataset", {"path": "data/sales.csv"}),
        ("profile_dataset", {"path": "data/sales.csv"}),
        ("check_dataset", {"path": "data/sales.csv", "checks": [{"type": "not_null", "column": "amount"}]}),
        ("compare_datasets", {"a": "data/sales.csv", "a_ref": "HEAD"}),
        ("query", {"sql": "SELECT region, sum(amount) FROM 'data/sales.csv' GROUP BY 1"}),
        ("evaluate_predictions", {"path": "eval/preds.csv", "task": "binary", "label": "y", "score": "p"}),
        ("record_run", {"name": "preds", "metrics": {"accuracy": 0.5}, "n": 6}),
        ("list_runs", {}),
        ("compare_runs", {"baseline": "preds@HEAD", "candidate": "preds@HEAD"}),
        ("check_gates", {"candidate": "preds@HEAD", "gates": {"acc": {"metric": "accuracy", "min": 0.1}}}),
        (
            "evaluate_endpoint",
            {
                "url": f"http://{hostport}/v1/chat/completions",
                "dataset": "qa.csv",
                "input": "question",
                "label": "answer",
            },
        ),
        (
            "readiness_report",
            {"checks": ["worktree_clean", "secrets", "config", "no_debug_added"], "base": "HEAD"},
        ),
        ("scan_secrets", {}),
        ("check_dockerfile", {"path": "Dockerfile"}),
        ("check_config", {}),
        ("check_http", {"url": f"http://{hostport}/health"}),
        ("release_checklist", {}),
    ]


async def test_every_result_validates_against_its_advertised_output_schema(
    tmp_path: Path, endpoint: str
) -> None:
    root = make_repo(tmp_path / "proj", FILES)
    write(root, {"pkg/core.py": '"""Core."""\nimport os\n\n\ndef add(a, b):\n    return a + b\n'})
    settings = settings_for(
        root, '[policy]\nallow = ["repo.*", "testing.*", "data.*", "evals.*", "deploy.*"]\n', tmp=tmp_path
    )
    settings.servers["evals"] = {
        "bootstrap": 50,
        "allowed_hosts": [endpoint],
        "allow_private_hosts": ["127.0.0.1"],
    }
    settings.servers["deploy"] = {"allowed_hosts": [endpoint], "allow_private_hosts": ["127.0.0.1"]}
    planned = calls(endpoint)
    async with Client(build("all", settings), mode="legacy") as client:
        schemas = {t.name: t.output_schema for t in (await client.list_tools()).tools}
        assert {name for name, _ in planned} == set(schemas)
        for name, arguments in planned:
            structured = ok(await client.call_tool(name, arguments))
            schema = schemas[name]
            assert schema is not None, name
            jsonschema.validate(structured, schema, cls=jsonschema.Draft202012Validator)
            # The envelope the schemas leave to the instructions is there, in every result.
            assert structured.keys() >= Envelope.model_fields.keys(), name
