"""The local playground page: its token endpoint, and a real Chromium conversation with the agent."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import wave
from datetime import UTC, datetime

import httpx
import jwt
import numpy as np
import pytest

from stack import lifecycle
from stack.settings import REPO_ROOT
from tests.support.stack import ARTIFACTS

CHROMIUM = shutil.which("chromium")
NODE_MODULES = REPO_ROOT / "playground" / "web" / "node_modules"


@pytest.fixture(scope="module")
def playground(stack_servers) -> str:
    """The playground page on the shared stack; it needs LiveKit's credentials, not the agent (the browser test
    asks for the agent itself)."""
    lifecycle.up(stack_servers.settings, ["playground"])
    return f"http://127.0.0.1:{stack_servers.settings.playground_port}"


@pytest.mark.stack
def test_session_endpoint_mints_a_fresh_room_without_exposing_the_secret(playground, stack_servers):
    page = {"Origin": playground}
    assert httpx.post(f"{playground}/api/session").status_code == 403  # not from the page: no Origin
    first = httpx.post(f"{playground}/api/session", headers=page).json()
    # Another page visit (another client address) gets its own room; the cap counts both (PLAYGROUND_MAX_SESSIONS).
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport) as other:
        second = other.post(f"{playground}/api/session", headers=page).json()
    assert first["room"] != second["room"] and first["room"].startswith("web-")
    assert stack_servers.settings.api_secret not in json.dumps(first)
    claims = jwt.decode(first["token"], stack_servers.settings.api_secret, algorithms=["HS256"],
                        options={"verify_aud": False})
    assert claims["video"]["room"] == first["room"]
    assert claims["video"]["canPublishSources"] == ["microphone"]
    assert claims["roomConfig"]["agents"][0]["agentName"] == "phone-assistant"
    by_get = httpx.get(f"{playground}/api/session")  # no tokens by GET (a link must not leak one)
    assert by_get.status_code in (404, 405) and "token" not in by_get.text
    assert "livekit-client" in httpx.get(f"{playground}/").text
    assert httpx.get(f"{playground}/livekit-client.umd.js").status_code == 200


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM or not NODE_MODULES.exists(),
                    reason="needs Debian chromium and `npm ci` in playground/web")
def test_a_person_talks_to_the_agent_in_chromium(playground, agent_stack, tmp_path):
    from calls.store import CallStore
    from local_openai.tts import TextToSpeech

    started = datetime.now(UTC)
    tts = TextToSpeech()
    speech = np.concatenate(list(tts.synthesize("What are your opening hours?")))
    silence = np.zeros(tts.sample_rate * 10, dtype=np.int16)
    question = tmp_path / "question.wav"
    with wave.open(str(question), "wb") as wav:  # greeting time, the question, then room for the answer
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(tts.sample_rate)
        # Chromium loops the file: the long tail keeps the question from being asked again too soon.
        wav.writeframes(np.concatenate([silence, speech, *[silence] * 12]).tobytes())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "playground.png"
    run = subprocess.run(["node", str(REPO_ROOT / "tests" / "browser" / "playground_check.mjs"), playground,
                          str(question), str(screenshot)], capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\nbrowser saw: {seen}\nscreenshot: {screenshot}")
    assert seen["connected"] and seen["agentJoined"], seen
    assert "hours" in seen["userText"].lower(), seen
    assert len(seen["agentText"].split(" | ")) >= 2, seen  # the greeting and an answer
    assert seen["agentAudioHeard"], seen
    for state in ("listening", "thinking", "speaking"):
        assert state in seen["statesSeen"], seen
    assert not seen["errors"], seen
    # The web conversation is on record like a phone call: kind "web", what the person said, the agent's replies.
    # The answer's turn is written once it has been spoken, which can be after the page saw its first words.
    deadline = time.monotonic() + 60
    while True:
        with CallStore.open(agent_stack.settings, migrate=False) as store:
            web_calls = [call for call in store.list_calls(since=started, turns=True) if call.kind == "web"]
            record = store.to_dict(web_calls[0]) if web_calls else None
        replies = sum(turn["role"] == "assistant" for turn in record["turns"]) if record else 0
        if replies >= 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert record, "no web call on record"
    said = [turn["text"] for turn in record["turns"] if turn["role"] == "user"]
    assert any("hours" in text.lower() for text in said), record
    assert replies >= 2, record
