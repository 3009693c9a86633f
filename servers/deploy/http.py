"""check_http: one health probe of a deployed service, through the open-world guard (common.net).

Each hop (the URL, then every redirect) is checked against `[deploy] allowed_hosts`, resolved once,
refused if the address is inner, and connected to at exactly that address: the request goes to the
pinned IP with the original Host header and TLS server name, and no proxy from the environment.
A redirect's target is also put to the policy in canonical form, as if the tool had been called with
it: a URL a deny or ask rule names is never fetched by way of another URL's redirect, and the audit
log keeps a `refusal` record of the call naming it.
Bodies are read up to `[deploy] max_body_bytes`.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import time
import zlib
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from pydantic import Field

from common import content, kinds, net
from common.redact import redact_text
from common.urls import URLError, canonical_url
from servers.deploy.context import DeployContext, DeployError
from servers.deploy.models import Hop, HttpCheck

if TYPE_CHECKING:
    import httpx

_HEALTHY = {"pass", "ok", "up", "healthy"}


def _tls_context(ctx: DeployContext) -> ssl.SSLContext:
    import certifi

    context = ssl.create_default_context(cafile=certifi.where())
    if ctx.options.ca_file:
        try:
            context.load_verify_locations(cafile=str((ctx.root / ctx.options.ca_file).resolve()))
        except (OSError, ssl.SSLError) as exc:
            raise DeployError(f"[deploy] ca_file {ctx.options.ca_file!r} cannot be loaded: {exc}") from exc
    return context


def _days_left(network_stream: Any) -> tuple[int | None, str | None]:
    ssl_object = network_stream.get_extra_info("ssl_object") if network_stream is not None else None
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    if not cert or "notAfter" not in cert:
        return None, None
    expires = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), tz=dt.UTC)
    return (expires - dt.datetime.now(tz=dt.UTC)).days, expires.isoformat()


class _Phases:
    """Per-phase times from httpcore's trace events."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        self.marks.setdefault(event, time.perf_counter())

    def span(self, start: str, end: str) -> float | None:
        a, b = self.marks.get(start), self.marks.get(end)
        return round((b - a) * 1000, 2) if a is not None and b is not None else None

    def first(self, suffix: str) -> float | None:
        return next((t for e, t in self.marks.items() if e.endswith(suffix)), None)


