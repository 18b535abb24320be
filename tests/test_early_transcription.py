"""Early transcription (agent/early_transcription.py) on real speech through the real Silero VAD: a transcript started
at a short silence is the turn's when the caller stays silent, and is dropped when they go on speaking, so the
transcript always covers the whole speech. The STT here only reports how much audio it was sent."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions, stt
from livekit.plugins import silero

from agent.early_transcription import EarlyTranscription

pytestmark = pytest.mark.models

RATE = 16000


class AudioLength(stt.STT):
    """Transcribes any audio as its length in seconds, a little later, as a server would."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=False, interim_results=False))
        self.requests = 0

    async def _recognize_impl(self, buffer, *, language=None, conn_options: APIConnectOptions) -> stt.SpeechEvent:
        self.requests += 1
        frame = rtc.combine_audio_frames(buffer)
        await asyncio.sleep(0.05)
        seconds = frame.samples_per_channel / frame.sample_rate
        return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                               alternatives=[stt.SpeechData(language="en", text=f"{seconds:.2f}")])


@pytest.fixture(scope="module")
def spoken():
    from local_openai.tts import TextToSpeech

    tts = TextToSpeech()

    def say(text: str) -> np.ndarray:
        pcm = np.concatenate(list(tts.synthesize(text))).astype(np.float32)
        return np.interp(np.arange(0, len(pcm), tts.sample_rate / RATE), np.arange(len(pcm)), pcm).astype(np.int16)

    return say


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.int16)


async def transcribe(audio: np.ndarray) -> tuple[list[float], object, AudioLength]:
    """The final transcripts (seconds of audio each covered), the stream and the STT, for `audio` fed in 10 ms
    frames as fast as the VAD takes them."""
    whisper = AudioLength()
    adapter = EarlyTranscription(stt=whisper, vad=silero.VAD.load(min_silence_duration=0.35))
    stream = adapter.stream()
    step = RATE // 100
    for start in range(0, len(audio), step):
        chunk = audio[start:start + step]
        stream.push_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, len(chunk)))
        await asyncio.sleep(0.001)  # let the VAD keep up, as with audio arriving in real time
    stream.end_input()
    finals = [float(event.alternatives[0].text) async for event in stream
              if event.type == stt.SpeechEventType.FINAL_TRANSCRIPT]
    return finals, stream, whisper


def test_a_silence_that_lasts_keeps_the_early_transcript(spoken):
    speech = spoken("Do you have sourdough today?")
    finals, stream, whisper = asyncio.run(transcribe(np.concatenate([silence(0.3), speech, silence(1.0)])))
    assert stream.early_used == 1 and stream.early_dropped == 0
    assert whisper.requests == 1  # the speech was transcribed once, early
    assert len(finals) == 1 and finals[0] >= len(speech) / RATE - 0.1  # and all of it


def test_a_caller_who_goes_on_after_a_short_pause_is_transcribed_whole(spoken):
    first, second = spoken("I'd like to order a cake"), spoken("for my daughter's birthday.")
    # Piper ends the first half with about 0.16 s of silence and starts the second after 0.04 s: a pause of about
    # 0.3 s, longer than the early start (0.15 s), shorter than the end of speech (0.35 s).
    finals, stream, _ = asyncio.run(transcribe(np.concatenate(
        [silence(0.3), first, silence(0.1), second, silence(1.0)])))
    assert stream.early_dropped >= 1 and stream.early_used == 1
    assert len(finals) == 1 and finals[0] >= (len(first) + len(second)) / RATE  # one transcript of both halves
