"""check_http against real loopback servers: healthy, slow, failing, redirecting, TLS near expiry."""

from __future__ import annotations

import html
import ipaddress
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from clients.review import only, render_timeline
from clients.review_page import build_app
from common.audit import verify_file
from common.net import inner_reason
from tests.helpers import err, of_type, ok, records, settings_for

pytestmark = pytest.mark.anyio

SEEN_HOSTS: list[str] = []
SEEN_PATHS: list[str] = []
ADMIN_PAGE = b"admin console: root password is hunter2"


class Service(BaseHTTPRequestHandler):
    redirect_to = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        SEEN_HOSTS.append(self.headers.get("Host", ""))
        SEEN_PATHS.append(self.path)
        if self.path.lower().startswith("/admin"):
            return self._send(200, ADMIN_PAGE)
        if self.path == "/health":
            return self._send(200, json.dumps({"status": "pass"}).encode(), "application/health+json")
        if self.path == "/degraded":
            return self._send(200, json.dumps({"status": "fail"}).encode(), "application/health+json")
        if self.path == "/slow":
            time.sleep(0.6)
            return self._send(200, b"late but fine")
        if self.path == "/boom":
            return self._send(500, b"internal error")
        if self.path == "/big":
            return self._send(200, b"x" * 3_000_000)
        if self.path == "/bomb":
            # 100 MB of zeros in about 100 KB of gzip, sent whatever the client accepts.
            import gzip

            data = gzip.compress(b"\0" * 100_000_000, compresslevel=9)
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if self.path == "/gz":
            import gzip

            data = gzip.compress(b"all systems go")
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return self._send(200, b"hello world")

    def _send(self, status: int, data: bytes, kind: str = "text/plain") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _serve(tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Service)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture
def service() -> Iterator[int]:
    server, port = _serve()
    yield port
    server.shutdown()


ALLOW = '[policy]\nallow = ["deploy.check_http"]\n'


def _session(root: Path, session: Callable[..., Any], **options: Any) -> Any:
    base = {"allowed_hosts": ["localhost"], "allow_private_hosts": ["localhost"]}
    return session(root, ALLOW, **{**base, **options})


async def test_a_healthy_service_passes_with_phases_and_the_pinned_address(
    repo: Callable[..., Path], session: Any, service: int
) -> None:
    root = repo({"a.txt": "x\n"})
    SEEN_HOSTS.clear()
    async with _session(root, session) as call:
        health = ok(await call("check_http", url=f"http://localhost:{service}/health"))
        body = ok(
            await call("check_http", url=f"http://localhost:{service}/", contains="world", expect_status=200)
        )
        missing = ok(await call("check_http", url=f"http://localhost:{service}/", contains="goodbye"))
    assert health["verdict"] == "pass" and health["health_status"] == "pass"
    assert health["address"] == "127.0.0.1" and health["status"] == 200
    assert {"connect", "first_byte", "total"} <= set(health["latency_ms"])
    assert SEEN_HOSTS[0] == f"localhost:{service}"  # the Host header keeps the name
    assert body["verdict"] == "pass" and body["contains_found"] is True
    assert missing["verdict"] == "fail" and "goodbye" in missing["problems"][0]


