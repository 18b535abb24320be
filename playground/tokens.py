"""Join tokens for browser users (LiveKit's agents playground, our own page, any LiveKit client).

Least privilege: one room, microphone and camera only, subscribe, data; and the room configuration that
dispatches our agent by name, so the agent joins when the user does.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from livekit import api

DEFAULT_TTL = timedelta(minutes=15)


def join_token(api_key: str, api_secret: str, room: str, identity: str, agent_name: str,
               ttl: timedelta = DEFAULT_TTL, name: str | None = None) -> str:
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_publish_sources=["microphone", "camera"],
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


def new_room_name(prefix: str = "web-") -> str:
    return prefix + secrets.token_hex(4)
