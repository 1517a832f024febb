"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<body>`` with the channel's secret.

Headers sent with every delivery::

    X-OpsConductor-Timestamp: 1765160000            (Unix seconds)
    X-OpsConductor-Signature: v1=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>
    X-OpsConductor-Delivery: <notification log id>  (the same on every retry of one delivery)

A receiver recomputes the HMAC over the raw body, compares in constant time and refuses a
timestamp older than a few minutes (replay); :func:`verify` does all three.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-OpsConductor-Timestamp"
SIGNATURE_HEADER = "X-OpsConductor-Signature"
DELIVERY_HEADER = "X-OpsConductor-Delivery"
VERSION = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{VERSION}={mac.hexdigest()}"


def sign(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(
    secret: str, body: bytes, timestamp: str, sig: str, *, tolerance: int = 300, now: float | None = None
) -> bool:
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, ts, body), sig)
