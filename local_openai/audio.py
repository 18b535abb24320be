"""Decoding and resampling with PyAV (libswresample), the one audio library already in the stack."""

from __future__ import annotations

import io

import av
import numpy as np


class AudioDecodeError(ValueError):
    pass


def decode_to_mono(data: bytes, sample_rate: int) -> np.ndarray:
    """Any audio file PyAV can read (WAV at any rate, ...) as float32 mono at `sample_rate`."""
    if not data:
        raise AudioDecodeError("the audio file is empty")
    try:
        with av.open(io.BytesIO(data)) as container:
            if not container.streams.audio:
                raise AudioDecodeError("the file has no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks = []
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as error:
        raise AudioDecodeError(f"could not decode the audio file: {error}") from None
    if not chunks:
        raise AudioDecodeError("the audio file holds no samples")
    return np.concatenate(chunks).astype(np.float32)


class StreamResampler:
    """Resamples a stream of int16 mono chunks from one rate to another, keeping filter state across chunks."""

    def __init__(self, from_rate: int, to_rate: int):
        self.from_rate, self.to_rate = from_rate, to_rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
        self._pts = 0

    def push(self, samples: np.ndarray | None) -> np.ndarray:
        """Resampled audio for `samples` (None flushes what the filter still holds)."""
        if self.from_rate == self.to_rate:
            return samples if samples is not None else np.zeros(0, np.int16)
        frame = None
        if samples is not None:
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1).astype(np.int16), format="s16", layout="mono")
            frame.sample_rate = self.from_rate
            frame.pts = self._pts
            self._pts += samples.size
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out).astype(np.int16) if out else np.zeros(0, np.int16)
