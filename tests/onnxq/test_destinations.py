"""DestinationPolicy: which addresses callbacks and webhooks may reach, checked at connect."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from onnxq import destinations
from onnxq.destinations import DestinationPolicy, ForbiddenDestination


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "10.0.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "fc00::1",
        "169.254.169.254",
        "fe80::1",
        "0.0.0.0",
        "::",
        "100.64.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert DestinationPolicy().refusal("h", ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert DestinationPolicy().refusal("h", ipaddress.ip_address(address)) is None


def test_parse_takes_names_networks_and_single_addresses() -> None:
    policy = DestinationPolicy.parse([" Hooks.Internal. ", "10.1.0.0/16", "127.0.0.1", ""])
    assert policy.hosts == frozenset({"hooks.internal"})
    assert policy.refusal("hooks.internal", ipaddress.ip_address("10.200.0.1")) is None
    assert policy.refusal("x", ipaddress.ip_address("10.1.2.3")) is None
    assert policy.refusal("x", ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal("x", ipaddress.ip_address("10.2.0.1")) is not None


def _resolving_to(monkeypatch: pytest.MonkeyPatch, *answers: str) -> None:
    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0)) for a in answers]

    monkeypatch.setattr(destinations.socket, "getaddrinfo", getaddrinfo)


def test_connect_refuses_a_name_when_any_of_its_addresses_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DNS rebinding: the name passed at submit; at send time it also answers loopback.
    _resolving_to(monkeypatch, "93.184.215.14", "127.0.0.1")
    with pytest.raises(ForbiddenDestination, match=r"rebind\.example is 127\.0\.0\.1, a loopback"):
        DestinationPolicy().connect("rebind.example", 80, timeout=1.0)


def test_check_url_refuses_what_a_name_resolves_to_now(monkeypatch: pytest.MonkeyPatch) -> None:
    _resolving_to(monkeypatch, "169.254.169.254")
    with pytest.raises(ForbiddenDestination, match="link-local") as raised:
        DestinationPolicy().check_url("http://metadata.example/latest")
    assert raised.value.status_code == 422
    assert raised.value.details == [{"field": "callback_url", "message": raised.value.message}]
