"""The local OpenAI-compatible endpoint, run for real (`python -m local_openai`) and called with the official client."""

from __future__ import annotations

import io
import json
import wave

import httpx
import numpy as np
import openai
import pytest

from tests.support.stack import LOCAL_ENDPOINT_KEY

pytestmark = pytest.mark.models
END_CALL = {"type": "function", "function": {
    "name": "end_call", "description": "End the call. Use it only after the caller says goodbye.",
    "parameters": {"type": "object", "properties": {}, "additionalProperties": False}, "strict": True}}


@pytest.fixture(scope="module")
def endpoint(local_endpoint):
    return local_endpoint


@pytest.fixture(scope="module")
def client(endpoint):
    return openai.OpenAI(base_url=endpoint, api_key=LOCAL_ENDPOINT_KEY)


AUTH = {"Authorization": f"Bearer {LOCAL_ENDPOINT_KEY}"}


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.astype(np.int16).tobytes())
    return buffer.getvalue()


def test_the_endpoint_wants_its_key(endpoint):
    assert httpx.get(f"{endpoint}/models").status_code == 401
    assert httpx.get(f"{endpoint}/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=endpoint, api_key="wrong").models.list()


def test_models_lists_local_models_and_openai_aliases(client):
    ids = {model.id for model in client.models.list()}
    from local_openai.model_store import DEFAULT_LLM

    assert {DEFAULT_LLM, "whisper-1", "tts-1", "gpt-4o-mini"} <= ids


def test_speech_pcm_is_24khz_audio_of_sensible_length(client):
    pcm = np.frombuffer(client.audio.speech.create(
        model="tts-1", voice="alloy", input="Thanks for calling. How can I help you today?", response_format="pcm",
    ).read(), dtype=np.int16)
    seconds = pcm.size / 24000
    assert 1.5 < seconds < 6, seconds
    assert np.abs(pcm).max() > 3000  # not silence


def test_speech_round_trips_through_transcription(client):
    """Speak a sentence as WAV, resample it to the phone's 8 kHz, and transcribe it back."""
    wav = client.audio.speech.create(model="gpt-4o-mini-tts", voice="nova", response_format="wav",
                                     input="Our office is open Monday to Friday from nine to five.").read()
    assert wav[:4] == b"RIFF"
    pcm = np.frombuffer(wav[44:], dtype=np.int16)
    phone_line = pcm[::3]  # 24 kHz -> 8 kHz
    text = client.audio.transcriptions.create(model="whisper-1", file=("q.wav", wav_bytes(phone_line, 8000))).text
    words = text.lower()
    assert "office" in words and "friday" in words, text


def test_verbose_transcription_says_how_sure_it_is(client):
    """verbose_json carries Whisper's segment scores: clear speech scores high, the same speech played backwards
    (speech-like, no words) low, so the agent (agent/stt.py) can ask a caller to say a garbled turn again."""
    from agent.stt import confidence_from_segments

    wav = client.audio.speech.create(model="tts-1", voice="alloy", response_format="wav",
                                     input="Do you have sourdough bread today?").read()
    pcm = np.frombuffer(wav[44:], dtype=np.int16)[::3]
    scores = {}
    for name, audio in (("forwards", pcm), ("backwards", pcm[::-1].copy())):
        heard = client.audio.transcriptions.create(model="whisper-1", response_format="verbose_json",
                                                   file=("q.wav", wav_bytes(audio, 8000)))
        assert heard.segments is not None
        scores[name] = confidence_from_segments(heard.segments)
    assert scores["forwards"] > 0.6 and scores["backwards"] < 0.45, scores


def test_streaming_chat_answers_in_text(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True, stream_options={"include_usage": True}, max_tokens=40,
        messages=[{"role": "system", "content": "You answer in one short sentence."},
                  {"role": "user", "content": "What is the capital of France?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "paris" in text.lower()
    assert chunks[-1].usage.completion_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_streaming_chat_emits_a_proper_tool_call(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True, tools=[END_CALL],
        temperature=0,
        messages=[
            {"role": "system", "content": "You are a phone assistant. Call end_call when the caller says goodbye."},
            {"role": "user", "content": "Bye. Please end the call now."}])
    chunks = [c for c in stream if c.choices]
    calls = [call for c in chunks for call in (c.choices[0].delta.tool_calls or [])]
    assert [call.function.name for call in calls] == ["end_call"]
    assert json.loads(calls[0].function.arguments) == {}
    assert calls[0].id and calls[0].type == "function"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    spoken = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert "end_call" not in spoken and "{" not in spoken


TOOL_NAMES = ("end_call", "get_current_time", "transfer_to_human")
ALL_TOOLS = [{"type": "function", "function": {"name": name, "description": name.replace("_", " "),
                                                "parameters": {"type": "object", "properties": {}}}}
             for name in TOOL_NAMES]
CALL_EVERYTHING = [{"role": "system", "content": "Call every function you have, one after the other."},
                   {"role": "user", "content": "Tell me the time, transfer me, then hang up."}]


def test_tool_choice_none_answers_in_words_with_the_tools_still_offered(client):
    reply = client.chat.completions.create(
        model="gpt-4o-mini", tools=ALL_TOOLS, tool_choice="none", temperature=0, max_tokens=60,
        messages=CALL_EVERYTHING)
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"
    assert "{" not in (reply.choices[0].message.content or "")


@pytest.mark.parametrize("stream", [True, False])
def test_parallel_tool_calls_false_returns_one_call(client, stream):
    options = dict(model="gpt-4o-mini", tools=ALL_TOOLS, parallel_tool_calls=False, temperature=0,
                   messages=CALL_EVERYTHING)
    if stream:
        chunks = [c for c in client.chat.completions.create(stream=True, **options) if c.choices]
        calls = [call for c in chunks for call in (c.choices[0].delta.tool_calls or [])]
        finish = chunks[-1].choices[0].finish_reason
    else:
        reply = client.chat.completions.create(**options)
        calls, finish = reply.choices[0].message.tool_calls or [], reply.choices[0].finish_reason
    assert len(calls) == 1 and calls[0].function.name in TOOL_NAMES
    assert finish == "tool_calls"


@pytest.mark.parametrize("stream", [True, False])
def test_a_prompt_longer_than_the_context_is_a_clean_400(client, stream):
    history = " ".join(f"Fact {i}: the sky was blue on day {i}." for i in range(400))
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model="gpt-4o-mini", stream=stream, max_tokens=5,
                                       messages=[{"role": "system", "content": history},
                                                 {"role": "user", "content": "What colour was the sky?"}])
    assert error.value.code == "context_length_exceeded"
    assert "maximum context length" in error.value.message
    reply = client.chat.completions.create(model="gpt-4o-mini", max_tokens=5,
                                           messages=[{"role": "user", "content": "Hi"}])
    assert reply.choices[0].message.content


def test_non_streaming_chat(client):
    reply = client.chat.completions.create(model="gpt-4o-mini", max_tokens=20,
                                           messages=[{"role": "user", "content": "Say the word hello."}])
    assert "hello" in reply.choices[0].message.content.lower()


def test_unknown_model_is_a_404_with_an_openai_error(client):
    with pytest.raises(openai.NotFoundError) as error:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert error.value.body["code"] == "model_not_found"


def test_bad_audio_is_a_400_and_the_server_lives_on(client):
    with pytest.raises(openai.BadRequestError) as error:
        client.audio.transcriptions.create(model="whisper-1", file=("x.wav", b"not audio at all" * 50))
    assert "format is not supported" in error.value.body["message"]
    with pytest.raises(openai.BadRequestError) as error:  # a WAV header over garbage
        client.audio.transcriptions.create(model="whisper-1", file=("x.wav", b"RIFF\0\0\0\0WAVE" + b"junk" * 50))
    assert "decode" in error.value.body["message"] or "no audio" in error.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.audio.transcriptions.create(model="whisper-1", file=("x.wav", b""))
    assert client.models.list().data


def test_oversized_upload_is_a_413(endpoint):
    too_big = b"\0" * (26 * 1024 * 1024)
    response = httpx.post(f"{endpoint}/audio/transcriptions", data={"model": "whisper-1"},
                          files={"file": ("big.wav", too_big)}, headers=AUTH, timeout=60)
    assert response.status_code == 413
    assert response.json()["error"]["param"] == "file"


@pytest.mark.parametrize("body, status", [
    ({"model": "tts-1", "input": ""}, 400),
    ({"model": "tts-1", "input": "hi", "response_format": "mp3"}, 400),
    ({"model": "tts-1"}, 400),
])
def test_bad_speech_requests(endpoint, body, status):
    response = httpx.post(f"{endpoint}/audio/speech", json=body, headers=AUTH)
    assert response.status_code == status
    assert response.json()["error"]["message"]


def test_malformed_json_and_wrong_method(endpoint):
    response = httpx.post(f"{endpoint}/chat/completions", content=b"{not json",
                          headers={"content-type": "application/json", **AUTH})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(f"{endpoint}/chat/completions", headers=AUTH).status_code == 405


def test_forced_tool_choice_calls_that_tool(client):
    reply = client.chat.completions.create(
        model="gpt-4o-mini", tools=[END_CALL], tool_choice={"type": "function", "function": {"name": "end_call"}},
        messages=[{"role": "user", "content": "ok thanks"}])
    assert [c.function.name for c in reply.choices[0].message.tool_calls] == ["end_call"]
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", tools=[END_CALL],
                                       tool_choice={"type": "function", "function": {"name": "nope"}},
                                       messages=[{"role": "user", "content": "hi"}])
