"""The agent's STT reports how sure the transcription was (agent/stt.py), from Whisper's segments or gpt-4o's token
log-probabilities, and still transcribes on a server that refuses to give scores. The local endpoint's own scores are
checked against the real model in test_local_openai.py."""

from __future__ import annotations

import asyncio
import json
import math

import httpx
import numpy as np
import openai
import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions

from agent.stt import STT, UNKNOWN, confidence_from_logprobs, confidence_from_segments

pytestmark = pytest.mark.unit


def test_confidence_is_the_token_weighted_mean_probability():
    segments = [{"avg_logprob": math.log(0.9), "tokens": [1, 2, 3]}, {"avg_logprob": math.log(0.1), "tokens": [4]}]
    assert confidence_from_segments(segments) == pytest.approx(math.exp((3 * math.log(0.9) + math.log(0.1)) / 4))
    assert confidence_from_segments([]) is None
    assert confidence_from_logprobs([{"logprob": math.log(0.5)}, {"logprob": math.log(0.5)}]) == pytest.approx(0.5)
    assert confidence_from_logprobs([]) is None


def transcribe_with(server, times: int = 1, model: str = "whisper-1",
                    base_url: str = "http://stt.test/v1") -> tuple[float, list[dict]]:
    """(last confidence, the forms the server got) for one second of audio sent `times` through one agent.stt.STT to
    `server`."""
    forms: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.content.decode("latin-1")
        forms.append({name: value for name in ("response_format", "include[]")
                      if (value := _form_value(body, name)) is not None})
        return server(forms[-1])

    client = openai.AsyncClient(api_key="test", base_url=base_url,  # the mock transport answers; nothing leaves
                                http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    stt = STT(model=model, language="en", client=client)
    frame = rtc.AudioFrame(np.zeros(16000, np.int16).tobytes(), sample_rate=16000, num_channels=1,
                           samples_per_channel=16000)

    async def recognize():
        for _ in range(times):
            event = await stt._recognize_impl([frame], conn_options=APIConnectOptions())
        return event

    event = asyncio.run(recognize())
    assert event.alternatives[0].text == "do you have sourdough"
    return event.alternatives[0].confidence, forms


def _form_value(body: str, name: str) -> str | None:
    marker = f'name="{name}"'
    if marker not in body:
        return None
    return body.split(marker, 1)[1].split("\r\n\r\n", 1)[1].split("\r\n", 1)[0]


def test_a_whisper_server_scores_the_transcript():
    def server(form):
        return httpx.Response(200, json={"text": "do you have sourdough", "language": "english", "duration": 1.0,
                                         "segments": [{"avg_logprob": math.log(0.3), "tokens": [1, 2]}]})

    confidence, forms = transcribe_with(server)
    assert confidence == pytest.approx(0.3)
    assert forms == [{"response_format": "verbose_json"}]


def test_a_server_that_refuses_scores_still_transcribes_and_is_asked_plainly_from_then_on():
    def server(form):
        if form["response_format"] == "verbose_json":
            return httpx.Response(400, json={"error": {"message": "response_format verbose_json is not supported"}})
        return httpx.Response(200, content=json.dumps({"text": "do you have sourdough"}))

    confidence, forms = transcribe_with(server, times=2)
    assert confidence == UNKNOWN  # unknown counts as heard: nothing is asked again for want of a score
    assert [form["response_format"] for form in forms] == ["verbose_json", "json", "json"]


def test_openais_gpt4o_transcription_is_scored_from_its_token_logprobs():
    def server(form):
        return httpx.Response(200, json={"text": "do you have sourdough",
                                         "logprobs": [{"token": "do", "logprob": math.log(0.8)},
                                                      {"token": " you", "logprob": math.log(0.2)}]})

    confidence, forms = transcribe_with(server, model="gpt-4o-mini-transcribe", base_url="https://api.openai.com/v1")
    assert confidence == pytest.approx(0.4)
    assert forms == [{"response_format": "json", "include[]": "logprobs"}]
