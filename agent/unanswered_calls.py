"""Calls that rang while no agent worker was registered (the worker crashed and is restarting): livekit-server sends a
room's agent dispatch once, to the workers registered then, and never again, so such a caller would ring until they or
the carrier give up. A worker that has just registered dispatches the agent into each phone call's room, created
before it registered, that has a caller and no agent."""

from __future__ import annotations

import asyncio
import logging
import time

from livekit import api

from sip import provisioning
from stack.settings import Settings

log = logging.getLogger("agent")
HANDLER_DELAY_S = 0.2  # the server registered the worker at most this long before the handler ran


async def answer_unanswered_calls(settings: Settings, registered_at: float) -> list[str]:
    """Dispatches the agent into the waiting calls' rooms; their names. Only rooms older than `registered_at` (a
    time.time()): a room created since has its own dispatch to this worker on the way."""
    async with provisioning.livekit_api_of(settings) as lk:
        before = registered_at - HANDLER_DELAY_S
        rooms = [room for room in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
                 if room.name.startswith(settings.sip_room_prefix) and room.creation_time_ms / 1000 < before]
        waiting = [room.name for room, people in zip(rooms, await provisioning.participants_of(lk, rooms), strict=True)
                   if any(p.kind == api.ParticipantInfo.Kind.SIP for p in people)
                   and not any(p.kind == api.ParticipantInfo.Kind.AGENT for p in people)]
        for room in waiting:
            await lk.agent_dispatch.create_dispatch(api.CreateAgentDispatchRequest(agent_name=settings.agent_name,
                                                                                   room=room))
    if waiting:
        log.warning("%d call(s) rang while no agent worker was registered: the agent is sent to them now",
                    len(waiting))
    return waiting


def on_first_registration(settings: Settings):
    """An AgentServer "worker_registered" handler (for `server.once`) that answers the calls left waiting."""
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
        log.warning("could not look for calls left waiting while no worker was registered (%s)", error)
