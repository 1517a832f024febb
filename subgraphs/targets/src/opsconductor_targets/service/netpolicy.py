"""Where probes, connection tests and runs may connect (review M11).

The probes of ``probes.py`` run in the control plane, and runs use the credentials this service
releases: without a policy, anyone with ``targets:write`` could point a method at the platform's
own database, Redis, Ray or service ports, at loopback-only services of the control-plane host,
or at a cloud metadata endpoint, and read banners, versions or HTTP statuses back (SSRF).

Denied unless an admin lists the address in ``OPSC_TARGETS_ALLOW_NETWORKS`` (CIDRs):

- loopback (127.0.0.0/8, ::1), unspecified (0.0.0.0/8, ::), IPv4-compatible/mapped forms,
  link-local (169.254.0.0/16, fe80::/10, which holds 169.254.169.254), cloud metadata
  addresses (fd00:ec2::254, 100.100.100.200), multicast and broadcast;
- the platform's own endpoints (address *and* port): this service's database and Redis, the
  JWKS/auth URL, its own internal URL, the ``OPSC_<SERVICE>_URL`` wiring, ``OPSC_RAY_ADDRESS``
  and ``OPSC_TARGETS_PLATFORM_ENDPOINTS``. These stay denied inside an allowed network; only
  ``OPSC_TARGETS_ALLOW_PLATFORM_ENDPOINTS`` (``host:port`` entries) opens one of them.

A hostname is resolved first and **every** address it resolves to must be allowed; the probe
then connects to the checked address (``ProbeTarget.address``), so a second DNS answer cannot
send it elsewhere (DNS rebinding). The engine connects SSH/WinRM itself: for those the resolver
and the connection test check the same policy before a credential is released.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from opsconductor_targets.errors import AddressDenied
from opsconductor_targets.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "OPSC_TARGETS_ALLOW_NETWORKS"
DENIED: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("100.100.100.200/32", "cloud metadata"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("::/96", "unspecified, loopback or IPv4-compatible"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("fe80::/10", "link-local"),
    ("fd00:ec2::254/128", "cloud metadata"),
    ("ff00::/8", "multicast"),
)
WIRING_URLS = ("OPSC_AUTH_URL", "OPSC_USERS_URL", "OPSC_TARGETS_URL", "OPSC_JOBS_URL", "OPSC_EXECUTIONS_URL")
DEFAULT_PORTS = {
    "postgres": 5432,
    "postgresql": 5432,
    "redis": 6379,
    "rediss": 6379,
    "http": 80,
    "https": 443,
}
RESOLVE_TIMEOUT_S = 5.0
CACHE_TTL_S = 30.0


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


def _split_host_port(text: str, default_port: int | None) -> Endpoint | None:
    text = text.strip()
    if not text:
        return None
    if "://" not in text:
        text = f"tcp://{text}"
    try:
        parts = urlsplit(text)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, default_port or 0)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if not host or not port:
        return None
    return Endpoint(host, int(port))


def platform_endpoints(settings: Settings, environ: Mapping[str, str] | None = None) -> list[Endpoint]:
    """The platform's own endpoints this service knows of (settings and the service wiring)."""
    env = os.environ if environ is None else environ
    texts: list[tuple[str | None, int | None]] = [
        (settings.database_url, None),
        (settings.redis_url, 6379),
        (settings.jwks_url, None),
        (settings.auth_internal_url, None),
        (settings.internal_url, None),
        (f"{settings.host}:{settings.port}", None),
        *((env.get(name), None) for name in WIRING_URLS),
        (env.get("OPSC_RAY_ADDRESS"), 6379),
        *((item, None) for item in settings.platform_endpoints.split(",")),
    ]
    found: dict[Endpoint, None] = {}
    for text, default in texts:
        if text and not text.startswith("sqlite"):
            endpoint = _split_host_port(text.replace("ray://", "tcp://"), default)
            if endpoint is not None:
                found[endpoint] = None
    return list(found)


