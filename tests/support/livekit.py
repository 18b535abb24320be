"""The running stack's LiveKit server as the tests look at it: its API, and the rooms a SIP caller ended up in."""

from __future__ import annotations

from dataclasses import dataclass

from livekit import api

from sip.provisioning import livekit_api_of as livekit  # the stack's LiveKit API client, for the tests
from sip.provisioning import participants_of


@dataclass
class CallerRoom:
    room: api.Room
    caller: api.ParticipantInfo
    participants: list[api.ParticipantInfo]
    dispatched: list[str]  # the agent names dispatched to the room

    @property
    def agent_joined(self) -> bool:
        return any(p.kind == api.ParticipantInfo.Kind.AGENT for p in self.participants)


async def caller_rooms(settings, caller: str) -> list[CallerRoom]:
    """The rooms with a SIP participant calling from `caller`, with who is in each and the agents dispatched to it."""
    async with livekit(settings) as lk:
        found = []
        rooms = (await lk.room.list_rooms(api.ListRoomsRequest())).rooms
        for room, people in zip(rooms, await participants_of(lk, rooms)):
            callers = [p for p in people if p.kind == api.ParticipantInfo.Kind.SIP
                       and p.attributes.get("sip.phoneNumber") == caller]
            if callers:
                dispatches = await lk.agent_dispatch.list_dispatch(room.name)
                found.append(CallerRoom(room, callers[0], people, [d.agent_name for d in dispatches]))
        return found

