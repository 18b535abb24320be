"""After each call: its summary and outcome (calls/summary.py), then the end-of-call webhook (calls/webhook.py).

Where this runs, and why: in the agent worker's main process, not in the call's job process. A job process is
counted as a line until it exits, and livekit-agents kills it 10 s after the call (shutdown_process_timeout): too
short for a summary from a busy CPU model plus a minute of webhook retries, and a line held for that long turns
callers away. The main process outlives every call, so:

- the worker notes each room it accepts (`expect`); every POLL_S the runner asks the store which of those calls
  have ended, and finishes each in a task of its own (summaries one at a time: they share the CPU with calls);
- on models served from this machine, a summary waits until no call has run for `quiet_s` (at most MAX_DEFER_S):
  written at once, it took the LLM and a core from the next caller's first turns (measured: e2e about 2.0 s
  beside it, 1.2-1.5 s without) and evicted the LLM's cached prompt;
- each webhook try is stored as it happens (state pending, attempts, last error), then delivered or failed;
- a webhook still pending when the worker stopped is tried again when it starts (`retry_pending`), or by
  `python cli.py calls deliver`, counting the tries already made, after the summary if that was not written yet.
  (With summaries on and no webhook, a summary still waiting when the worker stops is not written.)

With several workers on one PostgreSQL store, each finishes the calls it ran; pending webhooks found at start may
be sent by more than one worker, so receivers drop repeats by X-Webhook-Id (the call's id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from agent.providers import ProviderChoice, choose_providers
from stack.settings import Settings

from . import webhook
from .models import WebhookState, now
from .store import CallStore
from .summary import summarize

log = logging.getLogger("calls.aftercall")
POLL_S = 2.0
# A room the worker accepted but whose call never ended in the store (its record failed) is forgotten after this.
FORGET_AFTER_S = 6 * 3600
# Pending webhooks older than this at start were left by a stopped worker (a live one finishes within ~1 min).
STALE_PENDING = timedelta(minutes=2)
EVENT = "call.ended"
QUIET_S = 10.0  # no call for this long: the line is between callers, and a summary may have the CPU
MAX_DEFER_S = 600.0  # a line busy for longer still gets its summaries (and webhooks), beside the calls


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{error.__class__.__name__}: {text[0]}" if text else error.__class__.__name__


class AfterCall:
    """Finishes ended calls: summary, then webhook. `finish(call_id)` does one; `run()` follows `expect`ed rooms."""

    def __init__(self, store: CallStore, settings: Settings, providers: ProviderChoice | None = None,
                 first_wait: float = webhook.FIRST_WAIT_S, running_rooms: Callable[[], set[str]] = set,
                 quiet_s: float = 0.0):
        self.store, self.settings = store, settings
        self.providers = providers or choose_providers(settings)
        self.first_wait = first_wait
        # The rooms whose jobs still run: their records may still be taking their last turns and recording.
        self.running_rooms = running_rooms
        self.quiet_s = quiet_s  # 0: summaries do not wait for a quiet line
        self._task: asyncio.Task | None = None
        self.expected: dict[str, tuple[float, datetime]] = {}  # room -> (monotonic, wall clock) accepted at
        self.tasks: set[asyncio.Task] = set()
        self._summaries = asyncio.Semaphore(1)

    # --- following the worker's calls ---------------------------------------------------------------------------------
    def expect(self, room: str) -> None:
        """A call in this room was accepted by this worker: finish it once it has ended."""
        self.expected[room] = (time.monotonic(), now())

    def start(self) -> None:
        """Runs in the background on this event loop (the worker's), until the process ends."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="after-call")

    async def run(self, poll_s: float = POLL_S) -> None:
        started_at = now()
        self._spawn(self.retry_pending())  # alongside: a minute of retries must not hold up this worker's calls
        self._spawn(self.retry_left_over(started_at))
        while True:
            await asyncio.sleep(poll_s)
            try:
                await self.poll()
            except Exception as error:  # the database is away for a moment: try again next time
                log.warning("could not look for ended calls: %s", one_line(error))

    async def poll(self) -> list[asyncio.Task]:
        """Starts finishing each expected call that has ended; the tasks started."""
        old = time.monotonic() - FORGET_AFTER_S
        self.expected = {room: at for room, at in self.expected.items() if at[0] > old}
        if not self.expected:
            return []
        earliest = min(at for _, at in self.expected.values()) - timedelta(seconds=5)
        ended = await asyncio.to_thread(self.store.ended_calls, list(self.expected), earliest)
        running, started = self.running_rooms(), []
        for call in ended:
            if call.room not in running and self.expected.pop(call.room, None) is not None:
                started.append(self._spawn(self.finish(call.id)))
        return started

    async def retry_pending(self, older_than: timedelta = STALE_PENDING, *, ended_before: datetime | None = None
                            ) -> list[tuple[str, webhook.Delivery | None]]:
        """Webhooks a stopped worker left pending (ended over `older_than` ago, or before `ended_before`): tried
        again, their earlier tries counting, all at once, each after its summary if that is missing; each call's id
        and how its delivery went."""
        if not self.settings.call_webhook_url:
            return []
        try:
            pending = await asyncio.to_thread(self.store.pending_webhooks, ended_before or now() - older_than)
        except Exception as error:
            log.warning("could not look for pending webhooks: %s", one_line(error))
            return []
        if pending:
            log.info("trying %d pending end-of-call webhook%s again", len(pending), "s" if len(pending) > 1 else "")
        results = await asyncio.gather(*[self._spawn(self.finish(call.id)) for call in pending],
                                       return_exceptions=True)
        for call, result in zip(pending, results, strict=True):
            if isinstance(result, Exception):
                log.warning("the webhook for call %s was not sent: %s", call.id, one_line(result))
        return [(call.id, result if isinstance(result, webhook.Delivery) else None)
                for call, result in zip(pending, results, strict=True)]

    async def retry_left_over(self, started_at: datetime, wait_s: float = STALE_PENDING.total_seconds()
                              ) -> list[tuple[str, webhook.Delivery | None]]:
        """The calls the first pass found too fresh (another worker may have been finishing them; a restart leaves
        the last calls' summaries and webhooks like that), once they are as old: those that ended before this
        worker started (the later ones are its own)."""
        await asyncio.sleep(wait_s)
        return await self.retry_pending(ended_before=started_at)

    def _spawn(self, work) -> asyncio.Task:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def wait(self) -> None:
        """Until every finishing started so far is done (tests, `calls deliver`)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    # --- one call -----------------------------------------------------------------------------------------------------
    async def finish(self, call_id: str) -> webhook.Delivery | None:
        """The summary (if missing), then the webhook (unless delivered). The webhook is marked pending first: a
        worker stopped while the summary waits leaves it for `retry_pending` at the next start."""
        if self.settings.call_webhook_url:
            call = await asyncio.to_thread(self.store.get_call, call_id)
            if call.webhook_state != WebhookState.delivered:
                await asyncio.to_thread(self.store.set_webhook_state, call_id, WebhookState.pending)
        if self.settings.call_summaries:
            await self.write_summary(call_id)
        if self.settings.call_webhook_url:
            return await self.send_webhook(call_id)
        return None

    async def write_summary(self, call_id: str) -> None:
        """The summary and outcome, stored with the call; on any failure nothing is stored and one line logged."""
        call = await asyncio.to_thread(self.store.get_call, call_id)
        if call.summary:
            return
        turns = [{"role": t.role, "text": t.text, "tool_name": t.tool_name} for t in call.turns]
        started = time.monotonic()
        try:
            async with self._summaries:
                await self.quiet_line()
                summary = await summarize(turns, self.providers)
        except Exception as error:
            log.warning("no summary for call %s: %s", call_id, one_line(error))
            return
        if summary is None:  # nobody said anything
            return
        await asyncio.to_thread(self.store.set_summary, call_id, summary.summary, summary.outcome)
        log.info("call %s summarized in %.1f s", call_id, time.monotonic() - started)

    async def quiet_line(self, max_wait_s: float = MAX_DEFER_S) -> None:
        """Returns once no call has run for `quiet_s`, or after `max_wait_s`."""
        if self.quiet_s <= 0:
            return
        now_s = time.monotonic()
        deadline, quiet_since = now_s + max_wait_s, now_s
        while (now_s := time.monotonic()) < deadline:
            if self.running_rooms():
                quiet_since = now_s
            elif now_s - quiet_since >= self.quiet_s:
                return
            await asyncio.sleep(min(POLL_S, self.quiet_s / 4))
        log.info("the line has not been quiet for %.0f s: summarizing beside the calls", max_wait_s)

    async def send_webhook(self, call_id: str) -> webhook.Delivery | None:
        url, secret = self.settings.call_webhook_url, self.settings.call_webhook_secret
        call = await asyncio.to_thread(self.store.get_call, call_id)
        if call.webhook_state == WebhookState.delivered:
            return None
        if not secret:
            await asyncio.to_thread(self.store.set_webhook_state, call_id, WebhookState.failed,
                                    error="no CALL_WEBHOOK_SECRET to sign with")
            log.error("CALL_WEBHOOK_URL is set but CALL_WEBHOOK_SECRET is empty: run `python cli.py up` to generate "
                      "one, or set it in .env; the webhook for call %s was not sent", call_id)
            return None
        payload = {"event": EVENT, "call": self.store.to_dict(call)}
        await asyncio.to_thread(self.store.set_webhook_state, call_id, WebhookState.pending)

        async def record(_: int, error: str | None) -> None:
            await asyncio.to_thread(self.store.set_webhook_state, call_id, WebhookState.pending, error=error,
                                    attempted=True)

        delivery = await webhook.deliver(url, secret, payload, call.id, attempts=self.settings.call_webhook_attempts,
                                         first_wait=self.first_wait, already_tried=call.webhook_attempts,
                                         on_attempt=record)
        state = WebhookState.delivered if delivery.delivered else WebhookState.failed
        await asyncio.to_thread(self.store.set_webhook_state, call_id, state, error=delivery.last_error)
        if delivery.delivered:
            log.info("end-of-call webhook for call %s delivered (try %d)", call_id, delivery.attempts)
        else:
            log.warning("end-of-call webhook for call %s failed after %d tries: %s", call_id, delivery.attempts,
                        delivery.last_error)
        return delivery
