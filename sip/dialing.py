"""Placing outbound calls (`cli.py dial`): a room of the call's own, the agent dispatched into it with the number and
the purpose (agent/outbound.py dials from there), and the outcome read back from the call store once the call ends.

A batch (`cli.py dial --csv`) runs a few calls at a time and tries again, after a pause, those that were not
answered, busy, or found no free line.
"""

from __future__ import annotations

import asyncio
import csv
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from livekit import api

from agent.outbound import ROOM_PREFIX, OutboundCall
from calls.models import EndReason
from calls.store import CallStore
from stack.errors import StackError
from stack.settings import E164, Settings

from .provisioning import livekit_api_of, managed_outbound_trunk

# Outcomes worth another try later; every other end is final.
RETRY = {EndReason.no_answer.value, EndReason.callee_busy.value, EndReason.no_free_line.value}
# The call reached a person or their voicemail (anything that is not a failure to connect).
NOT_REACHED = {*RETRY, EndReason.declined.value, EndReason.dial_failed.value, EndReason.error.value,
               EndReason.voicemail_unavailable.value}
# No record in the store this long after the dispatch: no agent took the job.
PICKUP_S = 60.0
POLL_S = 0.5
ROOM_CHECK_S = 3.0  # while no record exists: how often to look whether the call's room still does


@dataclass
class Outcome:
    number: str
    room: str
    end_reason: str | None = None   # calls.models.EndReason; None: no record, or still going when we stopped waiting
    end_detail: str | None = None
    call_id: str | None = None
    duration_s: float | None = None
    attempts: int = 1

    @property
    def reached(self) -> bool:
        return self.end_reason is not None and self.end_reason not in NOT_REACHED

    def describe(self) -> str:
        if self.end_reason is None:
            return self.end_detail or "no outcome"
        words = {"voicemail_left": "voicemail: the message was left", "no_answer": "no answer",
                 "callee_busy": "busy", "declined": "declined", "dial_failed": "the call failed",
                 "no_free_line": "not dialled: every line of the agent was in use",
                 "voicemail_unavailable": "a voicemail that takes no messages", "error": "error"}
        said = words.get(self.end_reason) or f"answered, talked, then {self.end_reason.replace('_', ' ')}"
        detail = f" ({self.end_detail})" if self.end_detail and self.end_reason != "voicemail_left" else ""
        return said + detail


def check_number(number: str) -> str:
    number = number.strip().replace(" ", "")
    if not E164.match(number):
        raise StackError(f"{number!r} is not a phone number to dial: use E.164, like +15550123")
    return number


def room_for(number: str) -> str:
    return f"{ROOM_PREFIX}{re.sub(r'[^0-9]', '', number)}-{secrets.token_hex(4)}"


async def dispatch(settings: Settings, number: str, purpose: str) -> str:
    """Dispatches the agent to call `number` about `purpose`; the call's room."""
    number = check_number(number)
    if not purpose.strip():
        raise StackError("--purpose is empty: say what the call is about, like \"Your order is ready for pickup\"")
    async with livekit_api_of(settings) as lk:
        trunk = await managed_outbound_trunk(lk)
        if trunk is None:
            raise StackError("there is no outbound trunk: set SIP_OUTBOUND_ADDRESS (and the carrier's credentials) in "
                             ".env, then run `python cli.py sip setup`")
        room = room_for(number)
        call = OutboundCall(number=number, purpose=purpose.strip(), trunk_id=trunk.sip_trunk_id,
                            ringing_timeout=settings.sip_outbound_ringing_timeout)
        await lk.room.create_room(api.CreateRoomRequest(name=room, empty_timeout=60))
        await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(
            agent_name=settings.agent_name, room=room, metadata=call.metadata()))
    return room


