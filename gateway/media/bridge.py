"""Moves audio between the two legs of a call, frame by frame, in both directions.

A leg is the browser (`WebRtcLeg`) or a phone (`RtpLeg` around an `RtpSession`): the same
bridge joins a visitor's browser to an operator, or, for Request-a-Call, an operator's phone
to the visitor's phone.

Each frame is forwarded the moment it arrives: the bridge keeps no jitter buffer of its own,
so it adds no delay; the far endpoints' buffers (the browser's NetEq, the phone's) absorb
jitter. Timestamps on the way out advance with the source's timestamps, so a frame lost
upstream stays a gap downstream and is concealed there rather than played early.

Same codec on both legs (G.711 end to end, the default policy): payloads are relayed
untouched. Otherwise a `Transcoder` converts each frame, and frames lost upstream are
concealed here, because an encoder's output has no gaps to show. Between a browser and a
G.711 phone, while the call is steady, either runs in C (gateway.media.native_relay): the
relay, or Opus <-> G.711 transcoding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gateway.media.native_relay import NativeRelay
from gateway.media.transcoder import AudioCodec, Transcoder, silence_frame
from sip_bridge import RtpSession

# Gaps longer than this are a new talkspurt or a new source, not packet loss.
MAX_CONCEALED_FRAMES = 5

PacketHandler = Callable[[bytes | memoryview, int], None]


class AudioLeg(Protocol):
    @property
    def codec(self) -> AudioCodec | None:
        """None until known (a browser leg's comes with its answer): a bridge joins only
        legs whose codec is known."""

    def listen(self, handler: PacketHandler | None) -> None:
        """Hand each received audio payload and its RTP timestamp to `handler`."""

    def send(self, payload: bytes | memoryview, frames: int | None) -> None:
        """Send one 20 ms frame, `frames` slots after the previous one (None: unknown)."""


class RtpLeg:
    """A phone's leg: an `RtpSession` seen as an `AudioLeg`."""

    def __init__(self, rtp: RtpSession, codec: AudioCodec) -> None:
        self.rtp = rtp
        self.codec = codec

    def listen(self, handler: PacketHandler | None) -> None:
        self.rtp.on_audio_packet = handler

    def send(self, payload: bytes | memoryview, frames: int | None) -> None:
        self.rtp.relay_payload(payload, None if frames is None else frames * self.codec.frame_ticks)


class _Timeline:
    """Maps a source's RTP timestamps to frame counts: how many frames did it advance?"""

    def __init__(self, frame_ticks: int) -> None:
        self._frame_ticks = frame_ticks
        self._last: int | None = None

    def frames_advanced(self, timestamp: int) -> int | None:
        """1 for the next frame, 3 after two lost ones; None to re-anchor."""
        last = self._last
        self._last = timestamp
        if last is None:
            return None
        frames, rest = divmod((timestamp - last) & 0xFFFFFFFF, self._frame_ticks)
        if rest or not 0 < frames <= 50:
            return None
        return frames


class Direction:
    """One way through the bridge: from `source` to `target`."""

    def __init__(self, source: AudioLeg, target: AudioLeg) -> None:
        self.source = source
        self.target = target
        self._muted = False
        self.frames = 0
        # Called before this direction changes while its relay runs in C (NativeRelay).
        self.native_guard: Callable[[], None] | None = None
        source_codec, target_codec = source.codec, target.codec
        if source_codec is None or target_codec is None:
            raise ValueError("a leg's codec is not known yet: answer it before bridging")
        self._target_codec = target_codec
        self._timeline = _Timeline(source_codec.frame_ticks)
        self.transcoder = (
            Transcoder(source_codec, target_codec)
            if source_codec.name != target_codec.name
            else None
        )

    @property
    def muted(self) -> bool:
        """Send silence instead (the visitor pressed Mute)."""
        return self._muted

    @muted.setter
    def muted(self, muted: bool) -> None:
        if self.native_guard is not None:
            self.native_guard()
        self._muted = muted

    def on_packet(self, payload: bytes | memoryview, timestamp: int) -> None:
        frames = self._timeline.frames_advanced(timestamp)
        target = self.target
        transcoder = self.transcoder
        if transcoder is None:
            target.send(silence_frame(self._target_codec) if self._muted else payload, frames)
            self.frames += 1
            return
        # Frames lost before this packet: its advance beyond the previous packet's length.
        held = transcoder.packet_frames
        if frames is not None and held < frames <= MAX_CONCEALED_FRAMES + held:
            for _ in range(frames - held):
                concealed = transcoder.conceal_one()
                if concealed is not None:
                    target.send(concealed, 1)
        if self._muted:
            target.send(silence_frame(self._target_codec), None if frames is None else 1)
            self.frames += 1
            return
        step = None if frames is None else 1
        for out in transcoder.convert(payload):  # one frame; none or two for a phone's 10-60 ms
            target.send(out, step)
            step = 1
            self.frames += 1


class MediaBridge:
    """Joins leg `a` and leg `b`: `a_to_b` and `b_to_a` are the two directions.

    `native`: when `a` is a browser and `b` a phone, carry the call in C while it is steady,
    G.711 untouched or transcoded between the browser's Opus and the phone's G.711
    (`[media] native_relay`; only where the extension is built)."""

    def __init__(self, a: AudioLeg, b: AudioLeg, *, native: bool = False) -> None:
        self.a = a
        self.b = b
        self.a_to_b = Direction(a, b)
        self.b_to_a = Direction(b, a)
        self._native = native
        self.native: NativeRelay | None = None
        self._native_frames = 0  # relayed in C by the relays of earlier starts
        self._earlier_frames = (0, 0)  # relayed (in C, in Python) before a replace_b
        self.stopped = False

    @property
    def transcoding(self) -> bool:
        return self.a_to_b.transcoder is not None

    def replace_b(self, b: AudioLeg) -> None:
        """Join `a` to another leg (a transfer target), or to the same leg after a re-INVITE
        changed its codec: relay or transcode anew for that codec. Mute carries over."""
        muted = self.a_to_b.muted
        self.stop()
        self._earlier_frames = self.relayed_frames()
        self._native_frames = 0
        self.b = b
        self.a_to_b = Direction(self.a, b)
        self.b_to_a = Direction(b, self.a)
        self.a_to_b.muted = muted
        self.start()

    def start(self) -> None:
        self.stopped = False
        self.a.listen(self.a_to_b.on_packet)
        self.b.listen(self.b_to_a.on_packet)
        if (
            self._native
            and NativeRelay.available()
            and NativeRelay.covers(self.a_to_b, self.b_to_a)
        ):
            from gateway.media.webrtc_leg import WebRtcLeg  # loaded wherever browsers call

            if isinstance(self.a, WebRtcLeg) and isinstance(self.b, RtpLeg):
                self.native = NativeRelay(self, self.a, self.b)
                self.native.start()

    def relayed_frames(self) -> tuple[int, int]:
        """Frames carried so far, both ways, transcoded or not: (in C, in Python)."""
        native, python = self._current_frames()
        return self._earlier_frames[0] + native, self._earlier_frames[1] + python

    def _current_frames(self) -> tuple[int, int]:
        native = self._native_frames + (self.native.native_frames if self.native else 0)
        return native, self.a_to_b.frames + self.b_to_a.frames - native

    def stop(self) -> None:
        if self.native is not None:
            self.native.stop()
            self._native_frames += self.native.native_frames
            self.native = None
        self.a.listen(None)
        self.b.listen(None)
        self.stopped = True
