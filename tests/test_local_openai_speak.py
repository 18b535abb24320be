"""`python -m local_openai.speak`, run as the agent runs it: a program of its own whose stdout is 16-bit PCM."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from stack.settings import REPO_ROOT

APOLOGY = "Sorry, our assistant is not available right now. Please call again later. Goodbye."


def speak(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "local_openai.speak", *args], cwd=REPO_ROOT, capture_output=True,
                          timeout=120)


@pytest.mark.models
def test_speaks_the_text_as_pcm_at_the_rate_asked_for():
    at_24k, at_16k = speak(APOLOGY), speak("--sample-rate", "16000", APOLOGY)
    assert at_24k.returncode == 0 and at_16k.returncode == 0, at_24k.stderr.decode() + at_16k.stderr.decode()
    pcm = np.frombuffer(at_24k.stdout, dtype="<i2")
    seconds = pcm.size / 24000
    # Fifteen words at a speaking pace: a few seconds, neither a click nor a minute.
    assert 2.0 < seconds < 12.0, seconds
    assert np.sqrt(np.mean(pcm.astype(np.float64) ** 2)) > 300, "the audio is (nearly) silent"
    # The same speech at another rate: about as long (Piper varies its timing between runs by a few per cent).
    assert len(at_16k.stdout) % 2 == 0
    assert abs(len(at_16k.stdout) / 2 / 16000 - seconds) < 0.1 * seconds


@pytest.mark.unit
def test_an_unknown_voice_is_one_line_on_stderr_and_no_audio():
    result = speak("--voice", "/nonexistent/voice.onnx", "Hello")
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode().strip() == (
        "error: LOCAL_TTS_VOICE '/nonexistent/voice.onnx' is not a piper .onnx file")


@pytest.mark.models
def test_the_agents_fixed_sentences_are_synthesized_once_and_then_read_from_disk(tmp_path):
    """agent/failures.py's OfflineVoice: prepared once (in a thread beside the worker), a busy caller's sentence
    is on disk and plays at once; a sentence not prepared is synthesized when asked."""
    import asyncio

    from agent.failures import OfflineVoice

    voice = OfflineVoice(tmp_path, voice="en_US-joe-medium")
    voice.prepare([APOLOGY])
    [kept] = list(tmp_path.glob("*.pcm"))
    made_at = kept.stat().st_mtime_ns
    OfflineVoice(tmp_path, voice="en_US-joe-medium").prepare([APOLOGY])  # another process: nothing to do
    assert kept.stat().st_mtime_ns == made_at
    assert asyncio.run(voice.pcm(APOLOGY)) == kept.read_bytes()
    assert 2.0 < len(kept.read_bytes()) / 2 / 24000 < 12.0
    other = asyncio.run(voice.pcm("One moment, please."))
    assert len(other) % 2 == 0 and len(other) > 24000  # over half a second of speech
    assert len(list(tmp_path.glob("*.pcm"))) == 1  # pcm() does not write: only prepare() does


@pytest.mark.models
def test_a_reply_of_several_sentences_is_transcribed_whole_wherever_its_clip_starts():
    """The softphone's transcript of a reply (tools/softphone transcribe_result). Whisper tiny's greedy decoding
    without timestamp tokens read this reply as "Thank you." alone for 13 of these 20 clip starts (CI failed on it)."""
    from local_openai.audio import StreamResampler
    from local_openai.stt import SpeechToText
    from local_openai.tts import TextToSpeech
    from tools.softphone import transcribe_result
    from tools.softphone.call import PORT_RATE
    from tools.softphone.results import CallResult, Turn

    speech = TextToSpeech()
    reply = np.concatenate([chunk for sentence in ("Thank you.", "Shall we call you back on the number you're "
                                                   "calling from, ending in 0 1 6 6?")
                            for chunk in speech.synthesize(sentence)])
    resampler = StreamResampler(speech.sample_rate, PORT_RATE)
    received = np.concatenate([resampler.push(reply), resampler.push(None)])
    stt = SpeechToText()
    starts = [int(PORT_RATE * cut) for cut in np.arange(0, 0.5, 0.025)]
    result = CallResult(turns=[Turn(source="say", speech_ms=0) for _ in starts],
                        segments={str(turn): [start, received.size] for turn, start in enumerate(starts)})
    transcribe_result(result, stt, received)
    cut_short = [turn.reply_text for turn in result.turns if "calling from" not in (turn.reply_text or "")]
    assert not cut_short, cut_short
