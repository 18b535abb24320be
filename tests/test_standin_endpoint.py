"""The bench's stand-in for a fast OpenAI-compatible server (bench/standin_endpoint.py): each route answers in the
shape the OpenAI plugins read, after its fixed delay."""

from __future__ import annotations

import io
import json
import time
import wave

import pytest
from fastapi.testclient import TestClient

from bench.standin_endpoint import REPLY, SECONDS_PER_CHARACTER, SPEECH_RATE, build_app

pytestmark = pytest.mark.unit
LINES = [(1.2, "What are your opening hours?"), (2.0, "Can I book a cleaning next week?")]


def wav(seconds: float, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


def test_each_route_answers_after_its_delay():
    client = TestClient(build_app(0.05, 0.1, 0.02, LINES))
    started = time.monotonic()
    heard = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav(1.9))}, data={"model": "x"})
    assert heard.json() == {"text": "Can I book a cleaning next week?"} and time.monotonic() - started >= 0.05

    started = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", json={"model": "x", "stream": True, "messages": []}) as reply:
        lines = [line for line in reply.iter_lines() if line.startswith("data: {")]
    assert time.monotonic() - started >= 0.1
    said = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "") for line in lines)
    assert said == REPLY

    spoken = client.post("/v1/audio/speech", json={"model": "x", "input": "Hello there.", "response_format": "pcm"})
    assert len(spoken.content) == 2 * int(len("Hello there.") * SECONDS_PER_CHARACTER * SPEECH_RATE)
    assert client.post("/v1/audio/speech", json={"input": "Hi", "response_format": "mp3"}).status_code == 400
