"""check_dockerfile and check_config on fixture repositories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import err, ok

pytestmark = pytest.mark.anyio

BAD_DOCKERFILE = """\
FROM python
ARG GITHUB_TOKEN
ENV DB_PASSWORD=hunter2hunter2 \\
    PORT=8000
RUN apt-get update && apt-get install -y curl git=1:2.39.2-1 \\
    && pip install flask requests==2.32.3
ADD app/ /srv/app
CMD python /srv/app/main.py
"""

GOOD_DOCKERFILE = """\
# syntax=docker/dockerfile:1
FROM python:3.12-slim@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef AS build
RUN pip install --no-cache-dir -r requirements.txt
FROM python:3.12-slim
COPY --from=build /srv /srv
RUN useradd -r app
USER app
HEALTHCHECK CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://localhost:8000/health')"]
CMD ["python", "/srv/app/main.py"]
"""


async def test_a_bad_dockerfile_gets_each_finding_with_its_line(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"Dockerfile": BAD_DOCKERFILE})
    async with session(root) as call:
        report = ok(await call("check_dockerfile"))
    found = {(f["rule"], f["line"]) for f in report["findings"]}
    assert found == {
        ("base_latest", 1),
        ("secret_in_env", 2),
        ("secret_in_env", 3),
        ("unpinned_apt", 5),
        ("unpinned_pip", 5),
        ("add_instead_of_copy", 7),
        ("shell_form_cmd", 8),
        ("root_user", None),
        ("no_healthcheck", None),
    }
    assert report["verdict"] == "fail"
    assert "hunter2" not in str(report)
    assert report["hadolint"].startswith("skipped")
    assert all(f["fix"] for f in report["findings"])


async def test_a_good_dockerfile_passes(repo: Callable[..., Path], session: Any) -> None:
    root = repo({"deploy/Dockerfile": GOOD_DOCKERFILE})
    async with session(root) as call:
        report = ok(await call("check_dockerfile", path="deploy/Dockerfile"))
        missing = err(await call("check_dockerfile"))
        outside = err(await call("check_dockerfile", path="../../etc/passwd"))
    assert report["findings"] == [] and report["verdict"] == "pass"
    assert "Dockerfile" in missing and "cannot read" in missing
    assert "outside" in outside


async def test_config_parse_errors_name_the_line(repo: Callable[..., Path], session: Any) -> None:
    root = repo(
        {
            "app.yaml": "server:\n  port: 8080\n  hosts: [a, b\n",
            "data.json": '{"a": 1,\n "b": }\n',
            "settings.toml": "[tool]\nname = \n",
            "ok.yml": "a: 1\n---\nb: 2\n",
            "chart/templates/deploy.yaml": "replicas: {{ .Values.replicas }}\n",
            "tsconfig.json": "{ // comments are allowed here\n}\n",
        }
    )
    async with session(root) as call:
        report = ok(await call("check_config"))
    problems = {(p["path"], p["kind"], p["line"]) for p in report["problems"]}
    assert problems == {
        ("app.yaml", "parse_error", 4),
        ("data.json", "parse_error", 2),
        ("settings.toml", "parse_error", 2),
    }
    assert report["verdict"] == "fail"
    assert "skipped" in report["note"]


MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: registry.example.com/web:latest
        - name: sidecar
          image: envoyproxy/envoy:v1.30.1
          readinessProbe: {httpGet: {path: /ready, port: 9901}}
          livenessProbe: {httpGet: {path: /ready, port: 9901}}
          resources: {requests: {cpu: 100m}, limits: {memory: 128Mi}}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      containers:
        - name: migrate
          image: registry.example.com/web:1.4.2
          resources: {requests: {cpu: 100m}, limits: {memory: 256Mi}}
"""


async def test_kubernetes_workloads_without_probes_resources_or_pinned_images(
    repo: Callable[..., Path], session: Any
) -> None:
    root = repo({"k8s/web.yaml": MANIFEST})
    async with session(root) as call:
        report = ok(await call("check_config", paths=["k8s/web.yaml"]))
    kinds = sorted(p["kind"] for p in report["problems"])
    assert kinds == ["k8s_latest_image", "k8s_probes", "k8s_resources"]
    assert all("container web" in p["message"] for p in report["problems"])
    assert report["verdict"] == "warn"


ENV_ALLOWED = """
[policy]
default_denies = false
"""


async def test_env_drift_names_keys_never_values(
    repo: Callable[..., Path], session: Any, tmp_path: Path
) -> None:
    files = {
        ".env.staging": "DB_URL=postgres://db-staging/app\nFEATURE_X=1\nSENTRY_DSN=abc\n",
        ".env.production": "DB_URL=postgres://db-prod/app\nSENTRY_DSN=prod-dsn-value\n",
    }
    root = repo(files)
    async with session(root, ENV_ALLOWED) as call:
        allowed = ok(await call("check_config"))
    drift = [p for p in allowed["problems"] if p["kind"] == "env_drift"]
    assert [(p["path"], "FEATURE_X" in p["message"]) for p in drift] == [(".env.production", True)]
    assert "db-staging" not in str(allowed) and "prod-dsn-value" not in str(allowed)
    # With the default policy, .env files are denied: the drift is withheld and its file named.
    async with session(root) as call:
        default = ok(await call("check_config"))
        named = err(await call("check_config", paths=[".env.production"]))
    assert default["problems"] == [] and default["total"] == 1
    assert "policy" in default["note"]
    assert "denied" in named.lower()
