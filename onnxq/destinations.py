"""Where onnxq may POST to: the guard against callbacks and webhooks aimed inside the network.

Any key holder chooses a job's `callback_url`, and the worker that POSTs it sits inside the
deployment: without a guard, a callback to 127.0.0.1, 10.0.0.5 or 169.254.169.254 (cloud
metadata) makes onnxq a proxy into places its callers cannot reach. So a destination whose
address is not globally routable is refused, unless the operator lists its host name or a
network it is in (`ONNXQ_OUTBOUND_ALLOW`).

The check runs twice: on the URL at submit (a 422 that names the rule), and on the address
actually connected to at send time. The second is the one that counts: a host name can resolve
to a public address at submit and to 127.0.0.1 a minute later (DNS rebinding), so the sender
resolves once, checks every address and connects to a checked one (`connect`).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from onnxq.errors import OnnxqError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_SETTING = "ONNXQ_OUTBOUND_ALLOW"


class ForbiddenDestination(OnnxqError):
    """A callback or webhook URL that points at an address onnxq does not POST to."""

    status_code = 422
    error_type = "forbidden_destination"


def _name(host: str) -> str:
    """A host name as the allow-list compares it: case and a trailing dot do not count."""
    return host.lower().rstrip(".")


def _rule_broken(address: Address) -> str | None:
    """Which rule an address breaks, in words, or None when it is globally routable."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata endpoints live)"
    if address.is_private and not address.is_unspecified:
        return "a private-network address"
    if address.is_multicast or address.is_unspecified or not address.is_global:
        return "not a globally routable address"
    return None


@dataclass(frozen=True)
class DestinationPolicy:
    """Public addresses are allowed; others only by host name or network listed here."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> DestinationPolicy:
        """`["hooks.internal", "10.0.0.0/8", "127.0.0.1"]`: names, networks or single addresses."""
        hosts: set[str] = set()
        networks: list[Network] = []
        for entry in (raw.strip() for raw in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(_name(entry))
        return cls(frozenset(hosts), tuple(networks))

    def refusal(self, host: str, address: Address) -> str | None:
        """Why `host` at `address` may not be reached, or None when it may."""
        if _name(host) in self.hosts or any(address in n for n in self.networks):
            return None
        rule = _rule_broken(address)
        if rule is None:
            return None
        return (
            f"{host} is {address}, {rule}: onnxq does not POST to loopback, private, link-local "
            f"or other non-public addresses unless {ALLOW_SETTING} lists the host or its network"
        )

    def check_url(self, url: str, field: str = "callback_url") -> None:
        """Refuse a URL whose host is, or now resolves to, an address the policy refuses.

        A name that does not resolve yet passes: it is checked again when it is used.
        """
        host = urlsplit(url).hostname or ""
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            if _name(host) in self.hosts:
                return  # listed by name: no lookup needed
            addresses = _resolve(host, None)
        for address in addresses:
            reason = self.refusal(host, address)
            if reason is not None:
                raise ForbiddenDestination(reason, details=[{"field": field, "message": reason}])

    def connect(
        self, host: str, port: int, timeout: float | None, source: tuple[str, int] | None = None
    ) -> socket.socket:
        """Resolve `host` once, refuse it if any of its addresses is refused, connect to one.

        Any refused address refuses the host: a name that answers both a public and a private
        address would otherwise let the attacker pick.
        """
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        for *_, sockaddr in infos:
            reason = self.refusal(host, ipaddress.ip_address(sockaddr[0]))
            if reason is not None:
                raise ForbiddenDestination(reason)
        error: OSError | None = None
        for family, kind, proto, _, sockaddr in infos:
            sock = socket.socket(family, kind, proto)
            try:
                if timeout is not None:
                    sock.settimeout(timeout)
                if source is not None:
                    sock.bind(source)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error or OSError(f"{host} did not resolve")


def _resolve(host: str, port: int | None) -> list[Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(sockaddr[0]) for *_, sockaddr in infos]
