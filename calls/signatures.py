"""Signed webhook bodies for integrations with a signing secret.

Header ``X-Callbook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``. Several ``v1``
values may be sent while a secret is being rotated. A timestamp more than five minutes away from now is refused,
and so is a signature seen before (a replay), so a captured request cannot be sent again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Callbook-Signature"
TOLERANCE_SECONDS = 300

# Signatures seen by this process, used only while the shared cache (Redis) is unreachable: a replay that reaches
# this process is still refused, one sent to another process within the 5 minutes is not. Refusing every signed
# request instead would drop the calls of every signing integration for as long as Redis is down; the writes a
# replay could repeat are mostly idempotent (events by event_id, sessions by external_id).
_seen_here = LocMemCache("callbook-webhook-signatures", {"OPTIONS": {"MAX_ENTRIES": 100_000}})


class SignatureInvalid(Exception):
    pass


def signature_compute(*, secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value an integration sends; also what tests and client examples use."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={signature_compute(secret=secret, timestamp=ts, body=body)}"


def signature_verify(*, secret: str, header: str | None, body: bytes, now: float | None = None) -> None:
    """Raise SignatureInvalid with a reason a client can act on, or return when the body is authentic."""
    if not header:
        raise SignatureInvalid(f"This integration signs its requests: the {SIGNATURE_HEADER} header is missing.")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        # ASCII digits only, and few of them: str.isdigit() also accepts "²" and other digits int() refuses, and
        # int() refuses more than 4300 digits; either would be a 500 instead of this 401.
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureInvalid(f"Malformed {SIGNATURE_HEADER} header: expected 't=<unix time>,v1=<hex digest>'.")
    current = time.time() if now is None else now
    if abs(current - timestamp) > TOLERANCE_SECONDS:
        raise SignatureInvalid("The signature's timestamp is more than 5 minutes old (or in the future): refused.")
    expected = signature_compute(secret=secret, timestamp=timestamp, body=body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureInvalid("The signature does not match the body: check the signing secret.")
    if not _first_use(f"callbook:webhook-signature:{expected}"):
        raise SignatureInvalid("This signed request was already received: replays are refused.")


def _first_use(key: str) -> bool:
    # cache.add is atomic (and shared across processes with Redis): only the first use of a signature wins.
    try:
        return bool(cache.add(key, 1, timeout=2 * TOLERANCE_SECONDS))
    except Exception as exc:  # the cache backend's own connection errors (redis-py's), with no common base class
        logger.warning("webhook replay check on this process only: the shared cache is unreachable (%s)", exc)
        return bool(_seen_here.add(key, 1, timeout=2 * TOLERANCE_SECONDS))