def _decoded(raw: bytes, encoding: str, cap: int) -> tuple[bytes, bool]:
    """The body decompressed to at most `cap` bytes, and whether it was cut there."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw, False
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return b"", True  # br, zstd, ...: not decoded; body checks say so
    try:
        inflater = zlib.decompressobj(47 if encoding != "deflate" else 15)
        out = inflater.decompress(raw, cap)
    except zlib.error:
        return b"", True
    return out, bool(inflater.unconsumed_tail) or len(out) >= cap


class _HopRefused(Exception):
    """A redirect the policy would not let the tool follow."""


def _next_hop(current: httpx.URL, location: str, called: dict[str, Any]) -> httpx.URL:
    """The URL a redirect leads to, in canonical form, once the policy lets this call go there."""
    import httpx

    joined = str(current.join(location))
    try:
        target = canonical_url(joined)
    except URLError as exc:
        raise _HopRefused(f"redirect to {joined!r} not followed: {exc}") from exc
    decision = content.refused_call({**called, "url": target}, via="redirect")
    if decision is not None:
        hint = (
            "; a human can approve a call of check_http with that URL" if decision.effective == "ask" else ""
        )
        raise _HopRefused(
            f"redirect to {target!r} refused by policy and not fetched: {decision.reason}{hint}"
        )
    return httpx.URL(target)


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    while exc.__cause__ is not None and not str(exc):
        exc = exc.__cause__
        text = str(exc) or text
    return redact_text(text)[0][:300]


async def check_http(
    ctx: DeployContext,
    url: Annotated[
        str,
        Field(
            description="An http(s) URL whose host [deploy] allowed_hosts lists",
            min_length=1,
            max_length=2048,
        ),
        kinds.URL,
    ],
    expect_status: Annotated[
        int | None, Field(description="The final status expected; default: any 2xx", ge=100, le=599)
    ] = None,
    max_latency_ms: Annotated[
        int | None, Field(description="Fail when the whole probe takes longer", ge=1, le=600_000)
    ] = None,
    contains: Annotated[
        str | None, Field(description="Text the body must contain", min_length=1, max_length=1000), kinds.TEXT
    ] = None,
    timeout_s: Annotated[float, Field(description="Give up after this many seconds", gt=0, le=120)] = 10,
) -> HttpCheck:
    """Probe a deployed service once: status, latency per phase (connect, TLS, first byte, total),
    TLS certificate days left, redirects (each hop checked like the first), and the `status` of an
    application/health+json body; a pass or fail verdict with the reasons. Only hosts a human listed
    in [deploy] allowed_hosts are called; loopback, private, link-local, carrier-grade NAT and cloud
    metadata addresses are refused unless [deploy] allow_private_hosts names the host."""
    # Every argument but ctx, as the call got them: a redirect is decided as this call with its URL.
    called = {k: v for k, v in locals().items() if k != "ctx"}
    import httpx  # on first use: server start does not pay for the HTTP stack

    options = ctx.options
    result = HttpCheck(url=url, verdict="fail", problems=[])
    try:
        current = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise DeployError(f"url {url!r} is not a valid URL: {exc}") from exc
    started = time.perf_counter()
    tls = _tls_context(ctx) if current.scheme == "https" or options.max_redirects else None
    body = b""
    response: httpx.Response | None = None
    phases = _Phases()
    try:
        with anyio.fail_after(timeout_s):
            async with httpx.AsyncClient(
                verify=tls or True, follow_redirects=False, trust_env=False, timeout=timeout_s
            ) as client:
                for hop in range(options.max_redirects + 1):
                    target = await net.pin(
                        current, options.allowed_hosts, options.allow_private_hosts, "deploy"
                    )
                    phases = _Phases()
                    address_url, headers, extensions = net.pinned(target)
                    request = client.build_request(
                        "GET",
                        address_url,
                        headers={
                            **headers,
                            "User-Agent": "onrecord-check-http",
                            "Accept-Encoding": "gzip, identity",
                        },
                        extensions={**extensions, "trace": phases},
                    )
                    response = await client.send(request, stream=True)
                    try:
                        result.address = target.address
                        result.status = response.status_code
                        if response.is_redirect and hop < options.max_redirects:
                            location = response.headers.get("location", "")
                            result.redirects.append(
                                Hop(
                                    url=str(current),
                                    status=response.status_code,
                                    address=target.address,
                                    location=location,
                                )
                            )
                            current = _next_hop(current, location, called)
                            continue
                        days, expires = _days_left(response.extensions.get("network_stream"))
                        result.tls_days_left, result.tls_expires = days, expires
                        # The bytes as sent, capped; decompressed below within the same cap (a
                        # small compressed body cannot become a large one in memory).
                        async for chunk in response.aiter_raw():
                            body += chunk
                            if len(body) > options.max_body_bytes:
                                body = body[: options.max_body_bytes]
                                result.body_truncated = True
                                break
                    finally:
                        await response.aclose()
                    break
    except net.HostRefused as exc:
        result.problems.append(f"refused: {exc}")
    except _HopRefused as exc:
        result.problems.append(str(exc))
    except TimeoutError:
        result.problems.append(f"no complete answer within {timeout_s:g} s")
    except httpx.HTTPError as exc:
        text = _message(exc)
        kind = "TLS" if "CERTIFICATE" in text.upper() or "SSL" in text.upper() else "connection"
        result.problems.append(f"{kind} failed: {text}")
    total = round((time.perf_counter() - started) * 1000, 2)
    result.latency_ms = {"total": total}
    for name, (a, b) in {
        "connect": ("connection.connect_tcp.started", "connection.connect_tcp.complete"),
        "tls": ("connection.start_tls.started", "connection.start_tls.complete"),
    }.items():
        if (span := phases.span(a, b)) is not None:
            result.latency_ms[name] = span
    sent, headers = (
        phases.first("send_request_headers.started"),
        phases.first("receive_response_headers.complete"),
    )
    if sent is not None and headers is not None:
        result.latency_ms["first_byte"] = round((headers - sent) * 1000, 2)
    if response is not None and body:
        body, cut = _decoded(body, response.headers.get("content-encoding", ""), options.max_body_bytes)
        result.body_truncated = result.body_truncated or cut
    result.body_bytes = len(body)
    if response is not None and not result.problems:
        _judge(result, response, body, expect_status, max_latency_ms, contains, options.min_cert_days)
    result.verdict = "fail" if result.problems else "pass"
    return result


def _judge(
    result: HttpCheck,
    response: httpx.Response,
    body: bytes,
    expect_status: int | None,
    max_latency_ms: int | None,
    contains: str | None,
    min_cert_days: int,
) -> None:
    status = response.status_code
    if response.is_redirect:
        result.problems.append(f"still redirecting after {len(result.redirects)} redirects (limit reached)")
    elif expect_status is not None and status != expect_status:
        result.problems.append(f"status {status}, expected {expect_status}")
    elif expect_status is None and not 200 <= status < 300:
        result.problems.append(f"status {status}, expected 2xx")
    if max_latency_ms is not None and result.latency_ms["total"] > max_latency_ms:
        result.problems.append(f"took {result.latency_ms['total']:.0f} ms, more than {max_latency_ms} ms")
    text = body.decode(response.encoding or "utf-8", errors="replace")
    if contains is not None:
        result.contains_found = contains in text
        if not result.contains_found:
            where = " (only the first bytes were read)" if result.body_truncated else ""
            result.problems.append(f"body does not contain {contains!r}{where}")
    if response.headers.get("content-type", "").split(";")[0].strip() == "application/health+json":
        try:
            health = json.loads(text)
            result.health_status = str(health.get("status"))[:40] if isinstance(health, dict) else None
        except json.JSONDecodeError:
            result.problems.append("application/health+json body is not JSON")
        if result.health_status is not None and result.health_status.lower() not in _HEALTHY:
            result.problems.append(f"health status {result.health_status!r}")
    if result.tls_days_left is not None and result.tls_days_left < min_cert_days:
        result.problems.append(
            f"TLS certificate expires in {result.tls_days_left} days (on {result.tls_expires}); "
            f"renew it (warning threshold [deploy] min_cert_days = {min_cert_days})"
        )
