"""Where notifications may go (the platform's outbound policy, review M11, for webhooks and SMTP).

Always refused: link-local (169.254.0.0/16 — which holds the cloud metadata endpoint 169.254.169.254
— and fe80::/10), other cloud metadata addresses, unspecified, multicast and broadcast addresses,
and the platform's own endpoints (the services' ports, its database and Redis: a webhook must not
POST into the platform). An admin can refuse more networks (``OPSC_AUDIT_NOTIFY_DENY_NETWORKS``,
e.g. ``127.0.0.0/8,10.0.0.0/8``). A host name is resolved first and every address it resolves to
must pass. Loopback is allowed by default: the system email sender is often a local relay.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from opsconductor_shared.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALWAYS_DENIED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("100.100.100.200/32", "cloud metadata"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("::/128", "unspecified"),
    ("fe80::/10", "link-local"),
    ("fd00:ec2::254/128", "cloud metadata"),
    ("ff00::/8", "multicast"),
)
RESOLVE_TIMEOUT_S = 5.0


class DestinationDenied(ValidationError):
    """The notification's destination is not allowed (the message says why)."""


def _networks(text: str) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for item in (i.strip() for i in text.split(",")):
        if item:
            out.append(ipaddress.ip_network(item, strict=False))
    return out


def _endpoint(text: str) -> tuple[str, int] | None:
    if "://" not in text:
        text = f"tcp://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port or {"http": 80, "https": 443, "redis": 6379, "postgres": 5432}.get(parts.scheme)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    return (host, port) if host and port else None


class DestinationPolicy:
    def __init__(self, *, deny_networks: str = "", platform_endpoints: Iterable[str] = ()) -> None:
        self.denied: list[tuple[IPNetwork, str]] = [
            (ipaddress.ip_network(net), why) for net, why in ALWAYS_DENIED
        ] + [(net, "an admin-denied network") for net in _networks(deny_networks)]
        self.platform: set[tuple[str, int]] = set()
        for text in platform_endpoints:
            if text and not text.startswith("sqlite"):
                found = _endpoint(text)
                if found is not None:
                    self.platform.add(found)

    def reason(self, ip: IPAddress, port: int) -> str | None:
        plain = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
        for net, why in self.denied:
            if plain.version == net.version and plain in net:
                return f"{why} addresses are not allowed"
        for host, p in self.platform:
            if p != port:
                continue
            try:
                if ipaddress.ip_address(host) == plain:
                    return "it is one of the platform's own endpoints"
            except ValueError:
                if host == "localhost" and plain.is_loopback:
                    return "it is one of the platform's own endpoints"
        return None

    async def check(self, host: str, port: int, *, field: str = "target") -> None:
        """DestinationDenied (a ValidationError naming ``field``) unless every address of ``host`` may be reached."""
        host = host.strip("[]")
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                raise DestinationDenied(f"host {host!r} could not be resolved", field=field) from None
            addresses = [ipaddress.ip_address(str(i[4][0]).split("%", 1)[0]) for i in infos]
        for ip in addresses:
            why = self.reason(ip, port)
            if why is not None:
                raise DestinationDenied(f"sending to {host} port {port} is refused: {why}", field=field)

    async def check_url(self, url: str, *, field: str = "target") -> None:
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise DestinationDenied("invalid URL", field=field) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DestinationDenied("a webhook target must be an http(s) URL", field=field)
        if parts.username or parts.password:
            raise DestinationDenied("a webhook URL may not carry credentials", field=field)
        await self.check(parts.hostname, port, field=field)
