"""The canonical form of URL arguments (common.urls)."""

from __future__ import annotations

import pytest

from common.urls import URLError, canonical_url


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("https://prod.example.com/h", "https://prod.example.com/h"),
        ("HTTPS://prod.example.com/h", "https://prod.example.com/h"),
        ("https://PROD.Example.COM/h", "https://prod.example.com/h"),
        ("https://prod.example.com:443/h", "https://prod.example.com/h"),
        ("http://prod.example.com:80/h", "http://prod.example.com/h"),
        ("https://prod.example.com:8443/h", "https://prod.example.com:8443/h"),
        ("https://prod.example.com", "https://prod.example.com/"),
        ("https://prod.example.com./h", "https://prod.example.com/h"),
        ("https://%70rod.example.com/h", "https://prod.example.com/h"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("HTTPS://BÜCHER.example/", "https://xn--bcher-kva.example/"),
        ("https://prod.example.com/ok;api_key=v1abcdef/../../admin", "https://prod.example.com/admin"),
        ("https://prod.example.com/a/%2e%2e/admin", "https://prod.example.com/admin"),
        ("https://prod.example.com/%7euser/%2fx?q=%7e%2f", "https://prod.example.com/~user/%2Fx?q=~%2F"),
        ("http://2852039166/", "http://169.254.169.254/"),
        ("http://0xa9.254.169.254/", "http://169.254.169.254/"),
        ("http://0xA9FEA9FE/", "http://169.254.169.254/"),
        ("http://0251.0xfe.43518/", "http://169.254.169.254/"),  # octal, hex and a 16-bit tail
        ("http://169.254.43518/", "http://169.254.169.254/"),
        ("http://169.254.169.254./", "http://169.254.169.254/"),
        ("http://[::FFFF:169.254.169.254]:80/", "http://[::ffff:169.254.169.254]/"),
        ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]/"),
        ("https://user:pw@prod.example.com/", "https://user:pw@prod.example.com/"),
    ],
)
def test_a_url_has_one_spelling_per_target(given: str, canonical: str) -> None:
    assert canonical_url(given) == canonical
    assert canonical_url(canonical) == canonical  # a fixed point


def test_what_is_not_an_ip_address_stays_a_name() -> None:
    assert canonical_url("http://999999999999/") == "http://999999999999/"
    assert canonical_url("http://1.2.3.example/") == "http://1.2.3.example/"


def test_a_url_httpx_cannot_parse_is_refused() -> None:
    with pytest.raises(URLError, match="not a valid URL"):
        canonical_url("http://[::1/")


def test_a_dotted_quad_with_octal_parts_is_refused_as_httpx_refuses_it() -> None:
    # The resolver would read 0251 as octal (169); httpx refuses the host, so no tool fetches it.
    with pytest.raises(URLError):
        canonical_url("http://0251.254.169.254/")
