"""A wrong or expired OpenAI key: the worker says so in one log line, and a caller hears a spoken apology
(from the offline voice) before the call ends, never silence."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import numpy as np
import pytest
from livekit import api, rtc

from stack.settings import REPO_ROOT
from tests.support.provider import RejectingProvider
from tests.support.stack import stop_process

pytestmark = pytest.mark.call
AGENT_NAME = "phone-assistant-wrong-key"


async def test_wrong_key_gets_a_spoken_apology_and_a_clear_log_line(stack_servers, tmp_path):
    settings = stack_servers.settings
    log_path = tmp_path / "agent.log"
    with RejectingProvider() as base_url, open(log_path, "wb") as log:
        env = {**settings.env_for_processes(), "OPENAI_API_KEY": "sk-expired", "OPENAI_BASE_URL": base_url,
               "AGENT_NAME": AGENT_NAME, "AGENT_HTTP_PORT": "21090"}
        worker = subprocess.Popen([sys.executable, str(REPO_ROOT / "main.py"), "start"], env=env, cwd=REPO_ROOT,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and b"registered worker" not in log_path.read_bytes():
                await asyncio.sleep(0.5)
            heard, disconnected = await _join_and_listen(settings, seconds=60)
        finally:
            stop_process(worker)
    text = log_path.read_text(errors="replace")
    assert "rejected OPENAI_API_KEY (HTTP 401)" in text
    assert heard > 1.0, f"only {heard:.1f} s of apology audio"
    assert disconnected, "the call was not ended after the apology"


async def _join_and_listen(settings, seconds: float) -> tuple[float, bool]:
    """Joins a room that dispatches the wrong-key agent; returns (seconds of voiced audio heard, room ended)."""
    room = rtc.Room()
    voiced = 0.0
    ended = asyncio.Event()

    async def listen(track):
        nonlocal voiced
        async for event in rtc.AudioStream(track, sample_rate=48000, num_channels=1):
            samples = np.frombuffer(event.frame.data, dtype=np.int16).astype(np.float64)
            if np.sqrt(np.mean(samples ** 2)) > 300:
                voiced += event.frame.samples_per_channel / 48000

    room.on("track_subscribed", lambda track, *_: asyncio.ensure_future(listen(track))
            if track.kind == rtc.TrackKind.KIND_AUDIO else None)
    room.on("disconnected", lambda *_: ended.set())
    token = (api.AccessToken(settings.api_key, settings.api_secret).with_identity("caller")
             .with_grants(api.VideoGrants(room_join=True, room=f"wrong-key-{int(time.time())}"))
             .with_room_config(api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=AGENT_NAME)]))
             .to_jwt())
    await room.connect(settings.livekit_url, token)
    try:
        await asyncio.wait_for(ended.wait(), seconds)
    except TimeoutError:
        pass
    finally:
        await room.disconnect()
    return voiced, ended.is_set()
