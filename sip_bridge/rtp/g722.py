"""G.722 (ITU-T G.722, 64 kbit/s sub-band ADPCM) through libavcodec via PyAV.

G.722 codes 16 kHz audio at 4 bits per sample pair, so 20 ms is 320 samples in
and 160 bytes out. The codec is stateful (ADPCM predictors), so each direction of
a call needs its own encoder/decoder object, fed frames in order.

RFC 3551 section 4.5.2 keeps the RTP clock of G.722 at 8000 Hz for historical
reasons: the RTP timestamp advances by 160 per 20 ms although 320 samples were
coded. That quirk lives in the codec table, not here.
"""

from __future__ import annotations

import av
import numpy as np

__all__ = ["G722_SAMPLE_RATE", "G722Decoder", "G722Encoder", "G722Error"]

G722_SAMPLE_RATE = 16000


class G722Error(ValueError):
    """A G.722 frame could not be encoded or decoded; the message says why."""


class G722Encoder:
    """Encodes 16 kHz int16 mono frames of a fixed size to G.722 bytes."""

    def __init__(self, frame_samples: int = 320) -> None:
        if frame_samples <= 0 or frame_samples % 2:
            raise ValueError(f"G.722 frame size must be positive and even, got {frame_samples}")
        self.frame_samples = frame_samples
        self._context = av.CodecContext.create("g722", "w")
        self._context.sample_rate = G722_SAMPLE_RATE
        self._context.layout = "mono"
        self._context.format = "s16"
        # Without this libavcodec groups input into 320-sample frames, and PyAV's
        # FIFO would silently re-slice other ptimes across packets.
        self._context.options = {"frame_size": str(frame_samples)}
        self._context.open()
        self._pts = 0

    def encode(self, pcm: np.ndarray) -> bytes:
        """Encode exactly `frame_samples` int16 samples; returns frame_samples / 2 bytes."""
        if pcm.shape != (self.frame_samples,):
            raise G722Error(
                f"G.722 encoder expects {self.frame_samples} samples, got shape {pcm.shape}"
            )
        frame = av.AudioFrame.from_ndarray(
            pcm.astype(np.int16, copy=False).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = G722_SAMPLE_RATE
        frame.pts = self._pts
        self._pts += self.frame_samples
        packets = self._context.encode(frame)
        if len(packets) == 1:
            return bytes(packets[0])
        return b"".join(bytes(packet) for packet in packets)


class G722Decoder:
    """Decodes G.722 payloads to 16 kHz int16 mono samples (two per byte)."""

    def __init__(self) -> None:
        self._context = av.CodecContext.create("g722", "r")
        self._context.sample_rate = G722_SAMPLE_RATE
        self._context.layout = "mono"
        self._context.open()

    def decode(self, payload: bytes | bytearray | memoryview) -> np.ndarray:
        """Decode one payload; returns 2 * len(payload) samples."""
        if not payload:
            raise G722Error("G.722 payload is empty")
        try:
            frames = self._context.decode(av.Packet(bytes(payload)))
        except av.FFmpegError as exc:
            raise G722Error(f"G.722 payload of {len(payload)} bytes did not decode: {exc}") from exc
        if len(frames) == 1:
            return frames[0].to_ndarray().reshape(-1)
        if not frames:
            raise G722Error(f"G.722 payload of {len(payload)} bytes produced no audio")
        return np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])
