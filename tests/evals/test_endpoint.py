from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.evals.conftest import Session, csv
from tests.evals.test_evaluate import structured
from tests.helpers import first_text, make_repo

pytestmark = pytest.mark.anyio

ROWS = [
    ["capital of France", "Paris"],
    ["capital of Italy", "Rome"],
    ["capital of Spain", "Madrid"],
    ["capital of Peru", "Lima"],
    ["rate limited once", "ok"],
    ["always broken", "x"],
    ["too slow", "x"],
    ["garbage", "x"],
]
ANSWERS = {
    "capital of France": "paris",
    "capital of Italy": " Rome ",
    "capital of Spain": "Barcelona",
    "capital of Peru": "Lima",
}


class Model(BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible chat endpoint with scripted misbehaviour."""

    calls: dict[str, int]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][0]["content"] if "messages" in body else body.get("input", "")
        self.calls[text] = self.calls.get(text, 0) + 1
        if text == "rate limited once" and self.calls[text] == 1:
            return self._send(429, b'{"error": "slow down"}', {"Retry-After": "0"})
        if text == "always broken":
            return self._send(503, b"unavailable")
        if text == "too slow":
            time.sleep(1.0)
        if text == "garbage":
            return self._send(200, b"<html>not json</html>")
        answer = ANSWERS.get(text, "ok")
        if "messages" in body:
            payload = {
                "choices": [{"message": {"content": answer}}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1},
            }
        else:
            payload = {"output": answer}
        self._send(200, json.dumps(payload).encode("utf-8"))

    def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout case)


@pytest.fixture
def model() -> Iterator[tuple[str, dict[str, int]]]:
    calls: dict[str, int] = {}
    handler = type("Handler", (Model,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()


def endpoint_session(tmp_path: Any, hostport: str, **options: Any) -> Session:
    root = make_repo(tmp_path / "proj", {"qa.csv": csv(["question", "answer"], ROWS)})
    settings = {
        "allowed_hosts": [hostport],
        "allow_private_hosts": ["127.0.0.1"],
        "retry_base_s": 0.01,
        "retries": 2,
        "request_timeout_s": 0.3,
        **options,
    }
    return Session(root, settings, policy='[policy]\nallow = ["evals.*"]\n')


async def test_endpoint_is_scored_and_a_rerun_resumes_from_the_cache(tmp_path: Any, model: Any) -> None:
    hostport, calls = model
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async with endpoint_session(tmp_path, hostport) as call:
        url = f"http://{hostport}/v1/chat/completions"
        out = structured(
            await call(
                "evaluate_endpoint",
                progress=on_progress,
                url=url,
                dataset="qa.csv",
                input="question",
                label="answer",
                concurrency=3,
                name="qa",
            )
        )
        assert out["rows"] == 8 and out["called"] == 8 and out["cached"] == 0
        assert out["errors"] == 3
        assert out["error_kinds"] == {"http_503": 1, "timeout": 1, "malformed": 1}
        assert out["retries"] >= 1 + 2 + 2  # the 429 once; 503 and timeout twice each
        acc = next(m for m in out["metrics"] if m["name"] == "accuracy")
        assert acc["value"] == pytest.approx(4 / 5)  # Paris, Rome, Lima, ok right; Barcelona wrong
        assert set(out["latency_ms"]) == {"p50", "p90", "p95", "p99", "max"}
        assert out["prompt_tokens"] == 25 and out["completion_tokens"] == 5
        assert progress and progress[-1] == 8
        assert calls["always broken"] == 3 and calls["rate limited once"] == 2
        before = dict(calls)
        again = structured(
            await call(
                "evaluate_endpoint", url=url, dataset="qa.csv", input="question", label="answer", name="qa"
            )
        )
        assert again["cached"] == 5 and again["called"] == 3
        # Only the rows without an answer were called again.
        assert calls["capital of France"] == before["capital of France"]
        assert calls["always broken"] == before["always broken"] + 3
        listed = structured(await call("list_runs", name="qa"))
        assert listed["total"] == 2 and listed["runs"][0]["headline"]["accuracy"] == pytest.approx(0.8)


async def test_json_mode_reads_output(tmp_path: Any, model: Any) -> None:
    hostport, _ = model
    async with endpoint_session(tmp_path, hostport) as call:
        out = structured(
            await call(
                "evaluate_endpoint",
                url=f"http://{hostport}/predict",
                dataset="qa.csv",
                input="question",
                label="answer",
                mode="json",
                limit=4,
            )
        )
    assert out["rows"] == 4 and out["errors"] == 0
    assert next(m for m in out["metrics"] if m["name"] == "accuracy")["value"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("http://{hostport}/v1", {"allow_private_hosts": []}, "resolves to 127.0.0.1, a loopback address"),
        ("http://example.org/v1", {}, "not in [evals] allowed_hosts"),
        (
            "http://169.254.169.254/latest",
            {"allowed_hosts": ["169.254.169.254"], "allow_private_hosts": []},
            "a cloud metadata address",
        ),
        ("file:///etc/passwd", {}, "only http and https"),
        ("http://user:pw@{hostport}/v1", {}, "credentials"),
    ],
)
async def test_hosts_must_be_allowed(
    tmp_path: Any, model: Any, url: str, options: dict[str, Any], message: str
) -> None:
    hostport, calls = model
    async with endpoint_session(tmp_path, hostport, **options) as call:
        result = await call(
            "evaluate_endpoint",
            url=url.format(hostport=hostport),
            dataset="qa.csv",
            input="question",
            label="answer",
        )
    assert result.is_error and message in first_text(result)
    assert not calls


async def test_the_project_file_cannot_allow_hosts(
    tmp_path: Any, model: Any, make_client: Callable[..., Session]
) -> None:
    hostport, calls = model
    root = make_repo(
        tmp_path / "hostile",
        {
            "qa.csv": csv(["question", "answer"], ROWS),
            ".onrecord.toml": f'[evals]\nallowed_hosts = ["{hostport}"]\nallow_private_hosts = ["127.0.0.1"]\n',
        },
    )
    session = Session(root, {}, policy='[policy]\nallow = ["evals.*"]\n')
    assert any(
        "evals.allowed_hosts = " in r and "ignored: only the humans" in r
        for r in session.server.config.refused
    )
    async with session as call:
        result = await call(
            "evaluate_endpoint",
            url=f"http://{hostport}/v1",
            dataset="qa.csv",
            input="question",
            label="answer",
        )
    assert result.is_error and "not in [evals] allowed_hosts" in first_text(result)
    assert not calls


async def test_endpoint_tool_is_annotated_open_world(tmp_path: Any, model: Any) -> None:
    hostport, _ = model
    session = endpoint_session(tmp_path, hostport)
    tool = next(t for t in await session.server.list_tools() if t.name == "evaluate_endpoint")
    assert tool.annotations is not None and tool.annotations.open_world_hint is True
    assert tool.annotations.read_only_hint is False
