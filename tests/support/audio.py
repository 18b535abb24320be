"""Test signals and what the tests measure in audio: tones, their pitch, and how much of a recording is voiced."""

from __future__ import annotations

import numpy as np

from tools.softphone import DEFAULT_VOICE_THRESHOLD, FRAME_SAMPLES, PORT_RATE


def tone(freq: float, seconds: float, rate: int = PORT_RATE, amplitude: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant_frequency(samples: np.ndarray, rate: int = PORT_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


def voiced_seconds(samples: np.ndarray, threshold: float = DEFAULT_VOICE_THRESHOLD) -> float:
    """Seconds of 20 ms frames (at the softphone's rate) louder than `threshold` RMS: how long someone spoke."""
    frames = samples[: samples.size // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES).astype(np.float64)
    return float((np.sqrt((frames ** 2).mean(axis=1)) > threshold).sum() * FRAME_SAMPLES / PORT_RATE)
