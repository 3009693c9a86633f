"""The scan heuristics bench/secrets_quality.py led to: each keeps a secret found and a near-miss out."""

from __future__ import annotations

import base64
import json

import pytest

from common.redact import redact_text
from common.secret_rules import builtin
from servers.deploy.secrets import find

# Fake, random-looking values, built here so no file holds one whole.
PASSWORD = "Qm7" + "vK2x!pL9" + "wR4z"
RANDOM40 = "aZ3kQ9" + "mP2xL7vB8nW4cT6yH1dF5gJ0sR" + "e3uI9oKq"
SENDGRID = "SG." + "Ab3dEf6hIj9kLm2nOp5qRs" + "." + "Tu8vWx1yZa4bCd7eFg0hIj3kLm6nOp9qRs2tUv5wXy8"


def _b64(obj: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


# Header, payload and signature without `-` or `_`: the shape of a dotted name.
JWT = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': '1234567890', 'role': 'svc'})}.{'Xq9' * 14}A"


def found(text: str, path: str) -> bool:
    hits, _ = find(text, path, builtin())
    return bool(hits)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (f'SECRET_KEY = "{RANDOM40}"', "app/settings.py"),
        (f"secret_key = {RANDOM40}", "config/settings.ini"),
        (f'const secretKey = "{RANDOM40}";', "web/config.js"),
        (f"api.key={RANDOM40}", "src/main/resources/application.properties"),
        (f"aws.secret.access.key={RANDOM40}", "src/main/resources/application.properties"),
    ],
)
def test_secret_key_and_dotted_compound_names_are_secret_words(text: str, path: str) -> None:
    assert found(text, path)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("api.key.header=X-Api-Key", "src/main/resources/application.properties"),
        ("SECRET_KEY = settings.SECRET_KEY", "app/settings.py"),
        ("secret_key_path = /run/secrets/app", "config/settings.ini"),
    ],
)
def test_secret_key_near_misses_are_not(text: str, path: str) -> None:
    assert not found(text, path)


def test_secret_key_assignment_is_redacted_in_the_audit_log() -> None:
    shown, fired = redact_text(f'SECRET_KEY = "{RANDOM40}"')
    assert RANDOM40 not in shown and fired


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (f'ID_TOKEN = "{JWT}"', "app/settings.py"),
        (f"id_token: {JWT}", "config/app.yaml"),
        (f"DEBUG using credential {JWT}", "logs/app.log"),
        (f'"sendgrid_api_key": "{SENDGRID}",', "config/credentials.json"),
        (f"mail sent with {SENDGRID}", "logs/app.log"),
    ],
)
def test_dot_separated_tokens_are_not_taken_for_dotted_names(text: str, path: str) -> None:
    assert found(text, path)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("password: config.database.password", "config/app.yaml"),
        ("api_key = settings.STRIPE_API_KEY_FOR_BILLING_WEBHOOKS", "config/app.ini"),
        ("  apiKey: process.env.STRIPE_API_KEY,", "app/config.json"),
    ],
)
def test_dotted_names_are_still_references(text: str, path: str) -> None:
    assert not found(text, path)


@pytest.mark.parametrize(
    "text",
    [
        f"export AWS_SECRET_ACCESS_KEY={RANDOM40}",
        f"API_TOKEN={RANDOM40} ./publish",
        f"export DB_PASSWORD={PASSWORD}",
    ],
)
def test_unquoted_shell_assignment_is_a_literal(text: str) -> None:
    assert found(text, "scripts/deploy.sh")


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("export TOKEN=$CI_TOKEN", "scripts/deploy.sh"),
        ("export API_KEY=${API_KEY}", "scripts/deploy.sh"),
        ('PASSWORD="$(cat /run/secrets/db_password)"', "scripts/deploy.sh"),
        ("export TOKEN=$(vault read -field=token secret/ci)", "scripts/deploy.sh"),
        ("    password = get_password(user)", "app/auth.py"),
    ],
)
def test_shell_references_and_code_names_are_not(text: str, path: str) -> None:
    assert not found(text, path)


@pytest.mark.parametrize(
    "text",
    [
        "curl -H 'Authorization: Bearer <token>' https://api.internal/v1",
        'curl -H "Authorization: Bearer $API_TOKEN" https://api.internal/v1',
        "  headers: { Authorization: `Bearer ${token}` },",
    ],
)
def test_authorization_placeholders_are_not_secrets(text: str) -> None:
    assert not found(text, "docs/api.md")


def test_authorization_header_with_a_token_is_found() -> None:
    assert found(f"> Authorization: Bearer {RANDOM40}", "logs/app.log")
    assert found(f"  headers: {{ Authorization: `Bearer {RANDOM40}` }},", "web/api.js")


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('    password = "test"', "tests/test_auth.py"),
        ('    client.login(username="alice", password="password")', "tests/test_auth.py"),
        ('    token = "fake-token"', "tests/test_auth.py"),
        ("  api_key: test", "tests/fixtures/users.yaml"),
        ("password = testpass", "tests/fixtures/test.ini"),
        ("    DATABASE_URL=postgres://user:password@localhost:5432/app", "docs/setup.md"),
        ("url = postgres://app:${DB_PASSWORD}@db:5432/app", "config/app.ini"),
        ("Set `OPENAI_API_KEY=sk-...` in your shell.", "docs/setup.md"),
    ],
)
def test_fixture_and_documentation_values_are_not_secrets(text: str, path: str) -> None:
    assert not found(text, path)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('    password = "Testing123!"', "tests/test_auth.py"),
        ('    password = "test-' + "Xq9v" + '2Lm"', "tests/test_auth.py"),
        (f"url = postgres://app:{PASSWORD}@db:5432/app", "config/app.ini"),
        (f"token = test_{RANDOM40}", "config/app.ini"),
        ("OPENAI_API_KEY=sk-proj-" + RANDOM40, "docs/setup.md"),
    ],
)
def test_real_looking_values_near_fixture_words_are_still_secrets(text: str, path: str) -> None:
    assert found(text, path)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            f"conn = DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={RANDOM40}==;EndpointSuffix=x",
            "config/storage.ini",
        ),
        (f'ENCRYPTION_KEY = b"{RANDOM40}"', "app/crypto.py"),
        (f"  signing_key: {RANDOM40}", "config/app.yaml"),
        (f"master.key={RANDOM40}", "src/main/resources/application.properties"),
        (f"machine api.heroku.com login ops@acme.dev password {PASSWORD}", "deploy/netrc"),
    ],
)
def test_more_key_names_and_netrc_passwords_are_found(text: str, path: str) -> None:
    assert found(text, path)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("conn = DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=<key>;", "config/storage.ini"),
        ('ENCRYPTION_KEY = os.environ["ENCRYPTION_KEY"]', "app/crypto.py"),
        ("  signing_key: /etc/keys/signing.pem", "config/app.yaml"),
        ("  signing_key_id: 4", "config/app.yaml"),
        ("machine api.heroku.com login ops@acme.dev password $HEROKU_PASSWORD", "deploy/netrc"),
    ],
)
def test_more_key_names_near_misses_are_not(text: str, path: str) -> None:
    assert not found(text, path)


def test_netrc_password_is_redacted_in_the_audit_log() -> None:
    shown, _ = redact_text(f"machine api.heroku.com login ops password {PASSWORD}")
    assert PASSWORD not in shown
