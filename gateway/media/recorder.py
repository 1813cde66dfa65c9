"""A voicemail's recording: the audio frames a browser leg receives, written as Ogg/Opus.

Each received payload (PCMU, PCMA or Opus, as the leg negotiated) is decoded to PCM and
encoded with libopus into an Ogg file through PyAV, at the decoded rate (a G.711 message
is encoded from 8 kHz as it is). The recording's length follows the RTP timestamps, not
the wall clock: frames lost on the way are written as silence (up to a second at once;
a longer gap is a new talkspurt, written as one frame), so a four-second message lasts
four seconds. `max_frames` bounds it: past it frames are dropped and `full` is set.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from gateway.media.transcoder import AudioCodec, OpusDecoder, OpusError
from sip_bridge import codec_by_name

FRAME_SECONDS = 0.02
MAX_GAP_FRAMES = 50  # frames of silence written for a gap; a longer one is a new talkspurt
BITRATE = 24000  # bits per second: clear speech, about 180 KiB a minute


class OggOpusRecorder:
    """Writes the frames of one codec to `path` (created; the folder must exist)."""

    def __init__(self, path: Path, codec: AudioCodec, max_frames: int) -> None:
        self.path = path
        self.codec = codec
        self.max_frames = max_frames
        self.frames = 0  # 20 ms frames written, silence for gaps included
        self.full = False
        if codec.name == "opus":
            self._opus: OpusDecoder | None = OpusDecoder(48000)
            self._g711 = None
            self.rate = 48000
        else:
            self._opus = None
            self._g711 = codec_by_name(codec.name).create_decoder()
            self.rate = codec.sample_rate
        self._samples = self.rate // 50
        self._last_timestamp: int | None = None
        self._container = av.open(str(path), "w", format="ogg")
        stream = self._container.add_stream("libopus", rate=self.rate)
        stream.layout = "mono"
        stream.bit_rate = BITRATE
        stream.codec_context.options = {"application": "voip", "frame_duration": "20"}
        self._stream = stream
        self._closed = False

    @property
    def seconds(self) -> float:
        return self.frames * FRAME_SECONDS

    def add(self, payload: bytes | memoryview, timestamp: int) -> None:
        """One received frame and its RTP timestamp."""
        if self._closed or self.full:
            return
        gap = self._gap(timestamp)
        if gap:
            silence = np.zeros(self._samples, np.int16)
            for _ in range(min(gap, self.max_frames - self.frames)):
                self._write(silence)
        pcm = self._decode(payload)
        if pcm is not None and self.frames < self.max_frames:
            self._write(pcm)
        if self.frames >= self.max_frames:
            self.full = True

    def _gap(self, timestamp: int) -> int:
        """Frames lost before this one (0 for the next frame, or after a long pause)."""
        last, self._last_timestamp = self._last_timestamp, timestamp
        if last is None:
            return 0
        frames, rest = divmod((timestamp - last) & 0xFFFFFFFF, self.codec.frame_ticks)
        if rest or not 1 < frames <= MAX_GAP_FRAMES + 1:
            return 0
        return frames - 1

    def _decode(self, payload: bytes | memoryview) -> np.ndarray | None:
        if self._opus is not None:
            try:
                pcm = self._opus.decode(payload)
            except OpusError:
                return None
            return pcm[: self._samples] if len(pcm) else None
        assert self._g711 is not None
        return self._g711.decode(bytes(payload))

    def _write(self, pcm: np.ndarray) -> None:
        if len(pcm) < self._samples:
            pcm = np.concatenate([pcm, np.zeros(self._samples - len(pcm), np.int16)])
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm.reshape(1, -1)), format="s16", layout="mono"
        )
        frame.sample_rate = self.rate
        frame.pts = self.frames * self._samples
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Finish the file (flush the encoder, write the last Ogg page)."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
