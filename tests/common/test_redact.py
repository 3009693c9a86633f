"""Secrets never reach the audit log: planted in arguments and in results, none survives."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ToolAnnotations
from pydantic import BaseModel

from common.redact import redact, redact_text
from common.server import AccountableServer
from tests.helpers import all_audit_text, of_type, settings_for

pytestmark = pytest.mark.anyio

# (the secret part that must disappear, the text it is planted in)
_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7x9kQ2mWqLb3vT0aY8Zr\n-----END RSA PRIVATE KEY-----"
_JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
SECRETS: list[tuple[str, str]] = [
    ("MIIEpAIBAAKCAQEA7x9kQ2mWqLb3vT0aY8Zr", _KEY),
    ("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
    ("AKIAIOSFODNN7EXAMPLE", "aws key AKIAIOSFODNN7EXAMPLE in config"),
    (
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ),
    ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", "token ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    (
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "pat github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    ),
    ("glpat-xYz1234567890abcdefgh", "GITLAB glpat-xYz1234567890abcdefgh"),
    (
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
        "slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
    ),
    (
        "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    ),
    ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "webhook whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ("sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXyZ", "OPENAI sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXyZ"),
    (
        "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa",
        "anthropic sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa",
    ),
    (_JWT, f"cookie-less jwt {_JWT}"),
    ("dXNlcjpodW50ZXIyaHVudGVy", "Authorization: Basic dXNlcjpodW50ZXIyaHVudGVy"),
    ("abcDEF123456ghiJKL789", "curl -H 'Bearer abcDEF123456ghiJKL789'"),
    ("s3cr3tPa55", "postgres://billing:s3cr3tPa55@db.internal:5432/app"),
    ("hunter2", "password = hunter2"),
    ("AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "google AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "hf hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    (
        "npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "//registry/:_authToken=npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    ),
    ("Zk9vQmFyQmF6UXV4MTIzNDU2Nzg5MA", 'SIGNING_MATERIAL="Zk9vQmFyQmF6UXV4MTIzNDU2Nzg5MA"'),
    ("sessionid=8f14e45fceea167a5a36dedd4bea2543", "Cookie: sessionid=8f14e45fceea167a5a36dedd4bea2543"),
]
KEYED: dict[str, str] = {
    "password": "correct-horse-battery",
    "api_key": "k-1234-plain-looking",
    "Authorization": "token-abc-not-shaped",
    "client_secret": "cs-0000-1111",
    "x-api-key": "xk-2222-3333",
}


@pytest.mark.parametrize(("secret", "text"), SECRETS, ids=[s[0][:12] for s in SECRETS])
def test_each_secret_shape_is_redacted_in_text(secret: str, text: str) -> None:
    out, fired = redact_text(text)
    assert secret not in out and fired and "[REDACTED:" in out


def test_key_names_redact_whatever_the_value_looks_like() -> None:
    out, found = redact({"nested": {**KEYED, "path": "src/app.py", "max_tokens": 20}})
    for value in KEYED.values():
        assert value not in str(out)
    assert out["nested"]["path"] == "src/app.py" and out["nested"]["max_tokens"] == 20
    assert {r.rule for r in found} == {f"key:{k.lower()}" for k in KEYED}
    assert {r.where for r in found} == {f"nested.{k}" for k in KEYED}


def test_ordinary_code_and_prose_are_left_alone() -> None:
    for text in [
        "def total(invoice: Invoice) -> int:\n    return sum(line.cents for line in invoice.lines)",
        "author: Ada Example <ada@example.com>",
        "see https://example.com/docs/index.html for details",
        "commit 3f2a9c1d4e5b6a7980c1d2e3f4a5b6c7d8e9f0a1",
        "max_result_tokens = 20000",
    ]:
        assert redact_text(text) == (text, [])


class Leak(BaseModel):
    text: str


def leak(payload: str, password: str = "", api_key: str = "") -> Leak:
    """Returns what it was given, plus every planted secret (as a tool reading a bad file might)."""
    return Leak(text=payload + "\n" + "\n".join(t for _, t in SECRETS))


async def test_no_planted_secret_reaches_any_audit_file(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    server = AccountableServer("kit", settings_for(root, tmp=tmp_path))
    server.add_tool(
        leak, annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
    )
    async with Client(server) as client:
        for secret, text in SECRETS:
            result = await client.call_tool(
                "leak", {"payload": text, **{k: v for k, v in KEYED.items() if k in ("password", "api_key")}}
            )
            assert result.is_error is False
            assert (
                secret in result.structured_content["text"]
            )  # the agent gets the data; only the log is clean
        # A validation error echoes the bad value back in its message: it must be redacted too.
        bad = await client.call_tool(
            "leak", {"payload": {"token": "ghp_16C7e42F292c6912E7710c838347Ae178B4a"}}
        )
        assert bad.is_error is True
    text = all_audit_text(Path(server.config.state_dir))
    assert text
    for secret, _ in SECRETS:
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text
    for value in ("correct-horse-battery", "k-1234-plain-looking"):
        assert value not in text
    calls = of_type(server, "call")
    assert all(c.get("redactions") for c in calls)
    results = of_type(server, "result")
    assert any(r.get("redactions") for r in results)
    rules = {red["rule"] for c in calls for red in c["redactions"]}
    assert {"private_key_block", "aws_access_key_id", "jwt", "key:password", "key:api_key"} <= rules


def test_redacting_before_clipping_leaves_no_half_secret() -> None:
    from mcp.types import CallToolResult

    from common.server import PREVIEW_CHARS, Outcome

    secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
    body: dict[str, Any] = {"text": "x" * (PREVIEW_CHARS - 20) + secret}
    outcome = Outcome()
    outcome.describe(CallToolResult(content=[], structured_content=body))
    fields = outcome.fields()
    assert "sk_live_4eC" not in fields["preview"] and "4eC39Hq" not in fields["preview"]


GHP = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
AKIA = "AKIAIOSFODNN7EXAMPLE"


@pytest.mark.parametrize(
    "planted",
    [
        f"\t{GHP}",  # a file line that starts with a tab, as the JSON preview escapes it
        f"x\n{AKIA}",
        f"\x1b[31m{GHP}",  # a terminal colour sequence just before the token
        f"\x1b{AKIA}",
        f"\u202e{GHP}",
    ],
)
def test_shapes_match_after_escapes_in_json_text(planted: str) -> None:
    import json

    for text in (planted, json.dumps(planted), json.dumps({"line": planted})):
        shown, fired = redact_text(text)
        assert GHP not in shown and AKIA not in shown, text
        assert fired


@pytest.mark.parametrize(
    ("secret", "text"),
    [
        ("hunter2xyz", "https://api.example.com/login?user=a&password%3Dhunter2xyz&x=1"),
        ("hunter2xyz", "password%3Ahunter2xyz"),
        ("s3cr3tvalue", "token%3D%22s3cr3tvalue%22"),
    ],
)
def test_shapes_match_in_url_encoded_text(secret: str, text: str) -> None:
    shown, fired = redact_text(text)
    assert secret not in shown and "secret_assignment" in fired


def test_a_secret_used_as_an_argument_name_is_redacted() -> None:
    shown, found = redact({GHP: "value", "nested": {AKIA: 1}}, "arguments")
    assert GHP not in str(shown) and AKIA not in str(shown)
    assert {r.rule for r in found} == {"github_token", "aws_access_key_id"}


@pytest.mark.parametrize(
    "text",
    ["a-" * 25_000 + "://", "sk-" * 17_000, "xoxa-" * 10_000, "a=" * 25_000, "eyJ-" * 12_000, "\\t" * 25_000],
)
def test_redaction_takes_linear_time_on_hostile_text(text: str) -> None:
    import time

    started = time.monotonic()
    redact_text(text)
    redact({"path": text, text[:300]: 1})
    assert time.monotonic() - started < 1.0  # a backtracking pattern took 4 s here


class Out(BaseModel):
    ok: bool


PASSWORD = "hunter2-" + "correct-horse"


async def test_a_crashed_tools_exception_reaches_stderr_redacted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def leaky(path: str) -> Out:
        raise RuntimeError(f"could not open {path} with password={PASSWORD} and {GHP}")

    server = AccountableServer("t", settings_for(tmp_path, tmp=tmp_path))
    server.add_tool(leaky, annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False))
    with caplog.at_level("INFO"):
        async with Client(server, mode="legacy") as client:
            result = await client.call_tool("leaky", {"path": "a.txt"})
    assert result.is_error
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "leaky" in logged  # the crash was logged ...
    assert GHP not in logged and PASSWORD not in logged  # ... without the secrets
    assert GHP not in all_audit_text(server.config.audit_path)


def test_a_plain_url_is_not_a_high_entropy_assignment() -> None:
    # A reviewer approving a call must see the URL it goes to; only credentials in it are secret.
    for url in (
        "http://169.254.169.254/latest/meta-data",
        "https://api.example.com/v1/chat/completions",
        "POST http://127.0.0.1:36783/v1/chat/completions",
    ):
        assert redact_text(url) == (url, [])
    shown, fired = redact_text("https://deploy:s3cr3tPassw0rd@example.com/hook")
    assert "s3cr3tPassw0rd" not in shown and fired
    assert redact_text("nonce: ab12CD34ef56GH78ij90KL12mn")[1] == ["high_entropy_assignment"]


def test_fast_gate_and_token_tests_agree_with_the_plain_ones() -> None:
    import random

    from common.redact import _LONG_TOKEN, _all_gates, _has_long_token, _present_gates

    rng = random.Random(11)
    pieces = [
        *sorted(_all_gates()),
        "a",
        "Z",
        "0",
        "=",
        ".",
        ":",
        " ",
        "\n",
        '"',
        "é",
        "名",
        "\ud800",
        "x" * 19,
    ]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        lower = text.lower()
        assert _present_gates(lower) == {g for g in _all_gates() if g in lower}, repr(text)
        assert _has_long_token(text) == bool(_LONG_TOKEN.search(text)), repr(text)


def test_a_secret_piece_of_a_path_or_url_hides_only_itself() -> None:
    from common.redact import redact_target

    assert (
        redact_text("docs/token=v1abcdef/../../secrets/prod.yaml")[0]
        == "docs/token=[REDACTED:secret_assignment]"
    )
    assert redact_target("docs/token=v1abcdef/../../secrets/prod.yaml") == (
        "docs/token=[REDACTED:secret_assignment]/../../secrets/prod.yaml",
        ["secret_assignment"],
    )
    shown, fired = redact_target("https://deploy:s3cr3tPassw0rd@example.com/hook?token=abcdefgh&x=1")
    assert (
        shown == "https://[REDACTED:url_credentials]@example.com/hook?token=[REDACTED:secret_assignment]&x=1"
    )
    assert fired == ["url_credentials", "secret_assignment"]
    assert redact_target("src/app.py") == ("src/app.py", [])
