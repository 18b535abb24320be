"""The local endpoint against hostile or careless clients: the key, Host and Origin checks, the body and audio caps,
validated fields, the bounded queue, and clients that leave. The app is the real one (create_app) on a real HTTP
server on 127.0.0.1; only the models are stand-ins (the LLM is the real ChatModel over a fake llama context)."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import uvicorn

from bench.endpoint_abuse import encoded_silence, raw_post
from local_openai.app import Models, create_app
from local_openai.llm import ChatModel
from stack.settings import Settings

pytestmark = pytest.mark.unit
KEY = "local-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3}


class FakeLlama:
    """The few llama_cpp.Llama methods ChatModel uses. `hold` keeps a generation running (the model busy);
    `evaluated` lists each prompt the model started on (prefill)."""

    def __init__(self):
        self.hold = threading.Event()
        self.hold.set()
        self.evaluated: list[int] = []
        self._input_ids = np.zeros(0, dtype=np.int64)

    def tokenize(self, text: bytes, add_bos: bool = False, special: bool = True) -> list[int]:
        return list(text[:200])

    def n_ctx(self) -> int:
        return 4096

    def longest_token_prefix(self, a, b) -> int:
        return 0

    def create_completion(self, tokens, max_tokens, temperature, stop, stream):
        self.evaluated.append(len(tokens))
        self.hold.wait(30)
        for _ in range(max_tokens):
            yield {"choices": [{"text": "hi "}]}


class FakeFormatter:
    def __call__(self, messages, tools=None):
        return type("Rendered", (), {"prompt": json.dumps([messages, tools])})()


def fake_chat_model() -> ChatModel:
    model = ChatModel.__new__(ChatModel)
    model.model_name, model._llm, model._formatter, model._lock = "qwen-test", FakeLlama(), FakeFormatter(), \
        threading.Lock()
    return model


@dataclass
class FakeSTT:
    model_name: str = "tiny.en"
    heard: list[float] = field(default_factory=list)  # seconds of audio transcribed

    def segments(self, audio, sample_rate, *, language=None, prompt=None, cancelled=None):
        from local_openai.stt import Segment

        self.heard.append(audio.size / sample_rate)
        return [Segment(text="hello", start=0.0, end=audio.size / sample_rate, tokens=(1,), avg_logprob=-0.1,
                        no_speech_prob=0.0, compression_ratio=1.0)]


class FakeTTS:
    def synthesize_at(self, text, sample_rate, speed=1.0):
        yield np.zeros(sample_rate // 10, dtype=np.int16)


class Server:
    """create_app() served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, **settings: str):
        self.models = Models(stt=FakeSTT(), llm=fake_chat_model(), tts=FakeTTS())
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        app = create_app(self.models, Settings.of(LOCAL_OPENAI_API_KEY=KEY, **settings))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def llama(self) -> FakeLlama:
        return self.models.llm._llm

    def stop(self):
        self.llama.hold.set()
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def server():
    running = Server(LOCAL_OPENAI_MAX_UPLOAD_MB="1", LOCAL_OPENAI_MAX_AUDIO_S="30", LOCAL_OPENAI_MAX_QUEUE="2")
    yield running
    running.stop()


def post(server: Server, path: str, **options) -> httpx.Response:
    options["headers"] = {**AUTH, **options.get("headers", {})}
    return httpx.post(f"{server.url}{path}", timeout=20, **options)


# --- the key, Host and Origin -------------------------------------------------------------------------------------
def test_every_path_but_healthz_wants_the_key(server):
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    missing = httpx.get(f"{server.url}/v1/models")
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert "LOCAL_OPENAI_API_KEY" in missing.json()["error"]["message"]
    wrong = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert server.llama.evaluated == []
    assert httpx.get(f"{server.url}/v1/models", headers=AUTH).status_code == 200
    assert post(server, "/v1/chat/completions", json=CHAT).status_code == 200
    assert len(server.llama.evaluated) == 1


