"""The address parser: what users may type, and one clear error for everything else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from castray_nb.core.address import cluster_key, is_this_machine, parse_address
from castray_nb.core.errors import InvalidAddress


@pytest.mark.parametrize(
    ("text", "kind", "host", "port"),
    [
        ("127.0.0.1:6379", "gcs", "127.0.0.1", 6379),
        ("  headnode.example:6380 ", "gcs", "headnode.example", 6380),
        ("[::1]:6379", "gcs", "::1", 6379),
        ("http://127.0.0.1:8265", "dashboard", "127.0.0.1", 8265),
        ("https://ray.example/", "dashboard", "ray.example", 443),
        ("ray://10.0.0.5:10001", "client", "10.0.0.5", 10001),
        ("auto", "auto", "", 0),
        ("127.0.0.1", "host", "127.0.0.1", 0),  # a host alone: Ray's default ports are tried
        ("MyHead", "host", "myhead", 0),
        ("[::1]", "host", "::1", 0),
        ("session_2026-11-28_00-18-10_291540_2353", "session", "", 0),
    ],
)
def test_accepted_addresses(text: str, kind: str, host: str, port: int) -> None:
    address = parse_address(text)
    assert (address.kind, address.host, address.port) == (kind, host, port)


def test_dashboard_url_keeps_a_proxy_path_and_drops_the_trailing_slash() -> None:
    assert parse_address("http://proxy.example:80/ray/dash/").url == "http://proxy.example:80/ray/dash"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("0.0.0.0", "wildcard"),
        ("::", "IPv6"),
        ("127.0.0.1:", "not a number"),
        ("127.0.0.1:abc", "not a number"),
        ("127.0.0.1:0", "out of range"),
        ("127.0.0.1:-1", "not a number"),
        ("127.0.0.1:65536", "out of range"),
        ("127.0.0.1:99999999999999999999", "out of range"),
        ("file:///etc/passwd", "unsupported scheme"),
        ("gopher://127.0.0.1:70", "unsupported scheme"),
        ("host;rm -rf /:6379", "spaces or control"),
        ("$(reboot):6379", "valid host"),
        ("`id`:6379", "valid host"),
        ("a|b:6379", "valid host"),
        ("127.0.0.1:6379\n", None),  # trailing newline is whitespace: stripped, accepted below
        ("127.0.0.1:63\x0079", "control"),
        ("x" * 5000, "longer than"),
        ("::1:6379", "IPv6"),
        ("[::1:6379", "IPv6"),
        ("[::1]6379", "IPv6"),
        ("[nothex]:6379", "valid host"),
        ("http://user:pw@127.0.0.1:8265", "credentials"),
        ("http://127.0.0.1:8265/?a=b", "query"),
        ("ray://127.0.0.1:10001/x", "no path"),
        ("http://:8265", "no host"),
        ("1.2.3:6379", "valid host"),
    ],
)
def test_rejected_addresses_say_why(text: str, why: str | None) -> None:
    if why is None:
        assert parse_address(text).port == 6379
        return
    with pytest.raises(InvalidAddress) as caught:
        parse_address(text)
    message = str(caught.value)
    assert why in message
    assert "\n" not in message and len(message) < 400
    assert "expected host:port" in message


def test_non_strings_are_invalid_addresses() -> None:
    for value in (None, 6379, b"127.0.0.1:6379", ["a"]):
        with pytest.raises(InvalidAddress):
            parse_address(value)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=60).map(lambda b: b.decode("latin-1"))))
def test_nothing_but_invalid_address_escapes(text: str) -> None:
    try:
        address = parse_address(text)
    except InvalidAddress as exc:
        assert "\n" not in str(exc)
        return
    assert address.kind in {"gcs", "dashboard", "client", "session", "auto", "host"}
    if address.kind in {"gcs", "dashboard", "client"}:
        assert 0 < address.port < 65536 and address.host
    if address.kind == "host":
        assert address.port == 0 and address.host and address.host not in ("0.0.0.0", "::")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["", "http://", "https://", "ray://", "ftp://"]),
    st.text(alphabet="0123456789abcdef.:[]-_ ;$", max_size=40),
    st.text(alphabet="0123456789-+ ", max_size=8),
)
def test_address_shaped_garbage_is_rejected_cleanly(scheme: str, host: str, port: str) -> None:
    """Rejected with one line that names the input, or accepted only as what it says."""
    text = f"{scheme}{host}:{port}"
    try:
        address = parse_address(text)
    except InvalidAddress as exc:
        assert "\n" not in str(exc) and str(exc).strip()
        return
    assert scheme != "ftp://", "an unknown scheme is never accepted"
    assert not set(address.host) & set(" ;$_"), f"{address.host!r}: not a host name"
    given = int(port) if port.strip() else {"http://": 80, "https://": 443, "ray://": 10001}[scheme]  # its default
    assert address.port == given and 0 < address.port < 65536, "the port is the digits given"
    assert address.kind == {"": "gcs", "http://": "dashboard", "https://": "dashboard", "ray://": "client"}[scheme]


def test_this_machine() -> None:
    assert is_this_machine("127.0.0.1") and is_this_machine("localhost") and is_this_machine("::1")
    assert not is_this_machine("203.0.113.9")
    assert cluster_key("127.0.0.1:6379") == cluster_key("localhost:6379")
    assert cluster_key("127.0.0.1:6379") != cluster_key("127.0.0.1:6380")
