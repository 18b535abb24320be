"""Join tokens for browser users (LiveKit's agents playground, our own page, any LiveKit client).

Least privilege: one room, the microphone (and the camera only when asked for), subscribe, data; and the room
configuration that dispatches our agent by name, so the agent joins when the user does.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from livekit import api

DEFAULT_TTL = timedelta(minutes=15)
WEB_ROOM_PREFIX = "web-"  # rooms for browser users; the agent counts them against PLAYGROUND_MAX_SESSIONS


def join_token(api_key: str, api_secret: str, room: str, identity: str, agent_name: str,
               ttl: timedelta = DEFAULT_TTL, name: str | None = None, camera: bool = False) -> str:
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_publish_sources=["microphone", "camera"] if camera else ["microphone"],
        can_subscribe=True,
        can_publish_data=True,
    )
    return (api.AccessToken(api_key, api_secret)
            .with_identity(identity)
            .with_name(name or identity)
            .with_ttl(ttl)
            .with_grants(grants)
            .with_room_config(api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=agent_name)]))
            .to_jwt())


def new_room_name(prefix: str = WEB_ROOM_PREFIX) -> str:
    return prefix + secrets.token_hex(4)
