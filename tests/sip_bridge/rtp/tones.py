"""Tone generation and frequency measurement shared by the RTP tests."""

from __future__ import annotations

import numpy as np


def tone(frequency: float, sample_rate: int, seconds: float, amplitude: int = 8000) -> np.ndarray:
    n = np.arange(int(sample_rate * seconds))
    return (amplitude * np.sin(2 * np.pi * frequency * n / sample_rate)).astype(np.int16)


def dominant_frequency(pcm: np.ndarray, sample_rate: int) -> float:
    """Frequency of the strongest FFT bin (Hann window, zero-padded to 1 Hz bins)."""
    x = pcm.astype(np.float64)
    x -= x.mean()
    size = max(len(x), sample_rate)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=size))
    return float(np.argmax(spectrum) * sample_rate / size)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0
