"""Outbound HTTP for open-world tools: which hosts may be called and which addresses are refused.

A host must be listed in the server's `allowed_hosts` (humans' settings only). It is resolved once;
if any address it resolves to is inside this machine or its networks (loopback, private, link-local
and cloud metadata, carrier-grade NAT, reserved, multicast, unspecified, and IPv4 hidden in IPv6
forms) it is refused unless `allow_private_hosts` names it. The caller connects to the address this
module returned (`pinned`), so the address checked is the address connected to.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from common.errors import OnrecordError

if TYPE_CHECKING:
    import httpx

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}


class HostRefused(OnrecordError):
    """A URL whose host is not allowed, or resolves to an address that is refused."""


def inner_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is inside this machine or its networks; None for a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = inner_reason(embedded)
            return f"{inner} (inside IPv6 {address})" if inner else None
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a carrier-grade NAT address"
    if address.is_private:
        return "a private address"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return "a reserved, multicast or unspecified address"
    return None


@dataclass(frozen=True)
class Target:
    url: httpx.URL
    host: str
    port: int
    address: str  # the pinned IP address, as text


def check_url(url: httpx.URL, allowed_hosts: list[str], section: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL whose host the settings allow."""
    if url.scheme not in ("http", "https"):
        raise HostRefused(f"url {str(url)!r}: only http and https URLs are called")
    host = url.host
    if not host:
        raise HostRefused(f"url {str(url)!r} has no host")
    if url.userinfo:
        raise HostRefused(f"url {str(url)!r} carries credentials; they are never sent")
    port = url.port or (443 if url.scheme == "https" else 80)
    if host not in allowed_hosts and f"{host}:{port}" not in allowed_hosts:
        raise HostRefused(
            f"host {host!r} is not in [{section}] allowed_hosts; a human adds it to the settings "
            "(the project's own file may not) before it may be called"
        )
    return host, port


async def pin(url: httpx.URL, allowed_hosts: list[str], allow_private: list[str], section: str) -> Target:
    """Check the URL's host, resolve it once and return the address to connect to."""
    host, port = check_url(url, allowed_hosts, section)
    try:
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise HostRefused(f"host {host!r} cannot be resolved: {exc.strerror or exc}") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise HostRefused(f"host {host!r} resolves to no address")
    if host not in allow_private:
        for address in addresses:
            reason = inner_reason(address)
            if reason:
                raise HostRefused(
                    f"host {host!r} resolves to {address}, {reason}; such hosts are refused unless "
                    f"[{section}] allow_private_hosts names the host"
                )
    return Target(url, host, port, str(addresses[0]))


def pinned_request_url(target: Target) -> httpx.URL:
    """The URL with its host replaced by the pinned address (the Host header and TLS name keep the host)."""
    return target.url.copy_with(host=target.address)
