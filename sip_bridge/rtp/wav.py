"""WAV files as int16 mono PCM at a codec's sample rate (stdlib `wave`, PyAV resampling)."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np

__all__ = ["WavFormatError", "read_wav", "resample", "write_wav"]


class WavFormatError(ValueError):
    """A WAV file is not one this module reads (16-bit PCM, 1 or 2 channels)."""


def read_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read a 16-bit PCM WAV as int16 mono at `sample_rate` (stereo is averaged)."""
    try:
        with wave.open(str(path), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            raw = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavFormatError(f"{path}: not a PCM WAV file ({exc})") from exc
    if width != 2:
        raise WavFormatError(f"{path}: {8 * width}-bit samples, only 16-bit PCM is supported")
    if channels not in (1, 2):
        raise WavFormatError(f"{path}: {channels} channels, only mono or stereo is supported")
    pcm = np.frombuffer(raw, dtype="<i2")
    if channels == 2:
        pcm = (pcm.reshape(-1, 2).astype(np.int32).sum(axis=1) // 2).astype(np.int16)
    else:
        pcm = pcm.astype(np.int16)
    return resample(pcm, rate, sample_rate) if rate != sample_rate else pcm


def write_wav(path: str | Path, pcm: np.ndarray, sample_rate: int) -> None:
    """Write int16 mono PCM as a 16-bit little-endian WAV."""
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(np.asarray(pcm, dtype="<i2").tobytes())


def resample(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample int16 mono PCM with libswresample (whole signal, flushed)."""
    if from_rate == to_rate:
        return pcm
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(pcm, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = from_rate
    frame.pts = 0
    parts = [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
    parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)
