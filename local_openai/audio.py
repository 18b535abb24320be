"""Decoding and resampling with PyAV (libswresample), the one audio library already in the stack."""

from __future__ import annotations

import io
from typing import BinaryIO

import av
import numpy as np


class AudioDecodeError(ValueError):
    pass


class AudioTooLong(AudioDecodeError):
    pass


# The containers we open, each told to FFmpeg by name: it never probes the upload, so no other demuxer (playlists,
# image sequences, concat lists, which can open other files) ever sees it.
FORMATS = {"wav": "wav", "flac": "flac", "ogg": "ogg", "mp3": "mp3", "mp4": "mp4", "webm": "matroska"}
CODECS = {"pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_u8", "pcm_mulaw", "pcm_alaw", "flac", "vorbis",
          "opus", "mp3", "mp3float", "aac"}
ALLOWED = "WAV, FLAC, OGG (Vorbis, Opus), MP3, M4A/MP4 (AAC) or WebM (Opus, Vorbis)"


def sniff_format(head: bytes) -> str | None:
    """The container of an upload, from its first bytes; None for anything not in FORMATS."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    return None


def decode_to_mono(data: bytes | BinaryIO, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """An audio file (bytes or a seekable file) in one of FORMATS as float32 mono at `sample_rate`.

    Decoding stops as soon as the audio passes `max_seconds` (AudioTooLong): a small, highly compressed file of a
    long silence never grows into gigabytes of samples."""
    source = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    head = source.read(16)
    source.seek(0)
    if not head:
        raise AudioDecodeError("the audio file is empty")
    kind = sniff_format(head)
    if kind is None:
        raise AudioDecodeError(f"the audio format is not supported; send {ALLOWED}")
    limit = None if max_seconds is None else int(max_seconds * sample_rate)
    chunks, total = [], 0
    try:
        with av.open(source, mode="r", format=FORMATS[kind]) as container:
            if not container.streams.audio:
                raise AudioDecodeError("the file has no audio stream")
            stream = container.streams.audio[0]
            if stream.codec_context.name not in CODECS:
                raise AudioDecodeError(f"the audio codec {stream.codec_context.name} is not supported; send {ALLOWED}")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if limit is not None and total > limit:
                    raise AudioTooLong(f"the audio is longer than {max_seconds:.0f} s, the most this endpoint "
                                       "transcribes; send it in shorter pieces")
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
