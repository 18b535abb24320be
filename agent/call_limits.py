"""Limits the assistant keeps on a call, each ended politely: the caller always hears why the call ends.

- **A silent caller.** After `silence` seconds in which neither side spoke (livekit-agents' user_away_timeout marks
  the caller "away"), the assistant asks "Are you still there?". Silent for as long again, the caller hears goodbye
  and the call ends; a word from them starts the count afresh.
- **The maximum duration.** The trunk's SIP_MAX_CALL_DURATION travels with the call, as an attribute the dispatch
  rule puts on the SIP participant (sip/provisioning.py). `wrap_up` seconds before it, the assistant says the call has
  reached its time limit and ends it, before livekit-sip would cut the line mid-sentence. (livekit-sip counts from the
  INVITE; the agent counts from the room's creation, which is as near as it can see.)
- **Calls at once from one number.** `too_many_from_caller()` tells the worker to turn away a caller who already has
  AGENT_MAX_CALLS_PER_CALLER calls under way (a stuck redialler, or a script), with a sentence, not silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from calls.models import EndNote, EndReason, no_note

log = logging.getLogger("agent")

STILL_THERE = "Are you still there?"
SILENT_GOODBYE = "I haven't heard anything, so I'll end the call now. Please call again any time. Goodbye."
TIME_LIMIT_GOODBYE = ("I'm sorry, we've reached the time limit for this call. Thank you for calling, and please "
                      "call again if you need anything else. Goodbye.")
ALREADY_CALLING = "It looks like you already have a call with us in progress. Please call again later. Goodbye."
MAX_DURATION_ATTRIBUTE = "phone_assistant.max_call_duration"  # the same as sip/provisioning.py's


def seconds_since(moment, at_most: float = 600.0) -> float:
    """Seconds from a timezone-aware datetime (a room's creation time) to now; 0 when it is unknown or not
    believable (a call rings at most a few minutes before the agent joins)."""
    if moment is None or moment.timestamp() <= 0:
        return 0.0
    elapsed = (datetime.now(UTC) - moment).total_seconds()
    return elapsed if 0 <= elapsed <= at_most else 0.0


def max_duration_of(attributes: dict[str, str]) -> float | None:
    """The call's maximum duration in seconds, from the SIP participant's attributes; None when none is set."""
    try:
        seconds = float(attributes.get(MAX_DURATION_ATTRIBUTE, ""))
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def caller_key(room_name: str, room_prefix: str) -> str | None:
    """Which caller a call's room belongs to: rooms are `<prefix>_<number>_<random>` (one per call); None for other
    rooms (the playground's)."""
    if not room_name.startswith(room_prefix):
        return None
    key, _, suffix = room_name.rpartition("_")
    return key if key and suffix else None


def too_many_from_caller(room_name: str, running_rooms: Iterable[str], room_prefix: str, limit: int) -> bool:
    """Whether a new call in `room_name` would exceed `limit` calls at once from its caller."""
    key = caller_key(room_name, room_prefix)
    if key is None or limit <= 0:
        return False
    return sum(1 for name in running_rooms if name != room_name and caller_key(name, room_prefix) == key) >= limit


class CallLimits:
    """Watches one call's session; `start()` once the session runs. End-of-call sentences go through `say`
    (text -> awaitable that finishes when spoken), then `hang_up()` ends the session (and so the call)."""

    def __init__(self, session, *, silence: float | None, max_duration: float | None, wrap_up: float = 20.0,
                 started_ago: float = 0.0, clock=time.monotonic, note_end: EndNote = no_note) -> None:
        self.session = session
        self.note_end = note_end  # the call record's: why the session is about to end
        self.silence = silence
        self.max_duration = max_duration
        self.wrap_up = wrap_up
        # How long the call had been going when the session started: livekit-sip counts the maximum duration from
        # the INVITE, and the agent may join seconds later on a busy machine.
        self.started_ago = max(started_ago, 0.0)
        self.clock = clock
        self.started_at = clock()
        self.asked = False
        self.ending = False
        self._tasks: set[asyncio.Task] = set()

    def start(self) -> None:
        self.session.on("close", lambda _event: self.cancel())
        if self.silence:
            self.session.on("user_state_changed", self._on_user_state)
        if self.max_duration:
            # The goodbye is queued after the greeting, whatever the delay.
            delay = max(self.max_duration - self.wrap_up - self.started_ago, 0.0)
            log.info("time limit %.0f s; the call began %.1f s before the session; goodbye in %.0f s",
                     self.max_duration, self.started_ago, delay)
            self._spawn(self._time_limit(delay))

    def _spawn(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def listening(self) -> bool:
        """False while the caller is on hold or handed over to a colleague (agent/warm_transfer.py): their silence
        means nothing, and no goodbye may cut in; the trunk's own maximum duration still ends the call."""
        return self.session.input.audio_enabled

    def _on_user_state(self, event) -> None:
        if self.ending or not self.listening():
            return
        if event.new_state != "away":
            if event.new_state == "speaking":
                self.asked = False
            return
        if not self.asked:
            self.asked = True
            log.info("the caller has been silent for %.0f s: asking whether they are still there", self.silence)
            self._spawn(self._say(STILL_THERE))
        else:
            log.info("the caller stayed silent after being asked: ending the call")
            self._spawn(self._end(SILENT_GOODBYE, EndReason.silence))

    async def _time_limit(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self.ending and self.listening():
            log.info("the call reached its time limit (%.0f s): ending it", self.max_duration)
            await self._end(TIME_LIMIT_GOODBYE, EndReason.max_duration)

    async def _say(self, text: str) -> None:
        await self.session.say(text, allow_interruptions=False).wait_for_playout()

    async def _end(self, text: str, reason: EndReason) -> None:
        if self.ending:
            return
        self.ending = True
        self.note_end(reason, None)
        try:
            await self._say(text)
        finally:
            self.session.shutdown()

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
