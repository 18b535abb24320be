"""The softphone's audio: what the caller says (WAV files, or text spoken by the local voice), WAV in and out, and
the pjsua2 media port that paces it into the call every 20 ms while voice detection times what comes back."""

from __future__ import annotations

import sys
import threading
import time
import wave
from pathlib import Path

import numpy as np

from tools.softphone.results import SoftphoneError

# The port between the call and us runs at 16 kHz, so G.722 (wideband) reaches us unharmed; PCMU is resampled up.
PORT_RATE = 16000
FRAME_MS = 20
FRAME_SAMPLES = PORT_RATE * FRAME_MS // 1000


# ---------------------------------------------------------------- audio input and output

def load_wav(path: str | Path) -> np.ndarray:
    """An audio file (WAV at any rate, any channel count) as int16 mono at the port rate."""
    from local_openai.audio import AudioDecodeError, decode_to_mono

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SoftphoneError(f"cannot read audio file {path}: {error.strerror}") from None
    try:
        samples = decode_to_mono(data, PORT_RATE)
    except AudioDecodeError as error:
        raise SoftphoneError(f"cannot play {path}: {error}") from None
    return np.clip(samples * 32767.0, -32768, 32767).astype(np.int16)


def synthesize(text: str, tts=None) -> np.ndarray:
    """`text` spoken by the local Piper voice, int16 mono at the port rate."""
    from local_openai.audio import StreamResampler

    if tts is None:
        from local_openai.tts import TextToSpeech

        print("loading the local TTS voice for --say ...", file=sys.stderr, flush=True)
        tts = TextToSpeech()
    resampler = StreamResampler(tts.sample_rate, PORT_RATE)
    chunks = [resampler.push(chunk) for chunk in tts.synthesize(text)]
    chunks.append(resampler.push(None))
    audio = np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
    if audio.size == 0:
        raise SoftphoneError(f"the TTS produced no audio for {text!r}")
    return audio


def write_wav(path: str | Path, samples: np.ndarray, rate: int = PORT_RATE) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())


def read_wav(path: str | Path) -> np.ndarray:
    """The int16 samples of a mono 16-bit WAV, as `write_wav` writes them (a call's recording)."""
    with wave.open(str(path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")


# ---------------------------------------------------------------- the media port

class CallAudio:
    """What the media thread shares with the call loop: the outgoing queue and everything received."""

    def __init__(self, threshold: float):
        self.lock = threading.Lock()
        self.threshold = threshold
        self.outgoing: np.ndarray | None = None
        self.out_pos = 0
        self.speech_end_at: float | None = None
        self.sent_frames = 0
        self.received: list[np.ndarray] = []
        self.voiced_frames: list[int] = []  # indices of received frames above the threshold
        self.frame_times: list[float] = []
        self.last_voice_at: float | None = None

    def speak(self, samples: np.ndarray) -> None:
        with self.lock:
            self.outgoing, self.out_pos, self.speech_end_at = samples, 0, None

    def next_frame(self) -> bytes:
        with self.lock:
            self.sent_frames += 1
            if self.outgoing is None:
                return bytes(FRAME_SAMPLES * 2)  # silence keeps RTP flowing, or livekit-sip ends the call
            chunk = self.outgoing[self.out_pos:self.out_pos + FRAME_SAMPLES]
            self.out_pos += FRAME_SAMPLES
            if self.out_pos >= self.outgoing.size:
                self.outgoing = None
                self.speech_end_at = time.monotonic()
            if chunk.size < FRAME_SAMPLES:
                chunk = np.concatenate([chunk, np.zeros(FRAME_SAMPLES - chunk.size, np.int16)])
            return chunk.astype("<i2").tobytes()

    def frame_received(self, data: bytes) -> None:
        now = time.monotonic()
        samples = np.frombuffer(data, dtype="<i2").copy()
        voiced = samples.size > 0 and float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > self.threshold
        with self.lock:
            self.received.append(samples)
            self.frame_times.append(now)
            if voiced:
                self.voiced_frames.append(len(self.received) - 1)
                self.last_voice_at = now

    def first_voice_after(self, moment: float) -> float | None:
        """When the first voiced frame at or after `moment` arrived."""
        with self.lock:
            first = None
            for index in reversed(self.voiced_frames):
                if self.frame_times[index] < moment:
                    break
                first = self.frame_times[index]
            return first

    def sample_range(self, start: float, end: float) -> list[int]:
        """[first, last) sample offsets in the received audio of the frames that arrived between two moments."""
        with self.lock:
            inside = [i for i, t in enumerate(self.frame_times) if start <= t <= end]
        return [inside[0] * FRAME_SAMPLES, (inside[-1] + 1) * FRAME_SAMPLES] if inside else [0, 0]

    def all_received(self) -> np.ndarray:
        with self.lock:
            return np.concatenate(self.received) if self.received else np.zeros(0, np.int16)


def make_media_port(pj, audio: CallAudio):
    """A pjsua2 AudioMediaPort that sends `audio`'s outgoing frames and hands it every frame received."""
    class Port(pj.AudioMediaPort):
        def onFrameRequested(self, frame):  # noqa: N802 - pjsua2 API
            frame.type = pj.PJMEDIA_TYPE_AUDIO
            frame.buf = pj.ByteVector(audio.next_frame())
            frame.size = FRAME_SAMPLES * 2

        def onFrameReceived(self, frame):  # noqa: N802 - pjsua2 API
            if frame.type == pj.PJMEDIA_TYPE_AUDIO and frame.size:
                audio.frame_received(bytes(bytearray(frame.buf)))

    port = Port()
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, PORT_RATE, 1, FRAME_MS * 1000, 16)
    port.createPort("softphone", fmt)
    return port
