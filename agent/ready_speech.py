"""Replies said word for word, synthesized once per machine and voice, and played from disk.

Most caller turns are answered with a sentence written beforehand: the turn policy's fixed replies ("I'm sorry, I
don't have that information ..."), the knowledge base's answers, the tools' sentences. In a given voice their audio
never changes, so each TTS request that speaking them makes (one per clause or sentence, agent/first_clause.py) is
made once, in the worker's main process, and kept under the model cache; a turn answered with one then starts its
audio without a TTS round trip (measured: docs/benchmarks.md). Any other text goes to the TTS as before, and so does
everything until the audio is ready.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path

from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, tts, utils

from stack.files import atomic_write

from .first_clause import FirstClauseTokenizer

log = logging.getLogger("agent.ready_speech")


class ReadySpeech:
    """The audio (16-bit mono PCM) of TTS requests in one voice, kept as files under `cache_dir`."""

    def __init__(self, cache_dir: Path, voice: str) -> None:
        self.cache_dir, self.voice = cache_dir, voice

    def _path(self, text: str) -> Path:
        key = hashlib.sha256(f"{self.voice}|{text.strip()}".encode()).hexdigest()[:32]
        return self.cache_dir / f"{key}.pcm"

    def audio(self, text: str) -> bytes | None:
        try:
            return self._path(text).read_bytes() or None
        except FileNotFoundError:
            return None

    async def prepare(self, replies: Iterable[str], speech: tts.TTS) -> int:
        """Synthesizes with `speech` the requests that saying `replies` makes and that are not on disk yet; returns
        how many it made."""
        pieces = [piece for reply in replies for piece in await requests_for(reply)]
        missing = [text for text in dict.fromkeys(pieces) if not self._path(text).is_file()]
        started = time.monotonic()
        for text in missing:
            async with speech.synthesize(text) as stream:
                pcm = b"".join([bytes(event.frame.data) async for event in stream])
            pcm = pcm[:(len(pcm.rstrip(b"\0")) + 1) & ~1]  # the silence livekit pads a request with: it pads it again
            atomic_write(self._path(text), pcm, mode=0o644)
        if missing:
            log.info("ready speech: %d TTS requests synthesized in %.1f s", len(missing), time.monotonic() - started)
        return len(missing)


async def requests_for(reply: str) -> list[str]:
    """The texts that the TTS is asked for when `reply` is said: the pieces agent/first_clause.py cuts it into."""
    pieces = FirstClauseTokenizer().stream()
    pieces.push_text(reply)
    pieces.end_input()
    return [text for event in [event async for event in pieces] if (text := event.token.strip())]


class ReadyTTS(tts.TTS):
    """`speech`, except that a request whose audio `ready` holds is played from there."""

    def __init__(self, speech: tts.TTS, ready: ReadySpeech) -> None:
        super().__init__(capabilities=speech.capabilities, sample_rate=speech.sample_rate,
                         num_channels=speech.num_channels)
        self._speech, self._ready = speech, ready
        speech.on("metrics_collected", lambda metrics: self.emit("metrics_collected", metrics))

    @property
    def model(self) -> str:
        return self._speech.model

    @property
    def provider(self) -> str:
        return self._speech.provider

    def synthesize(self, text: str, *,
                   conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS) -> tts.ChunkedStream:
        audio = self._ready.audio(text)
        if audio is None:
            return self._speech.synthesize(text, conn_options=conn_options)
        return _ReadyStream(tts=self, input_text=text, audio=audio, conn_options=conn_options)

    def prewarm(self) -> None:
        self._speech.prewarm()

    async def aclose(self) -> None:
        await self._speech.aclose()


class _ReadyStream(tts.ChunkedStream):
    def __init__(self, *, tts: ReadyTTS, input_text: str, audio: bytes, conn_options: APIConnectOptions) -> None:
        super().__init__(tts=tts, input_text=input_text, conn_options=conn_options)
        self._audio = audio

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(request_id=utils.shortuuid(), sample_rate=self._tts.sample_rate,
                                  num_channels=self._tts.num_channels, mime_type="audio/pcm")
        output_emitter.push(self._audio)
        output_emitter.flush()
