"""Hostile and careless clients against the running local AI endpoint (local_openai/, with its real models): each
probe sends one kind of abuse and says which status came back and which was right. The endpoint's own unit tests
(tests/test_local_openai_guard.py) cover the same guards case by case with stand-in models; these probes check that
the deployed endpoint, models loaded, answers them the same way and stays up.

Every probe is bounded (bytes sent, seconds waited) and talks only to 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import select
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from stack.settings import LOOPBACK

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3}
UPLOAD_OFFERED = 64 << 20  # what the oversized upload offers; the endpoint must stop reading long before


@dataclass
class Probe:
    name: str
    expected: str  # the status the endpoint must answer, in words
    got: str = ""
    ok: bool = False
    detail: str = ""


class Endpoint:
    def __init__(self, port: int, key: str, max_upload_mb: int, max_audio_s: int):
        self.port, self.key = port, key
        self.max_upload_mb, self.max_audio_s = max_upload_mb, max_audio_s
        self.url = f"http://{LOOPBACK}:{port}"
        self.auth = {"Authorization": f"Bearer {key}"}

    def post(self, path: str, timeout: float = 30, **options) -> httpx.Response:
        options["headers"] = {**self.auth, **options.get("headers", {})}
        return httpx.post(f"{self.url}{path}", timeout=timeout, **options)

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def raw(self, path: str, chunks: Iterable[bytes], headers: dict[str, str],
            limit_s: float = 30) -> tuple[bytes, int]:
        return raw_post(self.port, path, chunks, {**self.auth, **headers}, limit_s)


def raw_post(port: int, path: str, chunks: Iterable[bytes], headers: dict[str, str],
             limit_s: float = 30) -> tuple[bytes, int]:
    """A POST to 127.0.0.1:`port` sent chunk by chunk until the server answers or closes; (its answer, the body
    bytes sent). Raw, so that a body can be larger than any limit or never end."""
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{LOOPBACK}:{port}", **headers}.items())
    sent, answer = 0, b""
    with socket.create_connection((LOOPBACK, port), timeout=limit_s) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode())
        deadline = time.monotonic() + limit_s
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0] or time.monotonic() > deadline:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        try:
            while data := sock.recv(65536):
                answer += data
                if b"\r\n\r\n" in answer and len(answer.split(b"\r\n\r\n", 1)[1]) > 20:
                    break
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


def _chunked(parts: Iterable[bytes]) -> Iterable[bytes]:
    for part in parts:
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def _status(answer: bytes) -> str:
    line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    return line.split(" ")[1] if line.startswith("HTTP/") and " " in line else "no answer"


def encoded_silence(container: str, codec: str, rate: int, seconds: float) -> bytes:
    """`seconds` of digital silence, encoded: a few hundred KB that decode to hours of samples."""
    frame_size = {"libopus": 960, "libmp3lame": 1152}.get(codec, 4096)
    sample_format = "s16p" if codec == "libmp3lame" else "s16"
    import av
    import numpy as np

    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        zeros = np.zeros((1, frame_size), np.int16)
        for index in range(int(seconds * rate / frame_size)):
            frame = av.AudioFrame.from_ndarray(zeros, format=sample_format, layout="mono")
            frame.sample_rate, frame.pts = rate, index * frame_size
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def oversized_chunked_upload(endpoint: Endpoint, probe: Probe) -> None:
    boundary = "reliability"
    opening = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
               "Content-Type: audio/wav\r\n\r\n").encode()
    parts = [opening, *[b"\0" * 65536] * (UPLOAD_OFFERED // 65536)]
    answer, sent = endpoint.raw("/v1/audio/transcriptions", _chunked(parts),
                                {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                 "Transfer-Encoding": "chunked"})
    probe.got = _status(answer)
    limit = endpoint.max_upload_mb << 20
    probe.ok = probe.got == "413" and sent < limit + (8 << 20)
    probe.detail = f"{sent / 2**20:.1f} MB of {UPLOAD_OFFERED >> 20} MB sent before the answer (limit " \
                   f"{endpoint.max_upload_mb} MB)"


def declared_oversized_json(endpoint: Endpoint, probe: Probe) -> None:
    answer, sent = endpoint.raw("/v1/chat/completions", iter([b"{" * 1024] * 100),
                                {"Content-Type": "application/json", "Content-Length": str(50 << 20)})
    probe.got, probe.ok = _status(answer), _status(answer) == "413"
    probe.detail = f"{sent // 1024} KB read of a declared 50 MB"


def decompression_bomb(endpoint: Endpoint, probe: Probe) -> None:
    bomb = encoded_silence("flac", "flac", 8000, 3600)
    started = time.monotonic()
    response = endpoint.post("/v1/audio/transcriptions", data={"model": "whisper-1"},
                             files={"file": ("quiet.flac", bomb)})
    took = time.monotonic() - started
    probe.got = str(response.status_code)
    probe.ok = response.status_code == 400 and f"longer than {endpoint.max_audio_s} s" in response.text
    probe.detail = f"{len(bomb) // 1024} KB of FLAC that decodes to 1 h; answered in {took:.1f} s"


def _field_probe(body: dict, param: str) -> Callable[[Endpoint, Probe], None]:
    def run(endpoint: Endpoint, probe: Probe) -> None:
        response = endpoint.post("/v1/chat/completions", json=body)
        probe.got = str(response.status_code)
        try:
            error = response.json().get("error", {})
        except json.JSONDecodeError:
            error = {}
        probe.ok = response.status_code == 400 and error.get("param") == param
        probe.detail = f"names the field: {error.get('param')!r}"
    return run


def cross_origin(endpoint: Endpoint, probe: Probe) -> None:
    response = endpoint.post("/v1/chat/completions", json=CHAT, headers={"Origin": "http://evil.example"})
    probe.got, probe.ok = str(response.status_code), response.status_code == 403


def foreign_host(endpoint: Endpoint, probe: Probe) -> None:
    response = endpoint.post("/v1/chat/completions", json=CHAT, headers={"Host": "evil.example"})
    probe.got, probe.ok = str(response.status_code), response.status_code == 421


def no_key(endpoint: Endpoint, probe: Probe) -> None:
    response = httpx.post(f"{endpoint.url}/v1/chat/completions", json=CHAT, timeout=30)
    probe.got, probe.ok = str(response.status_code), response.status_code == 401


def clients_that_leave(endpoint: Endpoint, probe: Probe, count: int = 5) -> None:
    """`count` clients send a chat request and hang up before the answer; then one that waits is served."""
    request = json.dumps({**CHAT, "max_tokens": 64, "stream": True}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {LOOPBACK}:{endpoint.port}\r\n"
            f"Authorization: Bearer {endpoint.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(request)}\r\n\r\n").encode()
    for _ in range(count):
        with socket.create_connection((LOOPBACK, endpoint.port), timeout=10) as sock:
            sock.sendall(head + request)
            time.sleep(0.1)
    started = time.monotonic()
    response = endpoint.post("/v1/chat/completions", json=CHAT, timeout=120)
    probe.got, probe.ok = str(response.status_code), response.status_code == 200
    probe.detail = f"{count} clients left mid-request; the next one was answered in {time.monotonic() - started:.1f} s"


PROBES: list[tuple[str, str, Callable[[Endpoint, Probe], None]]] = [
    ("oversized chunked upload (64 MB, no Content-Length)", "413, reading stopped near the limit",
     oversized_chunked_upload),
    ("declared 50 MB JSON body", "413 before the body is read", declared_oversized_json),
    ("decompression bomb (1 h of silence as FLAC)", "400 naming the duration cap", decompression_bomb),
    ("max_tokens = 10^9", "400 naming max_tokens", _field_probe({**CHAT, "max_tokens": 10**9}, "max_tokens")),
    ("wrong type: max_tokens = \"lots\"", "400 naming max_tokens",
     _field_probe({**CHAT, "max_tokens": "lots"}, "max_tokens")),
    ("wrong type: messages = \"hello\"", "400 naming messages", _field_probe({**CHAT, "messages": "hello"},
                                                                            "messages")),
    ("cross-origin POST (Origin: http://evil.example)", "403", cross_origin),
    ("another Host (DNS rebinding)", "421", foreign_host),
    ("no API key", "401", no_key),
    ("clients that disconnect mid-request (5)", "the next request is served: 200", clients_that_leave),
]


def run_probes(endpoint: Endpoint, progress: Callable[[str], None] | None = None) -> list[Probe]:
    results = []
    for name, expected, run in PROBES:
        probe = Probe(name, expected)
        try:
            run(endpoint, probe)
        except (httpx.HTTPError, OSError) as error:
            probe.got, probe.ok, probe.detail = "error", False, f"{type(error).__name__}: {error}"
        results.append(probe)
        if progress:
            progress(f"  {name}: {probe.got} ({'ok' if probe.ok else 'WRONG'}) {probe.detail}")
    return results