def wait_for_outcome(settings: Settings, number: str, room: str, *, limit_s: float,
                     progress: Callable[[str], None] = lambda _line: None) -> Outcome:
    """Waits for the call in `room` to end (at most `limit_s`), reading the call store."""
    outcome = Outcome(number=number, room=room)
    started = time.monotonic()
    announced = ""
    looked = 0.0
    with CallStore.open(settings) as store:
        while time.monotonic() - started < limit_s:
            calls = [call for call in store.list_calls(number=number, limit=20) if call.room == room]
            waited = time.monotonic() - started
            if not calls and waited - looked > ROOM_CHECK_S:
                looked = waited
                if not asyncio.run(room_exists(settings, room)):  # the worker turned the call away: no line at all
                    outcome.end_reason = EndReason.no_free_line.value
                    return outcome
            if not calls and waited > PICKUP_S:
                outcome.end_detail = (f"no agent took the call within {PICKUP_S:.0f} s: is the agent running "
                                      "(`python cli.py status`)?")
                return outcome
            if calls:
                call = calls[0]
                outcome.call_id = call.id
                state = "ended" if call.ended_at else "connected" if call.answered_at else "dialling"
                if state != announced:
                    progress(f"{number}: {state}")
                    announced = state
                if call.ended_at:
                    outcome.end_reason, outcome.end_detail = call.end_reason, call.end_detail
                    outcome.duration_s = round((call.ended_at - call.started_at).total_seconds(), 1)
                    return outcome
            time.sleep(POLL_S)
    outcome.end_detail = f"still going after {limit_s:.0f} s (see `python cli.py calls list`)"
    return outcome


async def room_exists(settings: Settings, room: str) -> bool:
    async with livekit_api_of(settings) as lk:
        return bool((await lk.room.list_rooms(api.ListRoomsRequest(names=[room]))).rooms)


def call_and_wait(settings: Settings, number: str, purpose: str, *, limit_s: float,
                  progress: Callable[[str], None] = lambda _line: None) -> Outcome:
    room = asyncio.run(dispatch(settings, number, purpose))
    progress(f"{number}: dispatched the agent (room {room})")
    return wait_for_outcome(settings, check_number(number), room, limit_s=limit_s, progress=progress)


def read_batch(path: Path) -> list[tuple[str, str]]:
    """(number, purpose) rows of a CSV with the columns `number,purpose`; StackError naming the bad row."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise StackError(f"cannot read {path}: {error.strerror}") from None
    if rows and not {"number", "purpose"} <= set(rows[0]):
        raise StackError(f"{path}: the first line must name the columns number,purpose")
    calls = []
    for line, row in enumerate(rows, start=2):
        try:
            number = check_number(row["number"] or "")
        except StackError as error:
            raise StackError(f"{path}, line {line}: {error}") from None
        if not (row["purpose"] or "").strip():
            raise StackError(f"{path}, line {line}: the purpose is empty")
        calls.append((number, row["purpose"].strip()))
    if not calls:
        raise StackError(f"{path} has no calls in it")
    return calls


def run_batch(settings: Settings, calls: list[tuple[str, str]], *, concurrency: int, retries: int,
              retry_delay_s: float, limit_s: float, progress: Callable[[str], None]) -> list[Outcome]:
    """Each call placed, `concurrency` at a time; not answered, busy and no-free-line calls tried again up to
    `retries` more times, `retry_delay_s` later."""
    from concurrent.futures import ThreadPoolExecutor

    def one(number: str, purpose: str) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            try:
                outcome = call_and_wait(settings, number, purpose, limit_s=limit_s, progress=progress)
            except StackError as error:
                outcome = Outcome(number=number, room="", end_detail=str(error))
            outcome.attempts = attempt
            if outcome.end_reason not in RETRY or attempt > retries:
                progress(f"{number}: {outcome.describe()}")
                return outcome
            progress(f"{number}: {outcome.describe()}; trying again in {retry_delay_s:.0f} s")
            time.sleep(retry_delay_s)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda call: one(*call), calls))