def test_the_endpoint_refuses_to_run_without_a_key():
    with pytest.raises(ValueError, match="API key"):
        create_app(Models(stt=FakeSTT(), llm=fake_chat_model(), tts=FakeTTS()), Settings.of())


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "192.0.2.1", ""])
def test_a_request_for_another_host_is_refused(server, host):
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 still sends Host: evil.example."""
    response = post(server, "/v1/chat/completions", json=CHAT, headers={"Host": host})
    assert response.status_code == 421, response.text
    assert "127.0.0.1" in response.json()["error"]["message"]
    assert server.llama.evaluated == []


def test_loopback_names_are_accepted(server):
    for host in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", f"[::1]:{server.port}"):
        assert httpx.get(f"{server.url}/v1/models", headers={**AUTH, "Host": host}).status_code == 200, host


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Origin": "http://localhost:3000"}, {"Sec-Fetch-Site": "cross-site"}])
def test_a_cross_origin_browser_request_is_refused_before_any_work(server, headers):
    response = post(server, "/v1/chat/completions", json=CHAT, headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "cross_origin"
    assert server.llama.evaluated == []


# --- body size ----------------------------------------------------------------------------------------------------
def raw_upload(server: Server, path: str, chunks, headers: dict[str, str], limit_s: float = 20) -> tuple[bytes, int]:
    return raw_post(server.port, path, chunks, {**AUTH, **headers}, limit_s)


def chunked(parts, size: int):
    for part in parts:
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
        time.sleep(0.001)
    yield b"0\r\n\r\n"


def test_an_oversized_chunked_upload_is_cut_off_at_the_limit(server):
    boundary = "xyz"
    opening = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
               "Content-Type: audio/wav\r\n\r\n").encode()
    offered = 64 << 20
    parts = [opening, *[b"\0" * 65536] * (offered // 65536)]
    answer, sent = raw_upload(server, "/v1/audio/transcriptions", chunked(parts, 65536),
                              {"Content-Type": f"multipart/form-data; boundary={boundary}",
                               "Transfer-Encoding": "chunked"})
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than 1 MB" in answer
    assert sent < 8 << 20, f"the server read {sent} bytes of a 1 MB limit before it answered"
    assert server.models.stt.heard == []


def test_a_declared_oversized_body_is_refused_unread(server):
    answer, sent = raw_upload(server, "/v1/chat/completions", iter([b"{" * 1024] * 100),
                              {"Content-Type": "application/json", "Content-Length": str(50 << 20)})
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than 1024 KB" in answer and b"application/json" in answer
    assert sent < 1 << 20
    upload = post(server, "/v1/audio/transcriptions", data={"model": "whisper-1"},
                  files={"file": ("big.wav", b"\0" * (2 << 20))})
    assert upload.status_code == 413 and upload.json()["error"]["param"] == "file"
    assert "larger than 1 MB" in upload.json()["error"]["message"]
    # A wrong key on a big upload is still told so (and nothing is read).
    wrong = httpx.post(f"{server.url}/v1/audio/transcriptions", data={"model": "whisper-1"},
                       files={"file": ("big.wav", b"\0" * (2 << 20))}, headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


def test_an_oversized_chunked_json_body_is_a_413(server):
    parts = [b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "', *[b"a" * 65536] * 64]
    answer, _ = raw_upload(server, "/v1/chat/completions", chunked(parts, 65536),
                           {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert server.llama.evaluated == []


# --- audio --------------------------------------------------------------------------------------------------------


def transcribe(server: Server, data: bytes, name: str = "a.wav", **fields: str) -> httpx.Response:
    return post(server, "/v1/audio/transcriptions", data={"model": "whisper-1", **fields},
                files={"file": (name, data)})


@pytest.mark.parametrize("container, codec, rate, seconds", [
    ("flac", "flac", 8000, 3600), ("mp3", "libmp3lame", 8000, 600), ("ogg", "libopus", 48000, 180)])
def test_a_decompression_bomb_stops_decoding_at_the_duration_cap(server, container, codec, rate, seconds):
    bomb = encoded_silence(container, codec, rate, seconds)
    assert len(bomb) < 1 << 20  # under the upload limit: only the duration cap can stop it
    started = time.monotonic()
    response = transcribe(server, bomb, f"quiet.{container}")
    assert response.status_code == 400, response.text
    assert "longer than 30 s" in response.json()["error"]["message"]
    assert time.monotonic() - started < 10
    assert server.models.stt.heard == []


@pytest.mark.parametrize("container, codec, rate", [("wav", "pcm_s16le", 8000), ("flac", "flac", 16000),
                                                     ("mp3", "libmp3lame", 8000), ("ogg", "libopus", 48000)])
def test_audio_in_an_allowed_format_under_the_cap_is_transcribed(server, container, codec, rate):
    response = transcribe(server, encoded_silence(container, codec, rate, 5), f"ok.{container}")
    assert response.status_code == 200, response.text
    assert response.json() == {"text": "hello"}
    assert 4.5 < server.models.stt.heard[0] < 5.5


@pytest.mark.parametrize("data", [
    b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",  # an HLS playlist
    b"ffconcat version 1.0\nfile '/etc/passwd'\n",  # a concat list
    b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
    b"not audio at all" * 50,
])
def test_a_format_outside_the_allow_list_is_a_400_and_never_opened(server, data):
    response = transcribe(server, data, "x.wav")
    assert response.status_code == 400, response.text
    assert "format is not supported" in response.json()["error"]["message"]
    assert server.models.stt.heard == []


# --- validated fields ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, body, param", [
    ("/v1/chat/completions", {**CHAT, "max_tokens": 10**9}, "max_tokens"),
    ("/v1/chat/completions", {**CHAT, "max_completion_tokens": 0}, "max_completion_tokens"),
    ("/v1/chat/completions", {**CHAT, "max_tokens": "lots"}, "max_tokens"),
    ("/v1/chat/completions", {**CHAT, "temperature": 5}, "temperature"),
    ("/v1/chat/completions", {**CHAT, "messages": "hello"}, "messages"),
    ("/v1/chat/completions", {**CHAT, "messages": []}, "messages"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
    ("/v1/chat/completions", {**CHAT, "messages": [{"role": "user", "content": 42}]}, "messages.0.content"),
    ("/v1/chat/completions", {**CHAT, "tools": [{"type": "function", "function": {"name": 3}}]},
     "tools.0.function.name"),
    ("/v1/chat/completions", {**CHAT, "tools": {"not": "a list"}}, "tools"),
    ("/v1/chat/completions", {**CHAT, "stream": {"yes": 1}}, "stream"),
    ("/v1/chat/completions", {"messages": CHAT["messages"]}, "model"),
    ("/v1/audio/speech", {"model": "tts-1", "input": "hi", "speed": "fast"}, "speed"),
    ("/v1/audio/speech", {"model": "tts-1", "input": "hi", "speed": 100}, "speed"),
    ("/v1/audio/speech", {"model": "tts-1", "input": ["hi"]}, "input"),
    ("/v1/audio/speech", {"model": "tts-1", "input": "x" * 5000}, "input"),
])
def test_a_wrong_type_or_an_out_of_range_value_is_a_400_naming_the_field(server, path, body, param):
    response = post(server, path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and param in error["message"]
    assert "Traceback" not in error["message"] and "lots" not in error["message"] and "x" * 50 not in error["message"]
    assert server.llama.evaluated == []


@pytest.mark.parametrize("fields, param", [({"response_format": "srt"}, "response_format"),
                                           ({"temperature": "warm"}, "temperature"),
                                           ({"language": "en; rm -rf /"}, "language"),
                                           ({"prompt": "words " * 1000}, "prompt"),
                                           ({"prompt": "x" * 200_000}, "file")])  # a part past 64 KB: not read
def test_bad_transcription_fields_are_400s(server, fields, param):
    response = transcribe(server, encoded_silence("wav", "pcm_s16le", 8000, 1), **fields)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert server.models.stt.heard == []


def test_a_failure_inside_is_a_500_that_echoes_nothing(server, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals /srv/phone/.env")

    monkeypatch.setattr(server.models.stt, "segments", explode)
    response = transcribe(server, encoded_silence("wav", "pcm_s16le", 8000, 1))
    assert response.status_code == 500
    assert "secret internals" not in response.text and "reference" in response.json()["error"]["message"]


# --- the bounded queue and clients that leave ---------------------------------------------------------------------
def wait_for(condition, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_full_queue_answers_429_at_once_and_frees_up(server):
    server.llama.hold.clear()  # the model is busy with the first request ...
    running = [threading.Thread(target=post, args=(server, "/v1/chat/completions"), kwargs={"json": CHAT})
               for _ in range(2)]  # ... and a second waits for it: the queue (2) is full
    for thread in running:
        thread.start()
    assert wait_for(lambda: len(server.llama.evaluated) == 1)
    time.sleep(0.3)
    started = time.monotonic()
    refused = post(server, "/v1/chat/completions", json=CHAT)
    assert refused.status_code == 429 and time.monotonic() - started < 2
    assert refused.headers["retry-after"] == "1" and "LOCAL_OPENAI_MAX_QUEUE" in refused.json()["error"]["message"]
    server.llama.hold.set()
    for thread in running:
        thread.join(20)
    assert post(server, "/v1/chat/completions", json=CHAT).status_code == 200
    assert len(server.llama.evaluated) == 3


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_while_it_waits_costs_no_prefill(server, stream):
    server.llama.hold.clear()
    first = threading.Thread(target=post, args=(server, "/v1/chat/completions"), kwargs={"json": CHAT})
    first.start()
    assert wait_for(lambda: len(server.llama.evaluated) == 1)
    # The second client gives up while the model is busy with the first (as the agent's timeout does).
    if stream:  # its answer has begun (the role, then keep-alives while it waits): it reads a little, then leaves
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json={**CHAT, "stream": True},
                          headers=AUTH, timeout=5) as response:
            assert response.status_code == 200
            assert next(response.iter_lines()).startswith("data: ")
    else:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=AUTH, timeout=1.5)
    time.sleep(1.5)  # the server notices (a streamed answer at its next keep-alive, at most a second later)
    server.llama.hold.set()
    first.join(20)
    time.sleep(0.5)
    assert server.llama.evaluated == [server.llama.evaluated[0]], "the abandoned request was evaluated"
    assert post(server, "/v1/chat/completions", json=CHAT).status_code == 200  # and its queue place is free


def test_the_endpoint_program_without_a_key_is_one_line_and_status_2(tmp_path):
    import subprocess
    import sys

    from stack.settings import REPO_ROOT

    env_file = tmp_path / ".env"
    env_file.write_text("LOCAL_OPENAI_PORT=21999\n")
    result = subprocess.run([sys.executable, "-m", "local_openai"], cwd=REPO_ROOT, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "PHONE_ENV_FILE": str(env_file)}, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: LOCAL_OPENAI_API_KEY is not set in {env_file} or the environment: run `python cli.py up` "
        "(it generates one) or set it yourself"]


def test_a_transcription_whose_client_left_while_it_waited_never_runs():
    """The real SpeechToText over a stand-in Whisper: one model, one decode at a time, the abandoned one skipped."""
    from local_openai.stt import SpeechToText

    class FakeWhisper:
        def __init__(self):
            self.hold, self.decoded = threading.Event(), []

        def transcribe(self, audio, **options):
            self.decoded.append(audio.size)
            self.hold.wait(30)
            return iter([SimpleNamespace(text="hello", start=0.0, end=1.0, tokens=[1], avg_logprob=-0.1,
                                         no_speech_prob=0.0, compression_ratio=1.0)]), None

    stt = SpeechToText.__new__(SpeechToText)
    stt.model_name, stt._model, stt._lock = "tiny.en", FakeWhisper(), threading.Lock()
    server = Server(LOCAL_OPENAI_MAX_QUEUE="4")
    server.models.stt = stt
    try:
        audio = encoded_silence("wav", "pcm_s16le", 8000, 1)
        first = threading.Thread(target=transcribe, args=(server, audio))
        first.start()
        assert wait_for(lambda: len(stt._model.decoded) == 1)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{server.url}/v1/audio/transcriptions", data={"model": "whisper-1"},
                       files={"file": ("a.wav", audio)}, headers=AUTH, timeout=1.5)
        time.sleep(0.5)
        stt._model.hold.set()
        first.join(20)
        time.sleep(0.5)
        assert len(stt._model.decoded) == 1, "the abandoned transcription was decoded"
        assert transcribe(server, audio).json() == {"text": "hello"}
    finally:
        server.stop()


def test_the_agents_own_requests_pass_every_check(server):
    """livekit-plugins-openai as the agent builds them (agent/providers.py), with the key from the settings: a text
    turn through the real assistant (its tools in the request), a synthesis and a transcription all get through."""
    import asyncio

    from livekit import rtc
    from livekit.agents import AgentSession

    from agent.assistant import PhoneAssistant
    from agent.providers import build_plugins, choose_providers, session_connect_options
    from agent.turn_policy import TurnPolicy

    async def run():
        choice = choose_providers(Settings.of(LOCAL_OPENAI_PORT=str(server.port), LOCAL_OPENAI_API_KEY=KEY))
        stt, llm, tts = build_plugins(choice, stt_prompt="Thanks for calling Foo Bakery. We have rye bread.")
        policy = TurnPolicy.load(Settings.of())
        async with llm, AgentSession(llm=llm, conn_options=session_connect_options()) as session:
            await session.start(PhoneAssistant(policy.profile, policy))
            await session.run(user_input="Hello")
        async with tts.synthesize("Hello there.") as stream:
            frames = [event.frame async for event in stream]
        heard = await stt.recognize([rtc.AudioFrame(bytes(32000), 16000, 1, 16000)])
        await stt.aclose()
        await tts.aclose()
        return frames, heard.alternatives[0].text

    frames, text = asyncio.run(run())
    assert len(server.llama.evaluated) == 1  # the greeting went to the LLM, tools and all
    assert frames and text == "hello" and server.models.stt.heard == [1.0]
