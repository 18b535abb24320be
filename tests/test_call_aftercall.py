"""After each call, on a real call store (SQLite) and a real HTTP receiver on 127.0.0.1: the webhook's delivery
state is stored try by try, a receiver that is down at first gets it later, a webhook a stopped worker left
pending is sent at the next start, and a summary that cannot be written stores nothing and logs one line.
(The summary from the real LLM: tests/test_calls_page.py, after a real call.)"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from calls import webhook
from calls.aftercall import AfterCall
from calls.models import now
from stack.settings import Settings
from tests.support.webhook_receiver import TEST_SECRET as SECRET
from tests.support.webhook_receiver import Receiver, ReceiverThread, free_port

pytestmark = pytest.mark.unit


def settings(url: str, **extra: str) -> Settings:
    return Settings.of(**{"CALL_WEBHOOK_URL": url, "CALL_WEBHOOK_SECRET": SECRET, "CALL_SUMMARIES": "false", **extra})


def ended_call(store, room="call-_+15550123_abc", ended_ago=timedelta(0)) -> str:
    call_id = store.start_call(room=room, kind="phone", caller_number="+15550123", dialled_number="+15550100")
    store.add_turn(call_id, role="user", text="When are you open?")
    store.add_turn(call_id, role="assistant", text="Monday to Friday, 9 to 5.")
    store.end_call(call_id, "caller_hung_up", at=now() - ended_ago)
    return call_id


def test_a_call_that_ends_is_sent_to_the_webhook_with_its_transcript(store):
    async def run():
        receiver = Receiver()
        url = await receiver.start()
        running = {"call-_+15550123_abc"}
        runner = AfterCall(store, settings(url), first_wait=0.05, running_rooms=lambda: running)
        try:
            runner.expect("call-_+15550123_abc")
            runner.expect("web-unrelated")  # another of this worker's calls, still going
            assert await runner.poll() == []  # not ended yet: nothing to do
            call_id = ended_call(store)
            ended_call(store, room="call-_+15550777_other")  # another worker's call: not ours to send
            assert await runner.poll() == []  # ended, but its job still writes its last turns and recording
            running.clear()
            started = await runner.poll()
            await runner.wait()
            return call_id, started, receiver.received, runner.expected
        finally:
            await receiver.stop()
    call_id, started, received, still_expected = asyncio.run(run())
    assert len(started) == 1 and list(still_expected) == ["web-unrelated"]
    (headers, body), = received
    assert webhook.verify(SECRET, headers, body) and headers["X-Webhook-Id"] == call_id
    sent = json.loads(body)
    assert sent["event"] == "call.ended" and sent["call"]["id"] == call_id
    assert sent["call"]["end_reason"] == "caller_hung_up" and sent["call"]["caller_number"] == "+15550123"
    assert [t["text"] for t in sent["call"]["turns"]] == ["When are you open?", "Monday to Friday, 9 to 5."]
    stored = store.get_call(call_id)
    assert (stored.webhook_state, stored.webhook_attempts, stored.webhook_last_error) == ("delivered", 1, None)


def test_a_receiver_down_at_first_gets_it_and_each_try_is_stored(store):
    async def run():
        port, receiver = free_port(), Receiver([503])
        runner = AfterCall(store, settings(f"http://127.0.0.1:{port}/hook"), first_wait=0.5)
        call_id = ended_call(store)
        sending = asyncio.create_task(runner.send_webhook(call_id))
        while (during := store.get_call(call_id)).webhook_attempts == 0:  # until the first try has failed ...
            await asyncio.sleep(0.02)
        await receiver.start(port)  # ... and the second waits its second
        try:
            delivery = await sending
        finally:
            await receiver.stop()
        return call_id, during, delivery
    call_id, during, delivery = asyncio.run(run())
    assert (during.webhook_state, during.webhook_attempts) == ("pending", 1)
    assert "ConnectError" in during.webhook_last_error
    assert delivery.delivered and delivery.attempts == 3  # refused connection, 503, delivered
    stored = store.get_call(call_id)
    assert (stored.webhook_state, stored.webhook_attempts, stored.webhook_last_error) == ("delivered", 3, None)


def test_a_receiver_that_stays_down_leaves_a_failed_state(store):
    port = free_port()
    runner = AfterCall(store, settings(f"http://127.0.0.1:{port}/hook", CALL_WEBHOOK_ATTEMPTS="3"), first_wait=0.05)
    call_id = ended_call(store)
    asyncio.run(runner.send_webhook(call_id))
    stored = store.get_call(call_id)
    assert (stored.webhook_state, stored.webhook_attempts) == ("failed", 3)
    assert "ConnectError" in stored.webhook_last_error


def test_a_webhook_left_pending_by_a_stopped_worker_is_sent_at_the_next_start(store):
    old = ended_call(store, ended_ago=timedelta(minutes=10))
    store.set_webhook_state(old, "pending", error="HTTP 503", attempted=True)
    store.set_webhook_state(old, "pending", error="HTTP 503", attempted=True)
    fresh = ended_call(store, room="call-_+15550123_fresh")  # another worker may be sending this one right now
    store.set_webhook_state(fresh, "pending")

    async def run():
        receiver = Receiver()
        url = await receiver.start()
        runner = AfterCall(store, settings(url), first_wait=0.05)
        try:
            await runner.retry_pending()
            await runner.wait()
        finally:
            await receiver.stop()
        return receiver.received
    received = asyncio.run(run())
    assert [headers["X-Webhook-Id"] for headers, _ in received] == [old]
    stored = store.get_call(old)
    assert (stored.webhook_state, stored.webhook_attempts) == ("delivered", 3)  # the earlier tries count
    assert store.get_call(fresh).webhook_state == "pending"


def test_a_call_too_fresh_for_the_first_pass_is_sent_once_it_is_old_enough(store):
    """A worker restarted right after a call (its summary still waiting) leaves a pending webhook that the next start's
    first pass must not touch yet; the second pass sends it, and leaves the new worker's own calls alone."""
    before = ended_call(store, room="call-_+15550123_before")
    store.set_webhook_state(before, "pending")

    async def run():
        receiver = Receiver()
        url = await receiver.start()
        runner = AfterCall(store, settings(url), first_wait=0.05)
        started_at = now()
        own = ended_call(store, room="call-_+15550123_own")  # this worker's, finished by its own poll
        store.set_webhook_state(own, "pending")
        try:
            first = await runner.retry_pending()
            later = await runner.retry_left_over(started_at, wait_s=0)
            await runner.wait()
        finally:
            await receiver.stop()
        return first, later, own, receiver.received
    first, later, own, received = asyncio.run(run())
    assert first == [] and [call_id for call_id, _ in later] == [before]
    assert [headers["X-Webhook-Id"] for headers, _ in received] == [before]
    assert store.get_call(before).webhook_state == "delivered" and store.get_call(own).webhook_state == "pending"


