"""Quality of the deploy server's `scan_secrets` rules against detect-secrets on a labelled corpus.

A seeded generator writes a git repository of realistic files (INI/YAML/TOML/properties config, Python,
JavaScript and shell code, Jupyter notebooks, logs, lock files, docs) into a temporary directory, with
fake credentials of every shape the rules cover planted on known lines, and near-misses that are not
secrets (git SHAs, digests, UUIDs, lock-file hashes, test fixtures, placeholders, references to
secrets kept elsewhere, base64 images, public keys, ids in URLs) on other known lines.

Ours: `servers.deploy.secrets.find` with the built-in rules over every file the worktree scan reads.
Anchor: detect-secrets (`detect-secrets scan --all-files`, default plugins and filters), installed
only in a venv of its own under the bench cache (~/.cache/onrecord-bench/ds-venv) on first run, never
a dependency of onrecord. Scored per (file, line): a finding on a secret's line is a true positive, on
any other line a false positive (the lines inside a multi-line private key count for neither); a
secret's line without a finding is a false negative. Goal (the project issue): our recall at least
the anchor's, our precision at least 0.9. No secret is printed whole: lines are shown redacted.

    .venv/bin/python bench/secrets_quality.py [--seed 7] [--keep DIR] [--verbose]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import shutil
import string
import subprocess
import sys
import tempfile
import venv
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bigrepo import cache_dir
from common.secret_rules import builtin
from servers.deploy.secrets import find

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
WORDS = [
    "river",
    "falcon",
    "orange",
    "copper",
    "winter",
    "maple",
    "quartz",
    "harbor",
    "lumen",
    "cedar",
    "violet",
    "tango",
    "nimbus",
]
HOSTS = ["db.internal", "pg-prod-1.cluster.local", "10.0.3.17", "mongo.svc", "cache.prod.example.net"]


@dataclass
class Item:
    path: str
    line: int
    secret: bool
    category: str
    value: str = ""  # the planted secret (to redact it when shown)


@dataclass
class Corpus:
    rng: random.Random
    files: dict[str, list[str]] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)
    ignored: set[tuple[str, int]] = field(default_factory=set)  # inside a multi-line secret

    # ---- random material -------------------------------------------------------------------
    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def mixed(self, alphabet: str, n: int) -> str:
        """Random, with at least one lower, upper and digit (as real tokens of that length have)."""
        while True:
            s = self.chars(alphabet, n)
            if any(c.islower() for c in s) and any(c.isupper() for c in s) and any(c.isdigit() for c in s):
                return s

    def uuid(self) -> str:
        h = self.chars(HEX, 32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def password(self) -> str:
        if self.rng.random() < 0.5:
            return self.mixed(ALNUM + "!#%&*+-.?@^_~", self.rng.randint(14, 24))
        word = self.rng.choice(WORDS).capitalize()
        return f"{word}{self.rng.randint(10, 9999)}{self.rng.choice('!#%&*?@')}{self.chars(ALNUM, 4)}"

    # ---- writing ----------------------------------------------------------------------------
    def put(self, path: str, text: str, category: str = "", secret: bool = False, value: str = "") -> None:
        """Append one line (or a block whose first line is the labelled one) to `path`."""
        lines = self.files.setdefault(path, [])
        first = len(lines) + 1
        block = text.split("\n")
        lines.extend(block)
        if category:
            self.items.append(Item(path, first, secret, category, value))
            if secret:
                self.ignored.update((path, first + i) for i in range(1, len(block)))

    def write(self, root: Path) -> None:
        for path, lines in self.files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---- secrets: (category, key name, value) -----------------------------------------------------
def jwt(c: Corpus) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")

    header = part({"alg": c.rng.choice(["HS256", "RS256"]), "typ": "JWT"})
    body = part(
        {
            "sub": str(c.rng.randint(10**6, 10**9)),
            "iat": c.rng.randint(1_600_000_000, 1_800_000_000),
            "role": "svc",
        }
    )
    return f"{header}.{body}.{c.chars(B64URL, 43)}"


def pem(c: Corpus, kind: str) -> str:
    label = {"rsa": "RSA PRIVATE KEY", "ec": "EC PRIVATE KEY", "pkcs8": "PRIVATE KEY"}.get(
        kind, "OPENSSH PRIVATE KEY"
    )
    body = [c.chars(B64, 64) for _ in range(c.rng.randint(4, 9))] + [c.chars(B64, 24) + "=="]
    return "\n".join([f"-----BEGIN {label}-----", *body, f"-----END {label}-----"])


SECRET_KINDS: dict[str, list[tuple[str, Callable[[Corpus], str]]]] = {
    "aws_key_id": [
        ("aws_access_key_id", lambda c: c.rng.choice(["AKIA", "ASIA"]) + c.chars(UPPER_DIGITS, 16))
    ],
    "aws_secret_key": [("aws_secret_access_key", lambda c: c.mixed(B64, 40))],
    "github": [
        ("github_token", lambda c: "ghp_" + c.mixed(ALNUM, 36)),
        ("gh_oauth_token", lambda c: "gho_" + c.mixed(ALNUM, 36)),
        ("github_pat", lambda c: f"github_pat_11{c.chars(UPPER_DIGITS, 20)}_{c.mixed(ALNUM, 59)}"),
    ],
    "gitlab": [("gitlab_token", lambda c: "glpat-" + c.mixed(B64URL, 20))],
    "slack": [
        (
            "slack_bot_token",
            lambda c: f"xoxb-{c.chars(string.digits, 12)}-{c.chars(string.digits, 13)}-{c.mixed(ALNUM, 24)}",
        ),
        (
            "slack_webhook",
            lambda c: (
                f"https://hooks.slack.com/services/T{c.chars(UPPER_DIGITS, 8)}/B{c.chars(UPPER_DIGITS, 10)}/{c.mixed(ALNUM, 24)}"
            ),
        ),
    ],
    "stripe": [
        ("stripe_secret_key", lambda c: "sk_live_" + c.mixed(ALNUM, 24)),
        ("stripe_restricted_key", lambda c: "rk_live_" + c.mixed(ALNUM, 24)),
        ("stripe_webhook_secret", lambda c: "whsec_" + c.mixed(ALNUM, 32)),
    ],
    "google": [("google_api_key", lambda c: "AIza" + c.mixed(B64URL, 35))],
    "huggingface": [("hf_token", lambda c: "hf_" + c.mixed(ALNUM, 34))],
    "npm": [("npm_token", lambda c: "npm_" + c.mixed(ALNUM, 36))],
    "pypi": [("pypi_token", lambda c: "pypi-AgEIcHlwaS5vcmc" + c.mixed(B64URL, 120))],
    "sendgrid": [("sendgrid_api_key", lambda c: f"SG.{c.mixed(B64URL, 22)}.{c.mixed(B64URL, 43)}")],
    "openai": [
        ("openai_api_key", lambda c: "sk-proj-" + c.mixed(B64URL, 64)),
        ("openai_key", lambda c: f"sk-{c.mixed(ALNUM, 20)}T3BlbkFJ{c.mixed(ALNUM, 20)}"),
    ],
    "anthropic": [("anthropic_api_key", lambda c: "sk-ant-api03-" + c.mixed(B64URL, 93) + "AA")],
    "jwt": [("id_token", jwt)],
    "password": [("password", lambda c: c.password()), ("db_password", lambda c: c.password())],
    "api_key": [("api_key", lambda c: c.mixed(ALNUM, 32)), ("apikey", lambda c: c.chars(HEX, 32))],
    "client_secret": [
        ("client_secret", lambda c: c.mixed(B64URL, 40)),
        ("secret_key", lambda c: c.mixed(ALNUM + "!@#%^&*(-_=+)", 50)),
    ],
}
# Where a provider token is not assigned to a name: said in a log, a header, a URL.
# "other": shapes no built-in rule names (a connection string's key, a key named only `*_key`,
# a .netrc password), so the corpus is not only what our rules were written for.
SECRET_CATEGORIES = [*SECRET_KINDS, "private_key", "url_password", "auth_header", "other"]


def assignment(fmt: str, name: str, value: str, rng: random.Random) -> str:
    upper = name.upper()
    camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
    if fmt == "ini":
        return f"{name} = {value}"
    if fmt == "yaml":
        plain = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_./+=\-]*", value) is not None  # else YAML needs quotes
        return f"  {name}: {value}" if plain and rng.random() < 0.5 else f'  {name}: "{value}"'
    if fmt == "toml":
        return f'{name} = "{value}"'
    if fmt == "properties":
        return f"{name.replace('_', '.')}={value}"
    if fmt == "py":
        return f'{upper} = "{value}"' if rng.random() < 0.6 else f'    "{name}": "{value}",'
    if fmt == "js":
        return f'const {camel} = "{value}";' if rng.random() < 0.5 else f"  {camel}: '{value}',"
    if fmt == "sh":
        return f'export {upper}="{value}"' if rng.random() < 0.5 else f"export {upper}={value}"
    if fmt == "json":
        return f'    "{name}": "{value}",'
    raise ValueError(fmt)


# ---- files ------------------------------------------------------------------------------------
FILLER = {
    "ini": ["port = 8080", "debug = false", "workers = 4", "log_level = info", "timeout = 30"],
    "yaml": ["  replicas: 3", "  image: registry.local/app:1.4.2", "  port: 8080", "  enabled: true"],
    "toml": ['name = "billing"', "retries = 5", 'region = "eu-west-1"', "verbose = false"],
    "properties": ["server.port=8080", "spring.jpa.show-sql=false", "app.cache.ttl=600"],
    "py": ["import os", "", "def handler(event, context):", "    return {'ok': True}", "LOG_LEVEL = 'INFO'"],
    "js": ["'use strict';", "const port = 3000;", "module.exports = config;", "// see README"],
    "sh": ["set -euo pipefail", 'echo "deploying $SERVICE"', "cd /srv/app"],
    "json": ['    "region": "us-east-1",', '    "retries": 3,'],
}
SUFFIX = {
    "ini": ".ini",
    "yaml": ".yaml",
    "toml": ".toml",
    "properties": ".properties",
    "py": ".py",
    "js": ".js",
    "sh": ".sh",
    "json": ".json",
}
CONFIG_NAMES = {
    "ini": ["config/settings.ini", "deploy/app.cfg", "setup/database.ini"],
    "yaml": ["config/production.yaml", "deploy/values.yaml", "ops/docker-compose.yml"],
    "toml": ["config/secrets.toml", "app/settings.toml"],
    "properties": ["src/main/resources/application.properties"],
    "py": ["app/settings.py", "scripts/sync_users.py", "app/clients.py"],
    "js": ["web/src/config.js", "web/server/index.js"],
    "sh": ["scripts/deploy.sh", "ci/publish.sh"],
    "json": ["config/credentials.json"],
}


class Builder:
    def __init__(self, corpus: Corpus) -> None:
        self.c = corpus
        self.rng = corpus.rng
        self.sections: dict[str, int] = defaultdict(int)
        self.keys: dict[str, set[str]] = defaultdict(set)

    def path_for(self, fmt: str) -> str:
        path = self.rng.choice(CONFIG_NAMES[fmt])
        if path.endswith(".yml"):
            return path
        return path if path.endswith(SUFFIX[fmt]) else path.rsplit(".", 1)[0] + SUFFIX[fmt]

    def open_section(self, path: str, fmt: str) -> None:
        """INI/YAML/TOML/JSON: a fresh section now and then, so keys stay unique and parsers agree."""
        lines = self.c.files.get(path)
        count = len(lines) if lines else 0
        if fmt == "json" and not lines:
            self.c.put(path, "{")
            self.c.put(path, '  "service": {')
            return
        if count and (count % 7 or fmt not in {"ini", "yaml", "toml"}):
            return
        self.sections[path] += 1
        self.keys[path].clear()
        n = self.sections[path]
        header = {"ini": f"[service_{n}]", "yaml": f"service_{n}:", "toml": f"[service_{n}]"}.get(fmt)
        if header:
            self.c.put(path, header)

    def unique(self, path: str, name: str) -> str:
        key, i = name, 2
        while key in self.keys[path]:
            key, i = f"{name}_{i}", i + 1
        self.keys[path].add(key)
        return key

    def assign(self, fmt: str, name: str, value: str, category: str, secret: bool, path: str = "") -> None:
        path = path or self.path_for(fmt)
        self.open_section(path, fmt)
        if self.rng.random() < 0.5:
            self.c.put(
                path,
                self.rng.choice(FILLER[fmt])
                if fmt not in {"ini", "yaml", "toml"}
                else self.filler_kv(path, fmt),
            )
        line = assignment(fmt, self.unique(path, name), value, self.rng)
        self.c.put(path, line, category, secret, value if secret else "")

    def filler_kv(self, path: str, fmt: str) -> str:
        key = self.unique(
            path, self.rng.choice(["port", "workers", "timeout", "region", "replicas", "retries"])
        )
        value = str(self.rng.randint(1, 9000))
        return {"ini": f"{key} = {value}", "yaml": f"  {key}: {value}", "toml": f"{key} = {value}"}[fmt]


def build(seed: int) -> Corpus:
    c = Corpus(random.Random(seed))
    b = Builder(c)
    rng = c.rng
    fmts = list(SUFFIX)

    # 1. Every secret kind assigned to a name, in config and code of every format.
    for category, kinds in SECRET_KINDS.items():
        for name, make in kinds:
            for fmt in rng.sample(fmts, 5 if len(kinds) > 1 else 8):
                b.assign(fmt, name, make(c), category, True)

    # 2. Provider tokens said without a name: logs, headers, URLs, prose, notebooks.
    log = "logs/app.log"

    def stamp() -> str:
        return f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T{rng.randint(10, 23)}:{rng.randint(10, 59)}:{rng.randint(10, 59)}Z"

    for category in [
        "aws_key_id",
        "github",
        "gitlab",
        "slack",
        "stripe",
        "google",
        "huggingface",
        "npm",
        "sendgrid",
        "openai",
        "anthropic",
        "jwt",
        "pypi",
    ]:
        for _ in range(2):
            value = rng.choice(SECRET_KINDS[category])[1](c)
            c.put(log, f"{stamp()} INFO [worker-{rng.randint(1, 9)}] request ok in {rng.randint(3, 900)}ms")
            c.put(
                log,
                f"{stamp()} DEBUG client configured with credential {value} (from cache)",
                category,
                True,
                value,
            )
    for _ in range(8):
        token = c.mixed(B64URL, rng.randint(24, 40))
        c.put(log, f"{stamp()} DEBUG > GET /v2/orders HTTP/1.1")
        c.put(log, f"{stamp()} DEBUG > Authorization: Bearer {token}", "auth_header", True, token)
    for _ in range(4):
        token = base64.b64encode(f"deploy:{c.password()}".encode()).decode()
        c.put(
            "docs/api.md",
            f'    curl -H "Authorization: Basic {token}" https://api.internal/v1/status',
            "auth_header",
            True,
            token,
        )
        c.put("docs/api.md", "")
    for _ in range(4):
        token = c.mixed(ALNUM, 32)
        c.put(
            "app/clients.py",
            f'    headers = {{"Authorization": "Bearer {token}"}}',
            "auth_header",
            True,
            token,
        )
        c.put(
            "web/server/index.js",
            f"  headers: {{ Authorization: 'Token {token}' }},",
            "auth_header",
            True,
            token,
        )
    for _ in range(3):
        value = SECRET_KINDS["github"][0][1](c)
        c.put(
            "scripts/mirror.sh", f"git clone https://{value}@github.com/acme/infra.git", "github", True, value
        )
        value = SECRET_KINDS["npm"][0][1](c)
        c.put(".npmrc", f"//registry.npmjs.org/:_authToken={value}", "npm", True, value)
        c.put(".npmrc", "@acme:registry=https://npm.acme.dev/")

    # 3. URLs with a password.
    schemes = ["postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp", "https"]
    for i in range(14):
        pw = c.password().replace("@", "").replace("/", "").replace(":", "").replace("#", "").replace("?", "")
        url = f"{rng.choice(schemes)}://{rng.choice(['app', 'admin', 'svc_billing', 'deploy'])}:{pw}@{rng.choice(HOSTS)}:{rng.randint(1000, 9999)}/main"
        fmt = ["yaml", "ini", "py", "toml", "js", "log"][i % 6]
        if fmt == "log":
            c.put(log, f"{stamp()} INFO connecting to {url}", "url_password", True, pw)
        else:
            b.assign(fmt, "database_url", url, "url_password", True)
            c.items[-1].value = pw
    c.put("requirements/pip.conf", "[global]")
    pw = c.mixed(ALNUM, 20)
    c.put(
        "requirements/pip.conf", f"index-url = https://ci:{pw}@pypi.acme.dev/simple", "url_password", True, pw
    )

    # 4. Private keys: PEM files, embedded in code, a service-account JSON on one line.
    for i, kind in enumerate(["rsa", "ec", "pkcs8", "openssh", "rsa", "pkcs8"]):
        block = pem(c, kind)
        if i < 3:
            c.put(f"deploy/keys/service{i}.pem", block, "private_key", True, block.split("\n")[1])
        elif i == 3:
            c.put(
                "app/signing.py",
                "SIGNING_KEY = '''" + block + "'''",
                "private_key",
                True,
                block.split("\n")[1],
            )
        else:
            c.put("ops/terraform/main.tf", "  private_key = <<EOT")
            c.put("ops/terraform/main.tf", f"{block}\nEOT", "private_key", True, block.split("\n")[1])
    sa = "config/gcp-service-account.json"
    c.put(sa, "{")
    c.put(sa, '  "type": "service_account",')
    c.put(sa, f'  "project_id": "acme-{rng.randint(1000, 9999)}",')
    c.put(sa, f'  "private_key_id": "{c.chars(HEX, 40)}",', "key_id", False)
    body = "\\n".join(pem(c, "pkcs8").split("\n"))
    c.put(sa, f'  "private_key": "{body}\\n",', "private_key", True, body[40:70])
    c.put(sa, f'  "client_email": "deploy@acme-{rng.randint(1000, 9999)}.iam.gserviceaccount.com",')
    c.put(sa, f'  "client_id": "{rng.randint(10**20, 10**21)}"')
    c.put(sa, "}")

    # 5. Shapes outside the rules' names.
    for _ in range(2):
        key = c.mixed(B64, 86) + "=="
        conn = f"DefaultEndpointsProtocol=https;AccountName=acme{rng.randint(10, 99)};AccountKey={key};EndpointSuffix=core.windows.net"
        c.put("config/storage.ini", f"[blob_{len(c.files.get('config/storage.ini', []))}]")
        c.put("config/storage.ini", f"connection_string = {conn}", "other", True, key)
        key = base64.urlsafe_b64encode(bytes(rng.randrange(256) for _ in range(32))).decode()
        c.put("app/crypto.py", f'ENCRYPTION_KEY = b"{key}"', "other", True, key)
        key = c.chars(HEX, 64)
        c.put("config/production.yaml", f'  signing_key: "{key}"', "other", True, key)
    pw = c.password()
    c.put("deploy/netrc", f"machine api.heroku.com login ops@acme.dev password {pw}", "other", True, pw)

    # 6. Near-misses, and notebooks with a secret in a cell and an image in an output.
    near_misses(c, b, stamp)
    notebook(c)
    # close the JSON files
    for path, lines in c.files.items():
        if path.endswith("credentials.json"):
            lines[-1] = lines[-1].rstrip(",")
            lines.extend(["  }", "}"])
    return c


def notebook(c: Corpus) -> None:
    rng = c.rng
    for n in range(3):
        path = f"notebooks/analysis_{n}.ipynb"
        c.put(
            path,
            '{\n "cells": [\n  {\n   "cell_type": "code",\n   "execution_count": 1,\n   "metadata": {},\n   "outputs": [],\n   "source": [',
        )
        c.put(path, '    "import os\\n",')
        c.put(path, '    "import openai\\n",')
        key = SECRET_KINDS["openai"][0][1](c) if n != 1 else SECRET_KINDS["huggingface"][0][1](c)
        category = "openai" if n != 1 else "huggingface"
        name = "openai.api_key" if n != 1 else "HF_TOKEN"
        c.put(path, f'    "{name} = \\"{key}\\"\\n",', category, True, key)
        pw = c.password()
        c.put(
            path,
            f'    "conn = psycopg2.connect(host=\\"{rng.choice(HOSTS)}\\", user=\\"analyst\\", password=\\"{pw}\\")\\n",',
            "password",
            True,
            pw,
        )
        c.put(
            path,
            '    "os.environ[\\"WANDB_API_KEY\\"] = os.environ.get(\\"WANDB_KEY\\", \\"\\")\\n",',
            "code_reference",
            False,
        )
        c.put(path, '    "token = os.environ[\\"HF_TOKEN\\"]"')
        c.items.append(Item(path, len(c.files[path]), False, "code_reference"))
        c.put(
            path,
            '   ]\n  },\n  {\n   "cell_type": "code",\n   "execution_count": 2,\n   "metadata": {},\n   "outputs": [\n    {\n     "data": {',
        )
        png = "iVBORw0KGgoAAAANSUhEUgAA" + c.chars(B64, 400)
        c.put(path, f'      "image/png": "{png}",', "base64_image", False)
        c.put(
            path,
            '      "text/plain": [\n       "<Figure size 640x480 with 1 Axes>"\n      ]\n     },\n     "metadata": {},\n     "output_type": "display_data"\n    }\n   ],',
        )
        c.put(
            path,
            '   "source": [\n    "df.plot()"\n   ]\n  }\n ],\n "metadata": {"kernelspec": {"name": "python3"}},\n "nbformat": 4,\n "nbformat_minor": 5\n}',
        )


def near_misses(c: Corpus, b: Builder, stamp: Callable[[], str]) -> None:
    rng = c.rng

    def sha() -> str:
        return c.chars(HEX, 40)

    def sha256() -> str:
        return c.chars(HEX, 64)

    # git SHAs
    for _ in range(5):
        c.put("CHANGELOG.md", f"- Fix retry on timeout ({sha()[:12]})")
        c.put("CHANGELOG.md", f"  commit {sha()}", "git_sha", False)
    c.put(".pre-commit-config.yaml", "repos:")
    for repo in ["pre-commit/pre-commit-hooks", "astral-sh/ruff-pre-commit", "psf/black"]:
        c.put(".pre-commit-config.yaml", f"  - repo: https://github.com/{repo}")
        c.put(".pre-commit-config.yaml", f"    rev: {sha()}", "git_sha", False)
        c.put(".pre-commit-config.yaml", "    hooks: [{id: check-yaml}]")
    for fmt in ["py", "toml", "yaml", "json"]:
        b.assign(fmt, "pinned_commit", sha(), "git_sha", False)
    for _ in range(3):
        c.put("logs/deploy.log", f"{stamp()} INFO deployed revision {sha()} to production", "git_sha", False)
    # sha256 digests
    for _ in range(4):
        c.put(
            "SHA256SUMS",
            f"{sha256()}  dist/app-{rng.randint(1, 9)}.{rng.randint(0, 20)}.tar.gz",
            "sha256",
            False,
        )
    c.put("Dockerfile", f"FROM python:3.12-slim@sha256:{sha256()}", "sha256", False)
    c.put("Dockerfile", f"ARG TINI_SHA256={sha256()}", "sha256", False)
    c.put("Dockerfile", "RUN pip install --no-cache-dir -r requirements.txt")
    for fmt in ["toml", "yaml", "ini", "py"]:
        b.assign(fmt, "checksum_sha256", sha256(), "sha256", False)
    c.put("requirements.txt", f"requests==2.32.3 \\\n    --hash=sha256:{sha256()}", "sha256", False)
    c.put("requirements.txt", f"urllib3==2.2.2 \\\n    --hash=sha256:{sha256()}", "sha256", False)
    # UUIDs
    for fmt in ["yaml", "json", "py", "ini", "js"]:
        b.assign(fmt, "tenant_id", c.uuid(), "uuid", False)
    for _ in range(5):
        c.put(
            "logs/app.log",
            f"{stamp()} INFO GET /api/v1/items/{c.uuid()} 200 request_id={c.uuid()}",
            "uuid",
            False,
        )
    # npm lock integrity hashes and poetry lock hashes
    lock = "web/package-lock.json"
    c.put(lock, '{\n  "name": "web",\n  "lockfileVersion": 3,\n  "packages": {')
    for name in ["react", "lodash", "axios", "zod", "vite", "esbuild"]:
        c.put(
            lock,
            f'    "node_modules/{name}": {{\n      "version": "{rng.randint(1, 18)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",\n      "resolved": "https://registry.npmjs.org/{name}/-/{name}-1.0.0.tgz",',
        )
        c.put(lock, f'      "integrity": "sha512-{c.chars(B64, 86)}==",', "lock_hash", False)
        c.put(lock, '      "license": "MIT"\n    },')
    c.put(lock, '    "": {"name": "web"}\n  }\n}')
    plock = "poetry.lock"
    for name in ["requests", "pydantic", "httpx", "anyio"]:
        c.put(
            plock,
            f'[[package]]\nname = "{name}"\nversion = "2.{rng.randint(0, 9)}.0"\noptional = false\nfiles = [',
        )
        for _ in range(2):
            c.put(
                plock,
                f'    {{file = "{name}-2.0.0-py3-none-any.whl", hash = "sha256:{sha256()}"}},',
                "lock_hash",
                False,
            )
        c.put(plock, "]\n")
    c.put(
        "yarn.lock",
        f'"left-pad@^1.3.0":\n  version "1.3.0"\n  resolved "https://registry.yarnpkg.com/left-pad/-/left-pad-1.3.0.tgz#{sha()}"',
    )
    c.put("yarn.lock", f"  integrity sha512-{c.chars(B64, 86)}==", "lock_hash", False)
    # test fixtures
    fixtures = [
        ('    password = "test"', "py"),
        ('    client.login(username="alice", password="password")', "py"),
        ('    api_key = "test-key"', "py"),
        ('    token = "fake-token"', "py"),
        ("  password: test", "yaml"),
        ("  password: secret", "yaml"),
        ('  const password = "password";', "js"),
        ("password = testpass", "ini"),
        ('    secret = "s3cret"', "py"),
        ('  it("rejects a bad token", () => login({ token: "invalid" }));', "js"),
        ("  api_key: test", "yaml"),
        ('    assert check_password("hunter2") is False', "py"),
    ]
    for line, fmt in fixtures:
        path = {
            "py": "tests/test_auth.py",
            "yaml": "tests/fixtures/users.yaml",
            "js": "web/src/auth.test.js",
            "ini": "tests/fixtures/test.ini",
        }[fmt]
        if path.endswith(".yaml") and path not in c.files:
            c.put(path, "user:")
        c.put(path, line, "test_fixture", False)
    # placeholders and references to secrets kept elsewhere
    placeholders = [
        ("config/settings.ini", "password = changeme"),
        ("config/settings.ini", "api_key = <your-api-key>"),
        ("config/settings.ini", "token = ${API_TOKEN}"),
        ("deploy/values.yaml", "  password: ${DB_PASSWORD}"),
        ("deploy/values.yaml", '  api_key: "{{ .Values.apiKey }}"'),
        ("deploy/values.yaml", "  client_secret: '********'"),
        ("ci/release.yml", "      GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}"),
        ("ci/release.yml", "      NPM_TOKEN: ${{ secrets.NPM_TOKEN }}"),
        ("ci/release.yml", "      TWINE_PASSWORD: ${{ secrets.PYPI_TOKEN }}"),
        ("docs/api.md", "    curl -H 'Authorization: Bearer <token>' https://api.internal/v1/status"),
        ("docs/api.md", '    curl -H "Authorization: Bearer $API_TOKEN" https://api.internal/v1/status'),
        ("docs/setup.md", "Set `OPENAI_API_KEY=sk-...` in your shell before running."),
        ("docs/setup.md", "    DATABASE_URL=postgres://user:password@localhost:5432/app"),
        ("config/example.toml", 'secret_key = "your-secret-key-here"'),
        ("config/example.toml", 'api_key = "YOUR_API_KEY"'),
        ("config/example.toml", 'token = "xxxxxxxxxxxxxxxxxxxxxxxx"'),
        ("app/config.js", "  apiKey: process.env.STRIPE_API_KEY,"),
        ("app/config.js", "  password: process.env.DB_PASSWORD || '',"),
        ("src/main/resources/application.properties", "spring.datasource.password=${DB_PASSWORD}"),
        ("scripts/deploy.sh", 'export AWS_SECRET_ACCESS_KEY="$AWS_SECRET"'),
        ("scripts/deploy.sh", "export TOKEN=$(vault read -field=token secret/ci)"),
    ]
    for path, line in placeholders:
        if path == "ci/release.yml" and path not in c.files:
            c.put(path, "jobs:\n  release:\n    runs-on: ubuntu-latest\n    env:")
        c.put(path, line, "placeholder", False)
    code_refs = [
        ("app/auth.py", "    password = request.form['password']"),
        ("app/auth.py", '    token = os.environ["TOKEN"]'),
        ("app/auth.py", '    api_key = os.getenv("API_KEY")'),
        ("app/auth.py", "    secret = settings.SECRET_KEY"),
        ("app/auth.py", "    password = get_password(user)"),
        ("app/auth.py", "    self.token = token"),
        ("app/auth.py", "    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())"),
        ("web/src/api.js", "  const token = await getAccessToken();"),
        ("web/src/api.js", "  headers: { Authorization: `Bearer ${token}` },"),
        ("web/src/api.js", "  const apiKey = config.apiKey;"),
        ("app/models.py", "    password_hash = db.Column(db.String(128))"),
        ("app/models.py", "    api_key = models.CharField(max_length=64, unique=True)"),
        ("scripts/deploy.sh", 'PASSWORD="$(cat /run/secrets/db_password)"'),
    ]
    for path, line in code_refs:
        c.put(path, line, "code_reference", False)
    prose = [
        ("config/production.yaml", "llm:\n  max_tokens: 4096", 1),
        ("config/production.yaml", "  token_limit: 8192", 0),
        ("config/production.yaml", "  auth: true", 0),
        ("config/production.yaml", "  password_min_length: 12", 0),
        (
            "deploy/k8s.yaml",
            "        - name: DB_PASSWORD\n          valueFrom:\n            secretKeyRef:\n              name: db-credentials\n              key: password",
            4,
        ),
        ("docs/setup.md", "Rotate the API key every 90 days; the token expires after an hour.", 0),
        ("app/settings.py", "TOKEN_TTL_SECONDS = 3600", 0),
        ("app/settings.py", "AUTH_BACKEND = 'django.contrib.auth.backends.ModelBackend'", 0),
        ("app/settings.py", "PASSWORD_HASHERS = ['django.contrib.auth.hashers.Argon2PasswordHasher']", 0),
    ]
    for path, text, offset in prose:
        lines = text.split("\n")
        for i, line in enumerate(lines):
            c.put(path, line, "keyword_prose" if i >= offset else "", False)
    # base64 images
    for _ in range(3):
        img = "iVBORw0KGgoAAAANSUhEUgAA" + c.chars(B64, 300)
        c.put(
            "web/public/index.html",
            f'<img alt="logo" src="data:image/png;base64,{img}">',
            "base64_image",
            False,
        )
        c.put("docs/README.md", f"![chart](data:image/png;base64,{img[:200]})", "base64_image", False)
    c.put(
        "web/src/styles.css",
        f".icon {{ background: url(data:image/svg+xml;base64,{c.chars(B64, 240)}); }}",
        "base64_image",
        False,
    )
    # SSH / PGP public keys, a certificate
    for kind in ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQ"]:
        for _ in range(2):
            c.put(
                "deploy/authorized_keys",
                f"{kind}{c.chars(B64, 300 if 'rsa' in kind else 43)} ops@{rng.choice(WORDS)}",
                "public_key",
                False,
            )
    c.put("KEYS.asc", "-----BEGIN PGP PUBLIC KEY BLOCK-----", "public_key", False)
    c.put("KEYS.asc", "")
    for _ in range(5):
        c.put("KEYS.asc", c.chars(B64, 64), "public_key", False)
    c.put("KEYS.asc", "-----END PGP PUBLIC KEY BLOCK-----")
    c.put("deploy/ca.pem", "-----BEGIN CERTIFICATE-----", "public_key", False)
    for _ in range(4):
        c.put("deploy/ca.pem", c.chars(B64, 64), "public_key", False)
    c.put("deploy/ca.pem", "-----END CERTIFICATE-----")
    # ids in URLs
    for _ in range(3):
        c.put(
            "docs/links.md",
            f"- Design doc: https://docs.google.com/document/d/{c.mixed(B64URL, 44)}/edit",
            "url_id",
            False,
        )
        c.put(
            "docs/links.md",
            f"- Demo: https://drive.google.com/file/d/{c.mixed(B64URL, 33)}/view?usp=sharing",
            "url_id",
            False,
        )
        c.put(
            "docs/links.md",
            f"- Dashboard: https://grafana.acme.dev/d/{c.mixed(ALNUM, 9)}/api?orgId=1&var-trace={c.chars(HEX, 32)}",
            "url_id",
            False,
        )
        c.put(
            "docs/links.md",
            f"- Build: https://github.com/acme/app/actions/runs/{rng.randint(10**9, 10**10)}",
            "url_id",
            False,
        )
    b.assign(
        "yaml",
        "download_url",
        f"https://cdn.acme.dev/releases/{c.mixed(ALNUM, 32)}/app.tar.gz",
        "url_id",
        False,
    )
    b.assign("py", "callback_url", f"https://api.acme.dev/hooks/{c.mixed(B64URL, 28)}?v=2", "url_id", False)


# ---- scanning ---------------------------------------------------------------------------------
def make_repo(corpus: Corpus, root: Path) -> None:
    corpus.write(root)
    env = {
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@localhost",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@localhost",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "commit", "-q", "-m", "corpus"], cwd=root, check=True, env=env
    )


def ours(root: Path) -> set[tuple[str, int]]:
    rules = builtin()
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    found: set[tuple[str, int]] = set()
    for name in sorted(n for n in listed.decode().split("\0") if n):
        if rules.allowlist.allows_path(name):
            continue
        text = (root / name).read_bytes().decode("utf-8", errors="replace")
        hits, _ = find(text, name, rules)
        found.update((name, h.line) for h in hits)
    return found


def anchor_bin() -> Path:
    env = cache_dir() / "ds-venv"
    tool = env / "bin" / "detect-secrets"
    if not (env / "ds_ready").exists():
        if not (env / "bin" / "python").exists():
            venv.create(env, with_pip=True)
        subprocess.run([str(env / "bin" / "pip"), "install", "--quiet", "detect-secrets"], check=True)
        (env / "ds_ready").write_text("ok\n", encoding="utf-8")
    return tool


def anchor(root: Path) -> tuple[set[tuple[str, int]], str]:
    tool = anchor_bin()
    version = subprocess.run(
        [str(tool), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    out = subprocess.run(
        [str(tool), "scan", "--all-files"], cwd=root, capture_output=True, text=True, check=True
    )
    results = json.loads(out.stdout)["results"]
    return {(path, f["line_number"]) for path, findings in results.items() for f in findings}, version


# ---- scoring ----------------------------------------------------------------------------------
@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(
    corpus: Corpus, found: set[tuple[str, int]]
) -> tuple[Score, set[tuple[str, int]], set[tuple[str, int]]]:
    secrets = {(i.path, i.line) for i in corpus.items if i.secret}
    counted = {f for f in found if f not in corpus.ignored}
    s = Score(tp=len(counted & secrets), fp=len(counted - secrets), fn=len(secrets - counted))
    return s, counted - secrets, secrets - counted


_LONG = re.compile(r"[A-Za-z0-9+/_=.\-]{16,}")


def redacted(corpus: Corpus, path: str, line: int) -> str:
    text = corpus.files[path][line - 1]
    for item in corpus.items:
        if item.path == path and item.line == line and item.value:
            text = text.replace(item.value, f"{item.value[:4]}…[{len(item.value)}]")
    text = _LONG.sub(lambda m: m.group(0)[:6] + "…", text)
    return text.strip()[:110]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--keep", type=Path, help="write the corpus here (an empty directory) and keep it")
    p.add_argument("--verbose", action="store_true", help="also list the anchor's misses and false alarms")
    args = p.parse_args()
    corpus = build(args.seed)
    root = args.keep or Path(tempfile.mkdtemp(prefix="onrecord-secrets-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        make_repo(corpus, root)
        mine = ours(root)
        theirs, version = anchor(root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    n_secret = sum(i.secret for i in corpus.items)
    print(
        f"corpus: {len(corpus.files)} files, {len(corpus.items)} labelled lines ({n_secret} secrets, {len(corpus.items) - n_secret} near-misses), seed {args.seed}"
    )
    print(f"anchor: {version}\n")
    s_ours, fp_ours, fn_ours = score(corpus, mine)
    s_ds, fp_ds, fn_ds = score(corpus, theirs)
    print(f"{'':24}{'ours':>22}{'detect-secrets':>22}")
    print(f"{'precision':24}{s_ours.precision:>22.3f}{s_ds.precision:>22.3f}")
    print(f"{'recall':24}{s_ours.recall:>22.3f}{s_ds.recall:>22.3f}")
    for label, attr in [("true positives", "tp"), ("false positives", "fp"), ("false negatives", "fn")]:
        print(f"{label:24}{getattr(s_ours, attr):>22}{getattr(s_ds, attr):>22}")

    counted_ours = {f for f in mine if f not in corpus.ignored}
    counted_ds = {f for f in theirs if f not in corpus.ignored}
    by_cat: dict[str, list[Item]] = defaultdict(list)
    for item in corpus.items:
        by_cat[item.category].append(item)
    print(f"\n{'secret category':24}{'n':>4}{'ours found':>14}{'recall':>8}{'ds found':>12}{'recall':>8}")
    for cat in SECRET_CATEGORIES:
        items = by_cat.get(cat, [])
        a = sum((i.path, i.line) in counted_ours for i in items)
        d = sum((i.path, i.line) in counted_ds for i in items)
        n = len(items)
        print(f"{cat:24}{n:>4}{a:>14}{a / n:>8.2f}{d:>12}{d / n:>8.2f}")
    print(f"\n{'near-miss category':24}{'n':>4}{'ours flagged':>14}{'':>8}{'ds flagged':>12}")
    for cat in sorted({i.category for i in corpus.items if not i.secret}):
        items = by_cat[cat]
        a = sum((i.path, i.line) in counted_ours for i in items)
        d = sum((i.path, i.line) in counted_ds for i in items)
        print(f"{cat:24}{len(items):>4}{a:>14}{'':>8}{d:>12}")
    unlabelled = {f for f in fp_ours if not any((i.path, i.line) == f for i in corpus.items)}
    print(
        f"{'(unlabelled lines)':24}{'':>4}{len(unlabelled):>14}{'':>8}{len({f for f in fp_ds if not any((i.path, i.line) == f for i in corpus.items)}):>12}"
    )

    def listing(title: str, places: set[tuple[str, int]]) -> None:
        print(f"\n{title} ({len(places)}):")
        for path, line in sorted(places):
            print(f"  {path}:{line}: {redacted(corpus, path, line)}")

    listing("our false positives", fp_ours)
    listing("our false negatives", fn_ours)
    if args.verbose:
        listing("detect-secrets false positives", fp_ds)
        listing("detect-secrets false negatives", fn_ds)
    ok = s_ours.recall >= s_ds.recall and s_ours.precision >= 0.9
    print(
        f"\ngoal (recall >= anchor's {s_ds.recall:.3f}, precision >= 0.9): "
        f"{'met' if ok else 'NOT met'} (ours: recall {s_ours.recall:.3f}, precision {s_ours.precision:.3f})"
    )


if __name__ == "__main__":
    main()