async def test_slow_failing_degraded_and_big_answers_fail_with_the_reason(
    repo: Callable[..., Path], session: Any, service: int
) -> None:
    root = repo({"a.txt": "x\n"})
    async with _session(root, session, max_body_bytes=100_000) as call:
        slow = ok(await call("check_http", url=f"http://localhost:{service}/slow", max_latency_ms=300))
        timeout = ok(await call("check_http", url=f"http://localhost:{service}/slow", timeout_s=0.2))
        boom = ok(await call("check_http", url=f"http://localhost:{service}/boom"))
        degraded = ok(await call("check_http", url=f"http://localhost:{service}/degraded"))
        big = ok(await call("check_http", url=f"http://localhost:{service}/big"))
        bomb = ok(await call("check_http", url=f"http://localhost:{service}/bomb", contains="x"))
        gz = ok(await call("check_http", url=f"http://localhost:{service}/gz", contains="systems go"))
    assert slow["verdict"] == "fail" and "more than 300 ms" in slow["problems"][0]
    assert timeout["verdict"] == "fail" and "within 0.2 s" in timeout["problems"][0]
    assert boom["verdict"] == "fail" and boom["problems"] == ["status 500, expected 2xx"]
    assert degraded["verdict"] == "fail" and degraded["health_status"] == "fail"
    assert big["verdict"] == "pass" and big["body_truncated"] is True and big["body_bytes"] == 100_000
    # A compressed body is inflated only up to the same cap.
    assert bomb["body_bytes"] == 100_000 and bomb["body_truncated"] is True
    assert bomb["verdict"] == "fail" and "only the first bytes were read" in bomb["problems"][0]
    assert gz["verdict"] == "pass" and gz["contains_found"] is True


async def test_hosts_must_be_allowed_and_inner_addresses_are_refused_on_every_hop(
    repo: Callable[..., Path], session: Any, service: int
) -> None:
    root = repo({"a.txt": "x\n"})
    Service.redirect_to = f"http://127.0.0.1:{service}/health"
    hosts = {"allowed_hosts": ["localhost", "127.0.0.1"], "allow_private_hosts": ["localhost"]}
    async with session(root, ALLOW, **hosts) as call:
        redirected = ok(await call("check_http", url=f"http://localhost:{service}/moved"))
        direct = ok(await call("check_http", url=f"http://127.0.0.1:{service}/health"))
        unlisted = ok(await call("check_http", url="http://example.invalid/"))
        metadata = ok(await call("check_http", url="http://169.254.169.254/latest/meta-data/"))
        creds = ok(await call("check_http", url=f"http://user:pw@localhost:{service}/"))
    assert redirected["verdict"] == "fail"
    assert [h["status"] for h in redirected["redirects"]] == [302]
    assert "resolves to 127.0.0.1, a loopback address" in redirected["problems"][0]
    assert "loopback" in direct["problems"][0]
    assert "not in [deploy] allowed_hosts" in unlisted["problems"][0]
    assert "not in [deploy] allowed_hosts" in metadata["problems"][0]
    assert "credentials" in creds["problems"][0]


DENY_ADMIN = '[policy]\nallow = ["deploy.check_http"]\ndeny = ["deploy.check_http(url=*/admin*)"]\n'
ASK_ADMIN = '[policy]\nallow = ["deploy.check_http"]\nask = ["deploy.check_http(url=*/admin*)"]\n'
LOCAL = {"allowed_hosts": ["localhost"], "allow_private_hosts": ["localhost"]}


@pytest.mark.parametrize(
    "location",
    ["/admin", "/static/../Admin/", "http://LOCALHOST:{port}/%61dmin", "//localhost:{port}/./admin?next=/"],
)
async def test_a_redirect_to_a_url_a_deny_rule_names_is_never_fetched(
    repo: Callable[..., Path], session: Any, service: int, location: str
) -> None:
    root = repo({"a.txt": "x\n"})
    Service.redirect_to = location.format(port=service)
    async with session(root, DENY_ADMIN, **LOCAL) as call:
        direct = await call("check_http", url=f"http://localhost:{service}/admin")
        SEEN_PATHS.clear()
        redirected = ok(await call("check_http", url=f"http://localhost:{service}/moved", contains="hunter2"))
    assert "deny rule 'deploy.check_http(url=*/admin*)'" in err(direct)
    assert redirected["verdict"] == "fail" and redirected["contains_found"] is None
    (problem,) = redirected["problems"]
    assert problem.startswith(f"redirect to 'http://localhost:{service}/")
    assert "refused by policy and not fetched" in problem and "'deploy.check_http(url=*/admin*)'" in problem
    assert [h["status"] for h in redirected["redirects"]] == [302]
    assert SEEN_PATHS == ["/moved"]  # the admin page was never requested


