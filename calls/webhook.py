"""The end-of-call webhook: one signed JSON POST per call to CALL_WEBHOOK_URL, retried with backoff.

The scheme (README, "End-of-call webhook"), so that a receiver can check a request came from us and is fresh:

    X-Webhook-Id:        the call's id (the same on every retry: a receiver drops repeats by it)
    X-Webhook-Timestamp: Unix seconds when this attempt was sent
    X-Webhook-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with CALL_WEBHOOK_SECRET>

The timestamp is inside the signed text, so a captured request cannot be replayed later with a new timestamp; a
receiver refuses one older than a few minutes (`verify` does, with 5 minutes). Each attempt is signed afresh.

A 2xx answer is delivered. A connection failure, a timeout, 408, 425, 429 or 5xx is tried again after 4 s, then
8, 16, 32 ... (attempts bounded by CALL_WEBHOOK_ATTEMPTS); any other answer (a 4xx: the receiver refuses this
request as it is) fails at once, since sending it again would be refused the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

ID_HEADER = "X-Webhook-Id"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"
REPLAY_WINDOW_S = 300
FIRST_WAIT_S = 4.0
ATTEMPT_TIMEOUT_S = 10.0
RETRYABLE_STATUS = frozenset({408, 425, 429})


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of `<timestamp>.<body>` keyed with the secret."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(secret: str, body: bytes, webhook_id: str, now: Callable[[], float] = time.time) -> dict[str, str]:
    timestamp = int(now())
    return {"Content-Type": "application/json", "User-Agent": "phone-assistant-webhook/1",
            ID_HEADER: webhook_id, TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(secret: str, headers: Mapping[str, str], body: bytes, window_s: int = REPLAY_WINDOW_S,
           now: Callable[[], float] = time.time) -> bool:
    """What a receiver does (in Python): the signature matches the body and timestamp, and the timestamp is
    within `window_s` of now. `headers` is case-insensitive where the web framework's is (httpx, aiohttp)."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
        sent = headers[SIGNATURE_HEADER]
    except (KeyError, ValueError):
        return False
    if abs(now() - timestamp) > window_s:
        return False
    return hmac.compare_digest(sent, signature(secret, timestamp, body))


def body_of(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode()


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    last_error: str | None = None


async def deliver(url: str, secret: str, payload: Mapping[str, Any], webhook_id: str, attempts: int = 5,
                  first_wait: float = FIRST_WAIT_S, timeout: float = ATTEMPT_TIMEOUT_S, already_tried: int = 0,
                  on_attempt: Callable[[int, str | None], Awaitable[None]] | None = None) -> Delivery:
    """POSTs `payload` until it is delivered, refused, or `attempts` tries (counting `already_tried` ones, from an
    earlier process) have failed. `on_attempt(tries so far, error or None)` runs after each try, so the stored
    state follows the delivery even if this process ends half way."""
    body = body_of(payload)
    tried, error = already_tried, None
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        while tried < attempts:
            if tried > already_tried:
                await asyncio.sleep(first_wait * 2 ** (tried - already_tried - 1))
            tried += 1
            retryable = True
            try:
                response = await client.post(url, content=body, headers=signed_headers(secret, body, webhook_id))
                if response.is_success:
                    error = None
                elif response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
                    error = f"HTTP {response.status_code}"
                else:  # the receiver refuses the request as it is: sending it again would be refused too
                    error = f"HTTP {response.status_code} (not retried: the receiver refuses this request)"
                    retryable = False
            except httpx.HTTPError as failure:
                error = f"{failure.__class__.__name__}: {failure}" if str(failure) else failure.__class__.__name__
            if on_attempt:
                await on_attempt(tried, error)
            if error is None:
                return Delivery(True, tried)
            if not retryable:
                return Delivery(False, tried, error)
    return Delivery(False, tried, error or "no tries left (CALL_WEBHOOK_ATTEMPTS)")
