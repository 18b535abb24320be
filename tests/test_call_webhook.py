"""The end-of-call webhook against a real HTTP receiver on 127.0.0.1 (aiohttp): signed as the README says,
retried while the receiver is down, not retried when it refuses the request."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from calls import webhook
from tests.support.webhook_receiver import TEST_SECRET as SECRET
from tests.support.webhook_receiver import Receiver, free_port

pytestmark = pytest.mark.unit
PAYLOAD = {"call": {"id": "c1", "caller_number": "+15550123", "summary": "asked about hours"},
           "transcript": [{"role": "user", "text": "When are you open?"}]}


def test_the_receiver_gets_the_call_signed_and_verifies_it():
    async def run():
        receiver = Receiver()
        url = await receiver.start()
        try:
            delivery = await webhook.deliver(url, SECRET, PAYLOAD, "c1")
        finally:
            await receiver.stop()
        return delivery, receiver.received
    delivery, received = asyncio.run(run())
    assert delivery == webhook.Delivery(True, 1)
    (headers, body), = received
    assert json.loads(body) == PAYLOAD
    assert headers["X-Webhook-Id"] == "c1" and headers["Content-Type"] == "application/json"
    assert webhook.verify(SECRET, headers, body)
    assert not webhook.verify("another-secret", headers, body)
    assert not webhook.verify(SECRET, headers, body.replace(b"hours", b"prices"))
    stale = {**headers, "X-Webhook-Timestamp": str(int(headers["X-Webhook-Timestamp"]) - 301)}
    assert not webhook.verify(SECRET, stale, body)  # an old request replayed, even with its own signature


def test_a_receiver_down_at_first_gets_it_on_a_later_try():
    """Not listening at the first try, then 503, then it takes it: three tries, each stored as it happens."""
    async def run():
        port, receiver, tries = free_port(), Receiver([503]), []

        async def on_attempt(attempts: int, error: str | None):
            tries.append((attempts, error))
            if attempts == 1:
                await receiver.start(port)
        try:
            started = time.monotonic()
            delivery = await webhook.deliver(f"http://127.0.0.1:{port}/hook", SECRET, PAYLOAD, "c1", attempts=5,
                                             first_wait=0.2, on_attempt=on_attempt)
            return delivery, tries, receiver.received, time.monotonic() - started
        finally:
            await receiver.stop()
    delivery, tries, received, took = asyncio.run(run())
    assert delivery == webhook.Delivery(True, 3)
    assert tries[0][0] == 1 and "ConnectError" in tries[0][1]
    assert tries[1:] == [(2, "HTTP 503"), (3, None)]
    assert len(received) == 2 and received[0][1] == received[1][1]  # the same body, signed afresh each time
    assert took >= 0.2 + 0.4  # it waited between tries, doubling


def test_a_receiver_that_stays_down_fails_after_the_bounded_tries():
    port = free_port()
    delivery = asyncio.run(webhook.deliver(f"http://127.0.0.1:{port}/hook", SECRET, PAYLOAD, "c1", attempts=3,
                                           first_wait=0.05))
    assert not delivery.delivered and delivery.attempts == 3 and "ConnectError" in delivery.last_error


def test_tries_from_an_earlier_process_count():
    port = free_port()
    delivery = asyncio.run(webhook.deliver(f"http://127.0.0.1:{port}/hook", SECRET, PAYLOAD, "c1", attempts=5,
                                           first_wait=0.05, already_tried=4))
    assert delivery.attempts == 5


def test_a_refusal_is_not_retried():
    async def run():
        receiver = Receiver([400, 200])
        url = await receiver.start()
        try:
            return await webhook.deliver(url, SECRET, PAYLOAD, "c1", first_wait=0.05), receiver.received
        finally:
            await receiver.stop()
    delivery, received = asyncio.run(run())
    assert not delivery.delivered and delivery.attempts == 1 and "HTTP 400" in delivery.last_error
    assert len(received) == 1


def test_a_wrong_secret_is_refused_by_the_receiver():
    async def run():
        receiver = Receiver()
        url = await receiver.start()
        try:
            return await webhook.deliver(url, "not-the-secret", PAYLOAD, "c1", first_wait=0.05)
        finally:
            await receiver.stop()
    delivery = asyncio.run(run())
    assert not delivery.delivered and "HTTP 401" in delivery.last_error