def test_no_secret_marks_the_webhook_failed_with_one_line(store, caplog):
    runner = AfterCall(store, Settings.of(CALL_WEBHOOK_URL="http://127.0.0.1:9/hook"))
    call_id = ended_call(store)
    with caplog.at_level(logging.ERROR, "calls.aftercall"):
        asyncio.run(runner.send_webhook(call_id))
    assert store.get_call(call_id).webhook_state == "failed"
    assert len(caplog.records) == 1 and "CALL_WEBHOOK_SECRET" in caplog.records[0].getMessage()


def test_a_summary_that_fails_stores_nothing_logs_one_line_and_the_webhook_still_goes(store, caplog):
    """The LLM is unreachable (nothing listens at its URL): no summary, one warning, the webhook is sent."""
    async def run():
        receiver = Receiver()
        url = await receiver.start()
        unreachable = f"http://127.0.0.1:{free_port()}/v1"
        runner = AfterCall(store, settings(url, CALL_SUMMARIES="true", OPENAI_BASE_URL=unreachable),
                           first_wait=0.05)
        try:
            call_id = ended_call(store)
            await runner.finish(call_id)
        finally:
            await receiver.stop()
        return call_id, receiver.received
    with caplog.at_level(logging.WARNING, "calls.aftercall"):
        call_id, received = asyncio.run(run())
    stored = store.get_call(call_id)
    assert stored.summary is None and stored.outcome is None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"no summary for call {call_id}: APIConnectionError: Connection error."]
    assert len(received) == 1 and stored.webhook_state == "delivered"


