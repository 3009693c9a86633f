"""The canonical form of a URL argument: what the policy matches and what the tool is given.

A rule written `deploy.*(url=https://prod.*)` must see `HTTPS://PROD.example.com:443/x/../h` as the
URL it is, and the tool must fetch the URL the rule saw. So a URL-kind value (`common.kinds.URL`) is
rewritten once, before the policy decides, into one spelling per target:

- parsed as httpx parses it (the tools fetch through httpx), so the parts are the parts fetched;
- scheme and host lower-case, percent-escapes in the host decoded, the host in IDNA (`xn--`) form,
  one trailing dot dropped;
- a host that is an IPv4 address in any form the resolver accepts (`2852039166`, `0xa9.254.169.254`,
  `0251.254.169.254`, `169.254.43518`) written as a dotted quad; IPv6 compressed, with an embedded
  IPv4-mapped address dotted;
- the scheme's default port dropped; an empty http(s) path written `/`;
- in path and query, escapes of unreserved characters decoded and hex digits upper-case (RFC 3986
  §6.2.2), then `.` and `..` segments removed.

The result is a fixed point: canonical(canonical(u)) == canonical(u).
"""

from __future__ import annotations

import ipaddress
import re
import string

from common.errors import OnrecordError

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


class URLError(OnrecordError):
    """A URL argument cannot be parsed."""


def canonical_url(text: str) -> str:
    """The canonical spelling of URL `text` (see the module docstring).

    Raises:
        URLError: httpx cannot parse it (the tool could not fetch it either).
    """
    # Parsing the canonical text again must give it back: the tool parses what the rules matched.
    # A spelling httpx re-reads differently once (an escape that becomes a separator) settles on
    # the next pass; one that does not settle is refused.
    current = _once(text)
    for _ in range(3):
        again = _once(current)
        if again == current:
            return current
        current = again
    raise URLError(f"url {text!r} has no stable canonical form; pass a plain http(s) URL")


def _once(text: str) -> str:
    import httpx  # on first use of a URL argument: server start does not pay for the HTTP stack

    try:
        url = httpx.URL(text)
        scheme = url.scheme.lower()
        host = _host(url.raw_host.decode("ascii"))
        port = url.port
        if port is not None and _DEFAULT_PORTS.get(scheme) == port:
            port = None
        raw = url.raw_path.decode("ascii")
        path, sep, query = raw.partition("?")
        path = _remove_dots(_unescape(path)) if path.startswith("/") else _unescape(path)
        if not path and host and scheme in ("http", "https"):
            path = "/"
        raw_path = path + sep + (_unescape(query) if sep else "")
        if host:
            url = url.copy_with(scheme=scheme, host=host, port=port, raw_path=raw_path.encode("ascii"))
        else:
            url = url.copy_with(scheme=scheme, raw_path=raw_path.encode("ascii"))
        return str(url)
    except (httpx.InvalidURL, ValueError, TypeError, UnicodeError) as exc:
        raise URLError(f"url {text!r} is not a valid URL: {exc}") from exc


def _host(host: str) -> str:
    if not host:
        return host
    if "%" in host:
        host = _decode_escapes(host)
    if ":" in host:  # IPv6 (httpx has taken the brackets off)
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            return host.lower()
        mapped = address.ipv4_mapped
        return f"::ffff:{mapped}" if mapped is not None else str(address)
    host = host.lower()
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    dotted = _ipv4(host)
    if dotted is not None:
        return dotted
    if not host.isascii():
        import idna

        host = idna.encode(host, uts46=True).decode("ascii")
    return host


def _ipv4(host: str) -> str | None:
    """The dotted quad of a host the resolver (inet_aton) reads as an IPv4 address, else None."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
            numbers.append(int(part[2:] or "0", 16))
        elif re.fullmatch(r"0[0-7]+", part):
            numbers.append(int(part, 8))
        elif re.fullmatch(r"[1-9][0-9]*|0", part):
            numbers.append(int(part))
        else:
            return None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return str(ipaddress.IPv4Address(value))


def _decode_escapes(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _unescape(text: str) -> str:
    """Decode escapes of unreserved characters; upper-case the hex digits of the rest."""
    if "%" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        char = chr(int(m.group(1), 16))
        return char if char in _UNRESERVED else "%" + m.group(1).upper()

    return _ESCAPE.sub(one, text)


def _remove_dots(path: str) -> str:
    """RFC 3986 §5.2.4 remove_dot_segments on an absolute path."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


_PATTERN = re.compile(r"(?s)([^:/?#]*)://([^/?#]*)(.*)")
_GLOB = frozenset("*?[")


def url_pattern(pattern: str) -> tuple[str, str | None]:
    """A rule's glob for a URL argument with its scheme and host spelled as `canonical_url` spells
    them (lower-case, IDNA, one trailing dot and the scheme's default port dropped), and why that
    could not be done when it could not: capitals beside glob characters in the scheme or host,
    where a `*` may also stand for part of the path, are left as written."""
    m = _PATTERN.fullmatch(pattern)
    if m is None:
        return pattern, None
    scheme, authority, rest = m.groups()
    userinfo, at, host = authority.rpartition("@")
    if _GLOB.intersection(scheme + host):
        if scheme == scheme.lower() and host == host.lower() and host.isascii():
            return pattern, None
        return pattern, (
            f"{scheme}://{host} holds capitals (or non-ASCII) beside glob characters; URL arguments "
            "are matched with a lower-case scheme and host, so write them in lower case"
        )
    scheme, host = scheme.lower(), host.lower()
    port = ""
    if (colon := host.rfind(":")) > host.rfind("]") and host[colon + 1 :].isdigit():
        host, port = host[:colon], host[colon:]
        if _DEFAULT_PORTS.get(scheme) == int(port[1:]):
            port = ""
    if host.endswith(".") and not host.endswith(".."):
        host = host[:-1]
    if not host.isascii():
        import idna

        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            return pattern, f"host {host!r} is not a valid international name ({exc})"
    return f"{scheme}://{userinfo}{at}{host}{port}{rest}", None