async def test_a_redirect_to_a_url_an_ask_rule_names_stops_and_says_a_human_can_approve_it(
    repo: Callable[..., Path], session: Any, service: int
) -> None:
    root = repo({"a.txt": "x\n"})
    Service.redirect_to = "/admin"
    async with session(root, ASK_ADMIN, **LOCAL) as call:
        SEEN_PATHS.clear()
        redirected = ok(await call("check_http", url=f"http://localhost:{service}/moved"))
        Service.redirect_to = "/health"
        followed = ok(await call("check_http", url=f"http://localhost:{service}/moved"))
    (problem,) = redirected["problems"]
    assert "ask rule 'deploy.check_http(url=*/admin*)'" in problem and "a human can approve" in problem
    assert followed["verdict"] == "pass" and followed["health_status"] == "pass"
    assert "/admin" not in SEEN_PATHS and SEEN_PATHS.count("/health") == 1


async def test_a_call_a_human_approved_follows_redirects_but_not_to_a_url_an_ask_rule_names(
    repo: Callable[..., Path], service: int
) -> None:
    from mcp import Client
    from mcp.types import ElicitResult

    from servers.deploy.server import build_server

    root = repo({"a.txt": "x\n"})
    # No allow rule: every check_http call asks (policy.annotations.open_world), and the human says yes.
    settings = settings_for(root, '[policy]\nask = ["deploy.check_http(url=*/admin*)"]\n')
    settings.servers["deploy"] = {**settings.servers.get("deploy", {}), **LOCAL}
    questions: list[str] = []

    async def yes(context: Any, params: Any) -> ElicitResult:
        questions.append(params.message)
        return ElicitResult(action="accept", content={"approve": True})

    SEEN_PATHS.clear()
    async with Client(build_server(settings), mode="legacy", elicitation_callback=yes) as client:
        Service.redirect_to = "/health"
        followed = ok(await client.call_tool("check_http", {"url": f"http://localhost:{service}/moved"}))
        Service.redirect_to = "/admin"
        stopped = ok(await client.call_tool("check_http", {"url": f"http://localhost:{service}/moved"}))
    assert len(questions) == 2  # each call was approved, for its own URL
    assert followed["verdict"] == "pass"
    assert "ask rule 'deploy.check_http(url=*/admin*)'" in stopped["problems"][0]
    assert "/admin" not in SEEN_PATHS


TOKEN = "v1abcdef"  # `token=v1abcdef` is secret-shaped: redacted as its own piece of a URL