def test_on_local_models_a_summary_waits_until_no_call_has_run_for_the_quiet_time(store):
    """Beside a live call a summary takes a core and the LLM from its caller: quiet_line() returns only once the
    running rooms have been empty for quiet_s, and gives up waiting after max_wait_s on a line that is never quiet."""
    running = {"call-_+15550123_live"}
    runner = AfterCall(store, settings("http://127.0.0.1:9/hook"), running_rooms=lambda: running, quiet_s=0.4)

    async def quiet_after_the_call_ends(call_lasts_s: float) -> float:
        started = time.monotonic()
        waiting = asyncio.create_task(runner.quiet_line(max_wait_s=30))
        await asyncio.sleep(call_lasts_s)
        assert not waiting.done()  # the call still runs
        running.clear()
        await waiting
        return time.monotonic() - started

    waited = asyncio.run(quiet_after_the_call_ends(0.6))
    assert 0.6 + 0.4 - 0.1 <= waited < 0.6 + 0.4 + 0.5  # running rooms are looked at every quiet_s / 4

    running.add("call-_+15550123_endless")
    started = time.monotonic()
    asyncio.run(runner.quiet_line(max_wait_s=0.8))
    assert 0.8 <= time.monotonic() - started < 1.3
    assert AfterCall(store, settings("http://127.0.0.1:9/hook"), running_rooms=lambda: running).quiet_s == 0


def test_a_webhook_whose_summary_was_still_waiting_when_the_worker_stopped_is_sent_at_the_next_start(store):
    async def run():
        receiver = Receiver()
        url = await receiver.start()
        unreachable = f"http://127.0.0.1:{free_port()}/v1"  # no summary will come: the webhook goes without it
        busy = {"call-_+15550999_live"}
        waiting = AfterCall(store, settings(url, CALL_SUMMARIES="true", OPENAI_BASE_URL=unreachable),
                            running_rooms=lambda: busy, quiet_s=30)
        try:
            waiting.expect("call-_+15550123_abc")
            call_id = ended_call(store)
            task, = await waiting.poll()
            await asyncio.sleep(0.5)
            assert store.get_call(call_id).webhook_state == "pending"  # on record before the summary's wait
            assert not task.done() and receiver.received == []  # the summary waits for a quiet line
            task.cancel()  # the worker stops
            restarted = AfterCall(store, settings(url, CALL_SUMMARIES="true", OPENAI_BASE_URL=unreachable),
                                  first_wait=0.05)
            (sent_id, delivery), = await restarted.retry_pending(older_than=timedelta(0))
        finally:
            await receiver.stop()
        return call_id, sent_id, delivery, receiver.received
    call_id, sent_id, delivery, received = asyncio.run(run())
    assert sent_id == call_id and delivery.delivered
    assert [headers["X-Webhook-Id"] for headers, _ in received] == [call_id]
    assert store.get_call(call_id).webhook_state == "delivered"


def test_calls_deliver_sends_what_is_pending_now(store, call_store_url, tmp_path):
    """`python cli.py calls deliver`, with the receiver up again after the agent stopped."""
    from cli import app

    pending = ended_call(store)
    store.set_webhook_state(pending, "pending", error="HTTP 503", attempted=True)
    delivered = ended_call(store, room="call-_+15550123_done")
    store.set_webhook_state(delivered, "delivered", attempted=True)
    serving = ReceiverThread(Receiver())
    with serving as receiver:
        env = {"PHONE_RUN_DIR": str(tmp_path / "run"), "PHONE_ENV_FILE": str(tmp_path / "no.env"),
               "DATABASE_URL": call_store_url, "CALL_WEBHOOK_URL": serving.url, "CALL_WEBHOOK_SECRET": SECRET}
        first = CliRunner().invoke(app, ["calls", "deliver"], env=env)
        again = CliRunner().invoke(app, ["calls", "deliver"], env=env)
        unset = CliRunner().invoke(app, ["calls", "deliver"], env={**env, "CALL_WEBHOOK_URL": ""})
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"{pending}: delivered after 2 tries"
    assert [headers["X-Webhook-Id"] for headers, _ in receiver.received] == [pending]
    assert store.get_call(pending).webhook_state == "delivered"
    assert again.output.strip() == "no end-of-call webhooks are pending"
    assert unset.exit_code != 0 and "CALL_WEBHOOK_URL is not set" in str(unset.exception)  # cli.py: one line
