"""Calls left behind by a worker that died: when the agent worker is killed mid-call (kill -9, out of memory), its
job processes go with it, but the caller's room lives on and livekit-sip keeps the caller on the line in silence
until the trunk's maximum duration. A worker that starts ends those calls (deleting the room makes livekit-sip send
the caller a BYE), so a caller hears at most the time the worker takes to come back, not half an hour of dead air."""

from __future__ import annotations

import asyncio
import sys

from livekit import api

from sip import provisioning
from stack.errors import StackError
from stack.settings import Settings


def orphaned(participants: list[api.ParticipantInfo]) -> bool:
    """A phone call nobody answers any more: a caller whose call was answered ('active': livekit-sip answers only
    once an agent joined) and no agent in the room. A call still ringing waits for its agent's dispatch: not ours."""
    callers = [p for p in participants if p.kind == api.ParticipantInfo.Kind.SIP]
    agents = [p for p in participants if p.kind == api.ParticipantInfo.Kind.AGENT]
    return bool(callers) and not agents and any(p.attributes.get("sip.callStatus") == "active" for p in callers)


async def _end_orphaned_calls(settings: Settings) -> int:
    ended = 0
    async with provisioning.livekit_api(settings.livekit_url, settings.api_key, settings.api_secret) as lk:
        for room in (await lk.room.list_rooms(api.ListRoomsRequest())).rooms:
            if not room.name.startswith(settings.sip_room_prefix):
                continue
            people = list((await lk.room.list_participants(api.ListParticipantsRequest(room=room.name))).participants)
            if orphaned(people):
                await lk.room.delete_room(api.DeleteRoomRequest(room=room.name))
                ended += 1
    return ended


def end_orphaned_calls(settings: Settings) -> None:
    """Ends the calls no agent serves any more, one line on stderr (the worker's log) if there were any; a failure
    is one warning line, and the worker starts regardless. Runs before livekit-agents sets up its logging."""
    try:
        ended = asyncio.run(_end_orphaned_calls(settings))
    except (StackError, api.TwirpError, OSError) as error:
        print(f"warning: could not look for calls left without an agent: {error}", file=sys.stderr, flush=True)
        return
    if ended:
        print(f"ended {ended} call(s) left without an agent by a worker that stopped", file=sys.stderr, flush=True)