async def test_a_refused_redirect_leaves_a_refusal_record_of_its_call_naming_the_url_and_the_rule(
    repo: Callable[..., Path], session: Any, service: int
) -> None:
    root = repo({"a.txt": "x\n"})
    Service.redirect_to = f"/static/../Admin/?token={TOKEN}"
    probe = session(root, DENY_ADMIN, **LOCAL)
    async with probe as call:
        SEEN_PATHS.clear()
        redirected = ok(await call("check_http", url=f"http://localhost:{service}/moved"))
        Service.redirect_to = "/health"
        followed = ok(await call("check_http", url=f"http://localhost:{service}/moved"))
    (problem,) = redirected["problems"]
    assert "refused by policy and not fetched" in problem and followed["verdict"] == "pass"
    assert SEEN_PATHS == ["/moved", "/moved", "/health"]  # the admin page was never requested
    server = probe.server
    kinds = [r["type"] for r in records(server)]
    assert kinds == ["session_start", "call", "refusal", "result", "call", "result"]
    (first, second), (refusal,) = of_type(server, "call"), of_type(server, "refusal")
    assert refusal["call_id"] == first["call_id"] and refusal["tool"] == "deploy.check_http"
    # The target as the policy matched it (canonical), with the secret-shaped piece hidden by itself.
    target = f"http://localhost:{service}/Admin/?token=[REDACTED:secret_assignment]"
    assert refusal["targets"] == {"url": [target]}
    assert refusal["redactions"] == [{"rule": "secret_assignment", "where": "targets.url"}]
    assert "arguments" not in refusal  # nothing but the URL differs from the call's own
    assert refusal["via"] == "redirect"
    decision = refusal["decision"]
    assert decision["rule"] == "deploy.check_http(url=*/admin*)" and decision["action"] == "deny"
    assert decision["effective"] == "deny" and "deny rule" in decision["reason"]
    assert decision["source"] and decision["source"].endswith(".toml")
    first_result, second_result = of_type(server, "result")
    assert first_result["refusals"] == 1 and "refusals" not in second_result
    assert first["decision"]["action"] == second["decision"]["action"] == "allow"
    # The chain verifies with the new record in it, and nothing secret reached the log.
    report = verify_file(server.audit.path) if server.audit.path else None
    assert report is not None and report.ok and not report.problems
    assert TOKEN not in server.audit.path.read_text(encoding="utf-8")  # type: ignore[union-attr]
    # The reviewer's views show it under its call: the timeline, and `--only denied`.
    timeline = render_timeline(report.records)
    assert "refusal" in timeline and "deploy.check_http(url=*/admin*)" in timeline
    assert f'url = ["{target}"]' in timeline
    denied = only(report.records, "denied")
    assert [r["type"] for r in denied] == ["call", "refusal", "result"]
    web = TestClient(build_app(probe.settings.audit_path, "t0ken"))
    session_page = f"/session/{server.audit.path.stem}"  # type: ignore[union-attr]
    page = web.get(session_page, params={"token": "t0ken"}).text
    assert "refused via redirect, deny: not reached" in page and html.escape(target) in page
    assert "1 of 2 call(s)" in web.get(session_page, params={"token": "t0ken", "decision": "deny"}).text
    assert "1 of 1 session(s)" in web.get("/", params={"token": "t0ken", "decision": "deny"}).text


async def test_a_redirect_an_ask_rule_names_is_recorded_as_an_ask_refusal(
    repo: Callable[..., Path], session: Any, service: int
) -> None:
    root = repo({"a.txt": "x\n"})
    Service.redirect_to = "/admin"
    probe = session(root, ASK_ADMIN, **LOCAL)
    async with probe as call:
        ok(await call("check_http", url=f"http://localhost:{service}/moved"))
    (refusal,) = of_type(probe.server, "refusal")
    assert refusal["decision"]["action"] == "ask" and refusal["decision"]["effective"] == "ask"
    assert refusal["targets"] == {"url": [f"http://localhost:{service}/admin"]}
    assert only(records(probe.server), "asked")[1]["type"] == "refusal"


async def test_in_shadow_mode_a_redirect_the_policy_would_refuse_is_followed_and_recorded(
    repo: Callable[..., Path], session: Any, service: int
) -> None:
    root = repo({"a.txt": "x\n"})
    Service.redirect_to = "/admin"
    probe = session(root, DENY_ADMIN.replace("[policy]\n", '[policy]\nmode = "shadow"\n'), **LOCAL)
    async with probe as call:
        SEEN_PATHS.clear()
        redirected = ok(await call("check_http", url=f"http://localhost:{service}/moved"))
    assert redirected["verdict"] == "pass" and SEEN_PATHS == ["/moved", "/admin"]
    (refusal,) = of_type(probe.server, "refusal")
    assert refusal["decision"]["action"] == "deny" and refusal["decision"]["enforced"] is False
    assert refusal["decision"]["effective"] == "allow"
    assert "deny (shadow)" in render_timeline(records(probe.server))


