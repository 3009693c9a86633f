"""Malformed requests get a JSON-RPC error reply over real stdio; none is dropped or hangs the server."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from pathlib import Path

import pytest

from common.wire import top_level_id
from tests.helpers import make_repo

INIT = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
CALL = '{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":"read_file","arguments":%s}}'
MALFORMED = [
    (1, CALL % (1, '{"path":' + "[" * 5000 + "]" * 5000 + "}"), -32700),  # nested too deeply
    (2, CALL % (2, '{"path":"a\\ud800b"}'), -32700),  # a lone surrogate
    (3, CALL % (3, '{"path":"a.txt","start_line":' + "9" * 5000 + "}"), -32700),  # a 5,000-digit integer
    (4, '{"jsonrpc":"2.0","id":4,"method":"tools/call", oops', -32700),  # not JSON at all
    ("five", '{"jsonrpc":"2.0","id":"five","method":"tools/call","params":"x"}', -32600),  # wrong shape
    (None, "[1, 2", -32700),  # no id to be read: answered to null
]


def test_every_malformed_request_gets_an_error_reply_and_the_server_keeps_serving(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "proj", {"a.txt": "hello\n"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "serve", "repo", "--root", str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None

    def send(line: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(line.encode("utf-8") + b"\n")
        proc.stdin.flush()

    def reply() -> dict[str, object]:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "no reply within 20 s"
        return json.loads(proc.stdout.readline())

    try:
        send(json.dumps(INIT))
        assert "result" in reply()
        send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
        for request_id, line, code in MALFORMED:
            send(line)
            answer = reply()
            assert answer["id"] == request_id, line[:80]
            assert answer["error"]["code"] == code  # type: ignore[index]
        send(CALL % (9, '{"path":"a.txt"}'))
        answer = reply()
        assert answer["id"] == 9 and "hello" in json.dumps(answer["result"])
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"jsonrpc":"2.0","id":7,"x":[', (True, 7)),
        ('{"params":{"id":5},"id":"abc","x":', (True, "abc")),
        ('{"a":"id","b":{"id":1}', (False, None)),
        ('{"id":' + "9" * 5000, (True, None)),
        ('{"s":"a\\"id\\"","id":-3,', (True, -3)),
        ("[" * 100_000, (False, None)),
    ],
)
def test_the_id_of_a_broken_line_is_read_from_the_outermost_object_only(
    text: str, expected: tuple[bool, object]
) -> None:
    assert top_level_id(text) == expected
