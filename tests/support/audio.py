"""Test audio: tone files for real peers, and checking that a recording carries a tone.

What the peers want:
- baresip's ``aufile`` source plays a WAV file, S16LE mono at the codec's clock rate
  (8000 Hz for PCMU/PCMA, 16000 Hz for G.722); its ``sndfile`` module records WAV files.
- SIPp's ``rtp_stream`` action plays a raw, headerless G.711 file (u-law for payload type 0,
  A-law for 8): one byte per sample at 8000 Hz, 160 bytes per 20 ms packet.

The G.711 coders here follow ITU-T G.711 directly (segment/mantissa arithmetic) and are
vectorised with numpy; they exist to make test files, not for the media path.

Audio is judged by frequency and by energy, never by counting packets: ``analyse_tone`` finds
the dominant frequency with a Hann-windowed FFT and log-parabolic peak interpolation (a few
hundredths of a bin), after cutting leading and trailing silence, and reports how much of the
energy sits in that peak, so that noise or clicks of the right loudness do not pass.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "ToneAnalysis",
    "ToneAnalysisError",
    "WavFormatError",
    "alaw_decode",
    "alaw_encode",
    "analyse_tone",
    "assert_tone",
    "assert_wav_has_tone",
    "dominant_frequency",
    "read_wav",
    "tone",
    "ulaw_decode",
    "ulaw_encode",
    "write_tone_alaw",
    "write_tone_ulaw",
    "write_tone_wav",
    "write_wav",
]

FULL_SCALE = 32768.0


class WavFormatError(ValueError):
    """A file is not a WAV file this module can read (PCM 16-bit)."""


class ToneAnalysisError(ValueError):
    """The samples cannot be analysed (too short, or nothing but silence)."""


# --- generating ----------------------------------------------------------------------------


def tone(
    frequency: float,
    seconds: float,
    rate: int = 8000,
    amplitude: float = 0.5,
    *,
    leading_silence: float = 0.0,
) -> np.ndarray:
    """A sine tone as int16 samples; ``amplitude`` is a fraction of full scale (0..1]."""
    if not 0.0 < amplitude <= 1.0:
        raise ValueError(f"amplitude must be in (0, 1], got {amplitude}")
    if frequency <= 0 or frequency >= rate / 2:
        raise ValueError(f"frequency {frequency} Hz is not below Nyquist of {rate} Hz")
    n = round(seconds * rate)
    t = np.arange(n) / rate
    # 32767 not 32768: a full-scale sine must not wrap to -32768.
    samples = np.round(amplitude * 32767.0 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    if leading_silence > 0:
        samples = np.concatenate([np.zeros(round(leading_silence * rate), np.int16), samples])
    return samples


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """Write int16 mono samples as a canonical 44-byte-header PCM WAV file."""
    data = np.asarray(samples, dtype="<i2").tobytes()
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(data),
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        rate,
        rate * 2,
        2,
        16,
        b"data",
        len(data),
    )
    path = Path(path)
    path.write_bytes(header + data)
    return path


def write_tone_wav(
    path: str | Path,
    frequency: float,
    seconds: float,
    rate: int = 8000,
    amplitude: float = 0.5,
    *,
    leading_silence: float = 0.0,
) -> Path:
    """Write a tone as S16LE mono WAV (what baresip's aufile source plays)."""
    samples = tone(frequency, seconds, rate, amplitude, leading_silence=leading_silence)
    return write_wav(path, samples, rate)


def write_tone_ulaw(
    path: str | Path, frequency: float, seconds: float, amplitude: float = 0.5
) -> Path:
    """Write a tone as raw headerless u-law at 8000 Hz (SIPp ``rtp_stream`` with pt 0)."""
    path = Path(path)
    path.write_bytes(ulaw_encode(tone(frequency, seconds, 8000, amplitude)).tobytes())
    return path


def write_tone_alaw(
    path: str | Path, frequency: float, seconds: float, amplitude: float = 0.5
) -> Path:
    """Write a tone as raw headerless A-law at 8000 Hz (SIPp ``rtp_stream`` with pt 8)."""
    path = Path(path)
    path.write_bytes(alaw_encode(tone(frequency, seconds, 8000, amplitude)).tobytes())
    return path


# --- G.711 (ITU-T G.711), for test files -----------------------------------------------------

# Segment number of a biased u-law magnitude, indexed by (magnitude >> 7): floor(log2), 0 for 0.
_SEGMENT_OF_HIGH_BITS = np.array(
    [0] + [int(np.floor(np.log2(i))) for i in range(1, 256)], dtype=np.int32
)
_ULAW_BIAS = 0x84
_ULAW_CLIP = 32635


def ulaw_encode(samples: np.ndarray) -> np.ndarray:
    """Encode int16 samples to u-law bytes (uint8)."""
    x = np.asarray(samples, dtype=np.int32)
    sign = np.where(x < 0, 0x80, 0x00)
    magnitude = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS
    segment = _SEGMENT_OF_HIGH_BITS[magnitude >> 7]
    mantissa = (magnitude >> (segment + 3)) & 0x0F
    return (~(sign | (segment << 4) | mantissa) & 0xFF).astype(np.uint8)


def ulaw_decode(codes: np.ndarray | bytes) -> np.ndarray:
    """Decode u-law bytes to int16 samples."""
    c = ~np.frombuffer(bytes(codes), np.uint8).astype(np.int32) & 0xFF
    segment = (c >> 4) & 0x07
    magnitude = (((c & 0x0F) << 3) + _ULAW_BIAS) << segment
    magnitude -= _ULAW_BIAS
    return np.where(c & 0x80, -magnitude, magnitude).astype(np.int16)


def alaw_encode(samples: np.ndarray) -> np.ndarray:
    """Encode int16 samples to A-law bytes (uint8), even bits inverted as G.711 says."""
    x = np.asarray(samples, dtype=np.int32)
    positive = x >= 0
    # 13-bit magnitude; negative values use the one's complement so that -1..-8 map to 0.
    magnitude = np.minimum(np.where(positive, x, ~x) >> 3, 4095)
    segment = np.where(magnitude < 32, 0, _SEGMENT_OF_HIGH_BITS[magnitude >> 5] + 1)
    mantissa = np.where(segment == 0, magnitude >> 1, magnitude >> segment) & 0x0F
    code = np.where(positive, 0x80, 0x00) | (segment << 4) | mantissa
    return (code ^ 0x55).astype(np.uint8)


def alaw_decode(codes: np.ndarray | bytes) -> np.ndarray:
    """Decode A-law bytes to int16 samples."""
    c = np.frombuffer(bytes(codes), np.uint8).astype(np.int32) ^ 0x55
    segment = (c >> 4) & 0x07
    magnitude = ((c & 0x0F) << 4) + 8
    magnitude = np.where(segment > 0, (magnitude + 0x100) << np.maximum(segment - 1, 0), magnitude)
    return np.where(c & 0x80, magnitude, -magnitude).astype(np.int16)


# --- reading -----------------------------------------------------------------------------------


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit PCM WAV file: (samples int16 of the first channel, sample rate).

    Written by hand rather than with ``wave`` because libsndfile (baresip's recorder) may
    write WAVE_FORMAT_EXTENSIBLE, and a recording cut short by a killed peer keeps a zero or
    too-large data size in its header: then the data runs to the end of the file.
    """
    raw = Path(path).read_bytes()
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise WavFormatError(f"{path}: not a RIFF/WAVE file")
    offset = 12
    fmt: tuple[int, int, int, int] | None = None
    while offset + 8 <= len(raw):
        chunk_id = raw[offset : offset + 4]
        (size,) = struct.unpack_from("<I", raw, offset + 4)
        body = offset + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(raw):
                raise WavFormatError(f"{path}: fmt chunk of {size} bytes is too short")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", raw, body)
            if tag == 0xFFFE and size >= 26:
                (tag,) = struct.unpack_from("<H", raw, body + 24)  # sub-format GUID's first 2
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavFormatError(f"{path}: data chunk before fmt chunk")
            tag, channels, rate, bits = fmt
            if tag != 1 or bits != 16 or channels < 1:
                raise WavFormatError(
                    f"{path}: format tag {tag}, {bits} bits, {channels} channels; "
                    "only 16-bit PCM is supported"
                )
            end = len(raw) if size == 0 or body + size > len(raw) else body + size
            usable = (end - body) // (2 * channels) * (2 * channels)
            samples = np.frombuffer(raw[body : body + usable], dtype="<i2")
            return samples[::channels].astype(np.int16), rate
        offset = body + size + (size & 1)
    raise WavFormatError(f"{path}: no data chunk")


# --- analysing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToneAnalysis:
    """What ``analyse_tone`` measured on the non-silent part of a signal."""

    frequency_hz: float
    """Dominant frequency, interpolated between FFT bins."""
    rms_dbfs: float
    """Level of the analysed part, dB relative to a full-scale square wave."""
    tone_ratio: float
    """Fraction (0..1) of the energy within a few bins of the dominant frequency."""
    seconds: float
    """Length of the analysed part (after skipping and trimming silence)."""


def _as_float(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    if x.dtype.kind in "iu":
        return x.astype(np.float64) / FULL_SCALE
    return x.astype(np.float64)


def _non_silent_part(samples: np.ndarray, rate: int, skip_seconds: float) -> np.ndarray:
    """Samples after ``skip_seconds`` with leading and trailing silence cut off.

    Silence is anything below 5 % of the peak (and below -70 dBFS in any case), so the
    jitter-buffer zeros at the start of a recording and the tail after the far end hung up
    are not analysed.
    """
    x = _as_float(samples)[max(0, round(skip_seconds * rate)) :]
    if x.size == 0:
        raise ToneAnalysisError(f"nothing left after skipping {skip_seconds} s")
    magnitude = np.abs(x)
    threshold = max(0.05 * float(magnitude.max()), 10 ** (-70 / 20))
    loud = np.flatnonzero(magnitude > threshold)
    if loud.size == 0:
        raise ToneAnalysisError(f"{x.size / rate:.2f} s of silence, no tone at all")
    return x[loud[0] : loud[-1] + 1]


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def analyse_tone(samples: np.ndarray, rate: int, *, skip_seconds: float = 0.0) -> ToneAnalysis:
    """Measure the dominant frequency, level and tonal purity of ``samples``.

    ``samples`` are int16 (full scale 32768) or floats (full scale 1.0).
    """
    x = _non_silent_part(samples, rate, skip_seconds)
    if x.size < 64:
        raise ToneAnalysisError(f"only {x.size} non-silent samples, need at least 64")
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x * x)))
    # Zero-pad to at least 1 Hz bins so the interpolation only refines within a bin.
    n_fft = max(_next_power_of_two(x.size), _next_power_of_two(rate))
    power = np.abs(np.fft.rfft(x * np.hanning(x.size), n_fft)) ** 2
    power[0] = 0.0
    peak = int(np.argmax(power[1:-1])) + 1
    a, b, c = np.log(power[peak - 1 : peak + 2] + 1e-30)
    denominator = a - 2 * b + c
    offset = 0.5 * (a - c) / denominator if denominator < 0 else 0.0
    bin_hz = rate / n_fft
    # The Hann main lobe is 2 bins of the unpadded length on each side; allow a bit more.
    half_band = max(3 * rate / x.size, 10.0) / bin_hz
    low, high = max(1, int(peak - half_band)), int(peak + half_band) + 1
    total = float(power.sum())
    return ToneAnalysis(
        frequency_hz=(peak + offset) * bin_hz,
        rms_dbfs=20 * np.log10(max(rms, 1e-12)),
        tone_ratio=float(power[low:high].sum()) / total if total > 0 else 0.0,
        seconds=x.size / rate,
    )


def dominant_frequency(samples: np.ndarray, rate: int, *, skip_seconds: float = 0.0) -> float:
    """The dominant frequency in Hz, ignoring ``skip_seconds`` and leading/trailing silence."""
    return analyse_tone(samples, rate, skip_seconds=skip_seconds).frequency_hz


def assert_tone(
    samples: np.ndarray,
    rate: int,
    expected_hz: float,
    *,
    tolerance_hz: float = 5.0,
    min_rms_dbfs: float = -40.0,
    min_tone_ratio: float = 0.5,
    min_seconds: float = 0.2,
    skip_seconds: float = 0.0,
    what: str = "signal",
) -> ToneAnalysis:
    """Assert that ``samples`` carry a tone of ``expected_hz`` (not noise, not silence).

    Passes when the dominant frequency is within ``tolerance_hz``, the non-silent part is
    at least ``min_seconds`` long and louder than ``min_rms_dbfs``, and at least
    ``min_tone_ratio`` of its energy lies at that frequency. Returns the analysis.
    """
    try:
        analysis = analyse_tone(samples, rate, skip_seconds=skip_seconds)
    except ToneAnalysisError as exc:
        raise AssertionError(f"{what}: expected a {expected_hz} Hz tone: {exc}") from None
    problems = []
    if abs(analysis.frequency_hz - expected_hz) > tolerance_hz:
        problems.append(f"dominant frequency {analysis.frequency_hz:.1f} Hz")
    if analysis.seconds < min_seconds:
        problems.append(f"only {analysis.seconds:.2f} s of sound")
    if analysis.rms_dbfs < min_rms_dbfs:
        problems.append(f"level {analysis.rms_dbfs:.1f} dBFS below {min_rms_dbfs}")
    if analysis.tone_ratio < min_tone_ratio:
        problems.append(f"only {analysis.tone_ratio:.0%} of the energy at the peak (noise?)")
    if problems:
        raise AssertionError(
            f"{what}: expected a {expected_hz} Hz tone (±{tolerance_hz} Hz): "
            + "; ".join(problems)
            + f" [{analysis}]"
        )
    return analysis


def assert_wav_has_tone(
    path: str | Path,
    expected_hz: float,
    *,
    tolerance_hz: float = 5.0,
    min_rms_dbfs: float = -40.0,
    min_tone_ratio: float = 0.5,
    min_seconds: float = 0.2,
    skip_seconds: float = 0.0,
) -> ToneAnalysis:
    """``assert_tone`` on a WAV file (e.g. a baresip recording)."""
    samples, rate = read_wav(path)
    return assert_tone(
        samples,
        rate,
        expected_hz,
        tolerance_hz=tolerance_hz,
        min_rms_dbfs=min_rms_dbfs,
        min_tone_ratio=min_tone_ratio,
        min_seconds=min_seconds,
        skip_seconds=skip_seconds,
        what=str(path),
    )