async def test_an_allow_rule_written_with_capitals_allows_the_host_it_names_and_no_other(
    repo: Callable[..., Path], session: Any, service: int
) -> None:
    root = repo({"a.txt": "x\n"})
    policy = f'[policy]\nallow = ["deploy.check_http(url=HTTP://LocalHost:{service}/health*)"]\n'
    async with session(root, policy, **LOCAL) as call:
        SEEN_PATHS.clear()
        allowed = ok(await call("check_http", url=f"http://localhost:{service}/health"))
        other = await call("check_http", url=f"http://localhost:{service}/admin")
    assert allowed["verdict"] == "pass"
    assert "Needs approval" in err(other) and SEEN_PATHS == ["/health"]


async def test_the_project_file_cannot_allow_hosts_or_trust_certificates(
    repo: Callable[..., Path], service: int
) -> None:
    from servers.deploy.server import build_server

    root = repo(
        {
            "pyproject.toml": '[tool.onrecord.deploy]\nallowed_hosts = ["localhost"]\n'
            'allow_private_hosts = ["localhost"]\nca_file = "evil.pem"\n'
        }
    )
    settings = settings_for(root)
    build_server(settings)
    assert "allowed_hosts" not in settings.servers.get("deploy", {})
    refused = "\n".join(settings.refused)
    assert "deploy.allowed_hosts = ['localhost'] ignored: only the humans' settings may set it" in refused
    assert "deploy.ca_file = 'evil.pem' ignored" in refused


def _certificate(folder: Path, days: int) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(days), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_untrusted_and_near_expiry_fail(
    repo: Callable[..., Path], session: Any, tmp_path: Path
) -> None:
    cert, key = _certificate(tmp_path, days=5)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server, port = _serve(tls)
    root = repo({"a.txt": "x\n"})
    try:
        async with _session(root, session) as call:
            untrusted = ok(await call("check_http", url=f"https://localhost:{port}/health"))
        async with _session(root, session, ca_file=str(cert)) as call:
            trusted = ok(await call("check_http", url=f"https://localhost:{port}/health"))
    finally:
        server.shutdown()
    assert untrusted["verdict"] == "fail" and untrusted["problems"][0].startswith("TLS failed")
    assert trusted["tls_days_left"] in (4, 5) and trusted["health_status"] == "pass"
    assert trusted["verdict"] == "fail" and "expires in" in trusted["problems"][0]
    assert "tls" in trusted["latency_ms"]


@pytest.mark.parametrize(
    ("address", "inner"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("100.64.0.7", "a carrier-grade NAT address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("::ffff:127.0.0.1", "a loopback address (inside IPv6 ::ffff:7f00:1)"),
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address (inside IPv6 64:ff9b::a9fe:a9fe)"),
        ("2002:0a00:0001::", "a private address (inside IPv6 2002:a00:1::)"),
        ("::1", "a loopback address"),
        ("0.0.0.0", "a private address"),  # noqa: S104 - an address under test, not a bind
    ],
)
def test_inner_addresses_are_classified(address: str, inner: str | None) -> None:
    assert inner_reason(ipaddress.ip_address(address)) == inner


async def test_a_long_refused_redirect_is_clipped_in_its_record_and_its_timeline_row(
    repo: Callable[..., Path], session: Any, service: int
) -> None:
    """A Location header has no schema bound: the refusal record keeps at most 2048 characters of
    the target, and the terminal timeline one line of bounded width."""
    root = repo({"a.txt": "x\n"})
    Service.redirect_to = "/static/../Admin/" + "a" * 6000
    probe = session(root, DENY_ADMIN, **LOCAL)
    async with probe as call:
        ok(await call("check_http", url=f"http://localhost:{service}/moved"))
    (refusal,) = of_type(probe.server, "refusal")
    (target,) = refusal["targets"]["url"]
    assert target.startswith(f"http://localhost:{service}/Admin/aaa") and "more chars]" in target
    assert len(target) < 2100
    report = verify_file(probe.server.audit.path) if probe.server.audit.path else None
    assert report is not None and report.ok
    lines = [line for line in render_timeline(report.records).splitlines() if "not reached" in line]
    assert lines and all(len(line) < 300 for line in lines)
