"""The client address recorded for a login or an audited mutation (L2): believed from the router only.

The router sends ``x-opsc-client-ip`` (the socket peer it saw) and, when ``OPSC_CLIENT_IP_SECRET``
is set, ``x-opsc-client-ip-signature`` = hex HMAC-SHA256(secret, ip) (router/client-ip.ts). The
header is believed only when the request comes from a trusted proxy address
(``OPSC_AUTH_TRUSTED_PROXIES``, comma-separated addresses or networks, default loopback) and, if
the secret is set, carries a valid signature: under ``make dev`` every caller is on loopback, so
the address alone cannot tell the router from anyone else. Otherwise the socket peer is recorded.
``X-Forwarded-For`` is never believed (anyone can write it). Both come from :class:`Settings`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Mapping

CLIENT_IP_HEADER = "x-opsc-client-ip"
SIGNATURE_HEADER = "x-opsc-client-ip-signature"
DEFAULT_TRUSTED_PROXIES = "127.0.0.0/8,::1"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(spec: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def _trusted(peer: str | None, spec: str) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
        return any(address in net for net in _networks(spec))
    except ValueError:  # not an address, or a malformed OPSC_AUTH_TRUSTED_PROXIES: trust nothing
        return False


def client_ip(
    headers: Mapping[str, str], peer: str | None, *, trusted_proxies: str, secret: str | None
) -> str | None:
    """The address to record: the router's ``x-opsc-client-ip`` if vouched for, else the socket peer."""
    forwarded = (headers.get(CLIENT_IP_HEADER) or "").strip()
    try:
        ipaddress.ip_address(forwarded)
    except ValueError:
        return peer
    if not _trusted(peer, trusted_proxies or DEFAULT_TRUSTED_PROXIES):  # unset or empty: loopback
        return peer
    if secret:
        expected = hmac.new(secret.encode(), forwarded.encode(), hashlib.sha256).hexdigest().encode()
        given = (headers.get(SIGNATURE_HEADER) or "").strip().lower().encode()
        if not hmac.compare_digest(expected, given):
            return peer
    return forwarded
