"""Calls left behind by a worker that died: when the agent worker is killed mid-call (kill -9, out of memory), its
job processes go with it, but the caller's room lives on and livekit-sip keeps the caller on the line in silence
until the trunk's maximum duration. The worker that takes its place ends those calls (deleting the room makes
livekit-sip send the caller a BYE).

LiveKit notices a dead agent only when its connection times out (about 20 s after the kill), often after the new
worker has started, so the worker looks every SWEEP_S seconds for its whole life; a room counts as orphaned once it
has looked so for ORPHANED_FOR_S, so that an agent briefly away (reconnecting) keeps its call.

A call that rang while no worker was registered is the other kind left behind: livekit-server sends a room's agent
dispatch once, to the workers registered then, so the caller would ring until they or the carrier give up. The new
worker, once registered, sends the agent into those rooms (`on_first_registration`)."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time

from livekit import api

from sip import provisioning
from stack.errors import StackError
from stack.settings import Settings

log = logging.getLogger("agent")
SWEEP_S = 5.0
ORPHANED_FOR_S = 10.0
HANDLER_DELAY_S = 0.2  # the server registered the worker at most this long before its handler ran


def orphaned(participants: list[api.ParticipantInfo]) -> bool:
    """A phone call nobody answers any more: a caller whose call was answered ('active': livekit-sip answers only
    once an agent joined) and no agent in the room. A call still ringing waits for its agent's dispatch: not ours."""
    callers = [p for p in participants if p.kind == api.ParticipantInfo.Kind.SIP]
    agents = [p for p in participants if p.kind == api.ParticipantInfo.Kind.AGENT]
    return bool(callers) and not agents and any(p.attributes.get("sip.callStatus") == "active" for p in callers)


def unanswered(participants: list[api.ParticipantInfo]) -> bool:
    """A phone call still ringing, with no agent in its room."""
    callers = [p for p in participants if p.kind == api.ParticipantInfo.Kind.SIP]
    agents = [p for p in participants if p.kind == api.ParticipantInfo.Kind.AGENT]
    return bool(callers) and not agents and not orphaned(participants)


async def phone_calls(lk: api.LiveKitAPI, settings: Settings) -> list[tuple[api.Room, list[api.ParticipantInfo]]]:
    """Each phone call's room, with who is in it."""
    phone = [room for room in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
             if room.name.startswith(settings.sip_room_prefix)]
    return list(zip(phone, await provisioning.participants_of(lk, phone), strict=True))


async def answer_unanswered_calls(settings: Settings, registered_at: float) -> list[str]:
    """Sends the agent into the rooms of calls that rang before this worker registered at `registered_at` (a
    time.time()); their names. A room created since has its own dispatch to this worker on the way."""
    async with provisioning.livekit_api_of(settings) as lk:
        waiting = [room.name for room, people in await phone_calls(lk, settings)
                   if room.creation_time_ms / 1000 < registered_at - HANDLER_DELAY_S and unanswered(people)]
        for room in waiting:
            await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=settings.agent_name,
                                                                                   room=room))
    if waiting:
        log.warning("%d call(s) rang while no agent worker was registered: the agent is sent to them now",
                    len(waiting))
    return waiting


def on_first_registration(settings: Settings):
    """An AgentServer "worker_registered" handler (for `server.once`) that answers the calls left ringing."""
    tasks: set[asyncio.Task] = set()

    def registered(*_args) -> None:
        task = asyncio.ensure_future(_answer_logging_failures(settings, time.time()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    return registered


async def _answer_logging_failures(settings: Settings, registered_at: float) -> None:
    try:
        await answer_unanswered_calls(settings, registered_at)
    except Exception as error:  # the server is down again: its own restart drops the rooms anyway
        log.warning("could not look for calls left ringing while no worker was registered (%s)", error)


class OrphanSweeper:
    """Ends the calls that have looked orphaned for ORPHANED_FOR_S (`sweep()` once; `start()` every SWEEP_S in a
    thread of its own)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.suspects: dict[str, float] = {}  # room name -> when it first looked orphaned
        self.warned = False

    async def _sweep(self, now: float) -> int:
        settings, ended, seen = self.settings, 0, set()
        async with provisioning.livekit_api_of(settings) as lk:
            for room, people in await phone_calls(lk, settings):
                if not orphaned(people):
                    continue
                seen.add(room.name)
                if now - self.suspects.setdefault(room.name, now) >= ORPHANED_FOR_S:
                    await lk.room.delete_room(api.DeleteRoomRequest(room=room.name))
                    ended += 1
        self.suspects = {name: since for name, since in self.suspects.items() if name in seen}
        return ended

    def sweep(self, now: float | None = None) -> int:
        """One look; the number of calls ended. A failure is one warning line (the first time) on stderr."""
        try:
            ended = asyncio.run(self._sweep(time.monotonic() if now is None else now))
        except (StackError, api.TwirpError, OSError) as error:
            if not self.warned:
                print(f"warning: could not look for calls left without an agent: {error}", file=sys.stderr,
                      flush=True)
                self.warned = True
            return 0
        if ended:
            print(f"ended {ended} call(s) left without an agent by a worker that stopped", file=sys.stderr,
                  flush=True)
        return ended

    def start(self) -> None:
        def loop():
            while True:
                self.sweep()
                time.sleep(SWEEP_S)

        threading.Thread(target=loop, name="orphan-sweeper", daemon=True).start()