def parse_networks(text: str) -> list[IPNetwork]:
    """``'127.0.0.0/8, 10.1.2.3'`` -> networks (a ValueError names the bad entry)."""
    out: list[IPNetwork] = []
    for item in text.split(","):
        item = item.strip()
        if item:
            try:
                out.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{SETTING}: {item!r} is not a CIDR or an IP address") from None
    return out


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class NetPolicy:
    """Deny-by-default for special addresses and the platform's endpoints; see the module doc."""

    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        self.allowed = parse_networks(settings.allow_networks)
        self.denied = [(ipaddress.ip_network(net), why) for net, why in DENIED]
        self.endpoints = platform_endpoints(settings, environ)
        self.endpoint_exceptions = [
            e
            for item in settings.allow_platform_endpoints.split(",")
            if (e := _split_host_port(item.strip(), None)) is not None
        ]
        self._exception_addresses: set[tuple[IPAddress, int]] | None = None
        self._endpoint_addresses: set[tuple[IPAddress, int]] | None = None
        self._endpoints_at = 0.0
        self._cache: dict[str, tuple[float, list[IPAddress]]] = {}
        self._limit = asyncio.Semaphore(16)

    def _is_allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allowed)

    @staticmethod
    def _unmapped(ip: IPAddress) -> IPAddress:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        return ip

    def reason(self, ip: IPAddress, port: int, endpoints: set[tuple[IPAddress, int]]) -> str | None:
        """Why ``ip:port`` is denied, or None when it may be reached."""
        plain = self._unmapped(ip)
        if (plain, port) in endpoints or (ip, port) in endpoints:
            if (plain, port) not in (self._exception_addresses or set()):
                return "it is one of the platform's own endpoints"
            return None
        if self._is_allowed(ip) or self._is_allowed(plain):
            return None
        for net, why in self.denied:
            if ip.version == net.version and ip in net:
                return f"{why} addresses are denied"
            if plain is not ip and plain.version == net.version and plain in net:
                return f"{why} addresses are denied"
        return None

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        literal = _literal(host)
        if literal is not None:
            return [literal]
        now = time.monotonic()
        cached = self._cache.get(host)
        if cached is not None and now - cached[0] < CACHE_TTL_S:
            return cached[1]
        loop = asyncio.get_running_loop()
        async with self._limit:
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                raise AddressDenied(f"host {host!r} could not be resolved from the targets service") from None
        found: dict[IPAddress, None] = {}
        for info in infos:
            ip = _literal(str(info[4][0]).split("%", 1)[0])
            if ip is not None:
                found[ip] = None
        if not found:
            raise AddressDenied(f"host {host!r} could not be resolved from the targets service")
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[host] = (now, list(found))
        return list(found)

    async def _endpoint_set(self) -> set[tuple[IPAddress, int]]:
        now = time.monotonic()
        if self._endpoint_addresses is not None and now - self._endpoints_at < CACHE_TTL_S:
            return self._endpoint_addresses
        out: set[tuple[IPAddress, int]] = set()
        for endpoint in self.endpoints:
            try:
                addresses = await self._resolve(endpoint.host, endpoint.port)
            except AddressDenied:
                continue
            for ip in addresses:
                if ip.is_unspecified:  # a service bound to 0.0.0.0 / :: listens on loopback too
                    out.update({(ipaddress.ip_address("127.0.0.1"), endpoint.port)})
                    out.update({(ipaddress.ip_address("::1"), endpoint.port)})
                out.add((self._unmapped(ip), endpoint.port))
        self._endpoint_addresses, self._endpoints_at = out, now
        return out

    async def check(self, host: str, port: int) -> str:
        """The address to connect to for ``host:port`` (every resolved address checked), or
        AddressDenied naming the reason and the setting that would allow it."""
        addresses = await self._resolve(host, port)
        endpoints = await self._endpoint_set()
        if self._exception_addresses is None:
            allowed: set[tuple[IPAddress, int]] = set()
            for endpoint in self.endpoint_exceptions:
                try:
                    allowed.update(
                        (self._unmapped(a), endpoint.port)
                        for a in await self._resolve(endpoint.host, endpoint.port)
                    )
                except AddressDenied:
                    continue
            self._exception_addresses = allowed
        for ip in addresses:
            why = self.reason(ip, port, endpoints)
            if why is not None:
                shown = str(ip) if str(ip) == host else f"{ip} (of {host})"
                raise AddressDenied(
                    f"connecting to {shown} port {port} is not allowed: {why} "
                    f"(an admin can allow the network in {SETTING})"
                )
        return str(addresses[0])


def sqlite_path_allowed(path: str, directory: str) -> str | None:
    """Why the sqlite file check may not look at ``path`` (None: it may). Confined to
    ``directory`` after resolving symlinks; no directory configured refuses every path."""
    if not directory.strip():
        return (
            "sqlite file checks are disabled (set OPSC_TARGETS_SQLITE_PROBE_DIRECTORY to allow a directory)"
        )
    root = os.path.realpath(directory)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        return "the sqlite file is outside the directory file checks may look at"
    return None
