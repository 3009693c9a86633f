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
