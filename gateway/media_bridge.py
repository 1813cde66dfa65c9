"""Moves audio between the browser leg and the SIP leg of one call, frame by frame.

Each frame is forwarded the moment it arrives: the bridge keeps no jitter buffer of its own,
so it adds no delay; the far endpoints' buffers (the browser's NetEq, the phone's) absorb
jitter. Timestamps on the way out advance with the source's timestamps, so a frame lost
upstream stays a gap downstream and is concealed there rather than played early.

Same codec on both legs (G.711 end to end, the default policy): payloads are relayed
untouched. Otherwise a `Transcoder` converts each frame, and frames lost upstream are
concealed here, because an encoder's output has no gaps to show.
"""

from __future__ import annotations

import numpy as np

from sip_bridge.rtp.codecs import codec_by_name
from sip_bridge.rtp.session import RtpSession

from .transcoder import AudioCodec, Transcoder
from .webrtc_leg import WebRtcLeg

# Gaps longer than this are a new talkspurt or a new source, not packet loss.
MAX_CONCEALED_FRAMES = 5


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
        delta = (timestamp - last) & 0xFFFFFFFF
        frames, rest = divmod(delta, self._frame_ticks)
        if rest or not 0 < frames <= 50:
            return None
        return frames


class MediaBridge:
    def __init__(
        self, browser: WebRtcLeg, sip: RtpSession, browser_codec: AudioCodec, sip_codec: AudioCodec
    ) -> None:
        self._browser = browser
        self._sip = sip
        self.browser_codec = browser_codec
        self.sip_codec = sip_codec
        self.transcoding = browser_codec.name != sip_codec.name
        self.muted = False
        self._from_browser_timeline = _Timeline(browser_codec.frame_ticks)
        self._from_sip_timeline = _Timeline(sip_codec.frame_ticks)
        self._to_browser: Transcoder | None = None
        self._to_sip: Transcoder | None = None
        if self.transcoding:
            self._to_browser = Transcoder(sip_codec, browser_codec)
            self._to_sip = Transcoder(browser_codec, sip_codec)
        self._silence_for_sip = _silence(sip_codec)
        self.frames_to_sip = 0
        self.frames_to_browser = 0
        # While True, the browser hears a local tone (ringback) instead of the SIP leg.
        self.local_audio = False

    def start(self) -> None:
        self._browser.on_packet = self._on_browser_packet
        self._sip.on_audio_packet = self._on_sip_packet

    def stop(self) -> None:
        self._browser.on_packet = None
        self._sip.on_audio_packet = None

    # ---------------------------------------------------------------- browser → SIP
    def _on_browser_packet(self, payload: bytes, timestamp: int) -> None:
        frames = self._from_browser_timeline.frames_advanced(timestamp)
        if self.muted:
            payload = None
        ticks = self.sip_codec.frame_ticks
        if not self.transcoding:
            out = self._silence_for_sip if payload is None else payload
            self._sip.relay_payload(out, None if frames is None else frames * ticks)
            self.frames_to_sip += 1
            return
        transcoder = self._to_sip
        if frames is not None and 1 < frames <= MAX_CONCEALED_FRAMES + 1:
            for _ in range(frames - 1):
                concealed = transcoder.conceal_one()
                if concealed is not None:
                    self._sip.relay_payload(concealed, ticks)
        out = self._silence_for_sip if payload is None else transcoder.convert(payload)
        if out is not None:
            self._sip.relay_payload(out, None if frames is None else ticks)
            self.frames_to_sip += 1

    # ---------------------------------------------------------------- SIP → browser
    def _on_sip_packet(self, payload: memoryview, timestamp: int) -> None:
        if self.local_audio:
            return
        frames = self._from_sip_timeline.frames_advanced(timestamp)
        if not self.transcoding:
            self._browser.send(bytes(payload), frames or 1)
            self.frames_to_browser += 1
            return
        transcoder = self._to_browser
        if frames is not None and 1 < frames <= MAX_CONCEALED_FRAMES + 1:
            for _ in range(frames - 1):
                self._send_to_browser(transcoder.conceal_one())
        self._send_to_browser(transcoder.convert(payload))

    def _send_to_browser(self, encoded: bytes | None) -> None:
        if encoded is not None:
            self._browser.send(encoded)
            self.frames_to_browser += 1


def _silence(codec: AudioCodec) -> bytes:
    """One frame of silence in the SIP leg's codec (what a muted visitor sends)."""
    encoder = codec_by_name(codec.name).create_encoder(20)
    return encoder.encode(np.zeros(codec.frame_samples, np.int16))
