"""The path of a call between a browser and a G.711 phone in C, while the call is steady
(`[media] native_relay`).

Relaying G.711 costs CPython about 15 us of stepping per datagram (docs/benchmark.md): the
ICE socket's dispatch, `SrtpAudioChannel._receive`, the bridge's `Direction.on_packet`,
`RtpSession.relay_payload`, and the same back. Most of a call's life is the same step
50 times a second each way, so a `Relay` (gateway/media/_g711relay.c, built by `make`)
does that step in one C call per datagram: unprotect, check, count, re-address, protect,
send. The Python objects stay the truth for everything else.

A browser speaking Opus to a G.711 phone takes the same path, transcoded: the Relay does
the transcoders' steady 20 ms frame too (Opus decoded to the phone's rate and coded by the
G.711 table; the phone's G.711 decoded and Opus-encoded; each concealer's history kept),
with the C step the transcoder itself uses (gateway/media/_opusstep.h). A lost frame
either way, a packet that is not one 20 ms frame, a frame libopus refuses, or a
concealer still fading back in after a loss: the Python transcoder's (it conceals and
reframes), so the Relay yields on those as on the others below.

How the two share the path:

- *Engaging.* Once a second the bridge's `NativeRelay` looks whether the call is steady:
  both legs up and listening to this bridge, the same G.711 codec and 20 ms frames on both
  sides (or Opus to the browser, G.711 to the phone, both transcoders steady), neither
  direction muted, the phone latched, sending (not held), no DTMF event in
  flight either way, the browser's media on a direct (not TURN) ICE pair, each source
  known and its timestamps anchored. If so, it copies the path's state (sequence numbers,
  timestamps, reception statistics) from the Python objects into the Relay and makes the
  Relay's two methods the `datagram_received` of the browser's ICE pair protocol and of
  the phone's RTP socket protocol.
- *While engaged*, the Relay owns that state; once a second it is copied back, so RTCP
  reports, the media timeout, call quality and aiortc's sender reports see it at most a
  second late. Datagrams that are not RTP audio (STUN, DTLS, SRTCP, RTCP, other senders)
  go to the Python handlers unchanged: they do not touch that state.
- *Yielding.* The Relay gives the path back, before changing anything, on any datagram
  that is not the steady case (a new source, a jump, a telephone event, a malformed
  packet): the state is copied back, the handlers restored, and that datagram goes on
  through the Python path. So does any Python code that is about to change the path
  (mute, hold, a codec change, DTMF sent, a transfer, hang-up): the legs call their
  `native_guard` first. A call that keeps yielding within a second of engaging is left
  to Python for good.

`NativeRelay.available()` is False when the extension was not built (no compiler): calls
then use the Python path throughout, as with `native_relay = false`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from types import MethodType
from typing import TYPE_CHECKING, Any, cast

from aioice.turn import TurnTransport

from sip_bridge.rtp.opus import libopus_addresses, libopus_packet_samples_address

if TYPE_CHECKING:
    from gateway.media.bridge import Direction, MediaBridge, RtpLeg
    from gateway.media.webrtc_leg import WebRtcLeg

Relay: Any
try:
    from gateway.media._g711relay import Relay
except ImportError:  # not built: the Python path only
    Relay = None

__all__ = ["NativeRelay"]

logger = logging.getLogger(__name__)

G711 = frozenset({"PCMU", "PCMA"})
SYNC_INTERVAL = 1.0  # seconds between copies of the state (and attempts to engage)
SHORT_RUN = 50  # frames: a run shorter than this before a yield is a strike
MAX_STRIKES = 5  # strikes in a row leave the call to Python


def _srtp_addresses() -> tuple[int, int] | None:
    """srtp_protect and srtp_unprotect of the libsrtp pylibsrtp loaded (its contexts)."""
    try:
        from pylibsrtp._binding import ffi, lib

        return (
            int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))),
            int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect"))),
        )
    except (ImportError, AttributeError):
        return None


_SRTP = _srtp_addresses() if Relay is not None else None


def _pointer(cdata: Any) -> int:
    from pylibsrtp._binding import ffi

    return int(ffi.cast("uintptr_t", cdata))


def _numeric(host: Any) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _transcoded(a_to_b: Direction, b_to_a: Direction) -> bool:
    """Opus from the browser to a G.711 phone and back, each way with the C frame step."""
    forward, backward = a_to_b.transcoder, b_to_a.transcoder
    return (
        forward is not None
        and backward is not None
        and forward.native_frame is not None
        and forward.native_frame.from_opus
        and backward.native_frame is not None
        and not backward.native_frame.from_opus
    )


class NativeRelay:
    """Runs a bridge's browser <-> G.711 phone path in C while the call is steady."""

    @staticmethod
    def available() -> bool:
        return Relay is not None and _SRTP is not None

    @staticmethod
    def covers(a_to_b: Direction, b_to_a: Direction) -> bool:
        """Whether the relay can carry these directions: G.711 untouched, or transcoded
        between the browser's Opus and the phone's G.711."""
        return a_to_b.transcoder is None or _transcoded(a_to_b, b_to_a)

    def __init__(self, bridge: MediaBridge, browser: WebRtcLeg, phone: RtpLeg) -> None:
        self._bridge = bridge
        self._browser = browser
        self._phone = phone
        self._relay: Any = None
        self._protocol: Any = None  # the browser's ICE pair protocol while engaged
        self._protocol_handler: Any = None  # its handler before (the channel's hook)
        self._endpoint: Any = None  # the phone's RTP socket protocol while engaged
        self._browser_address: tuple[Any, Any] = ("", 0)  # where the relay sends
        self._phone_address: tuple[Any, Any] = ("", 0)
        self._timer: asyncio.TimerHandle | None = None
        self._strikes = 0
        self._frames_at_engage = 0
        self.engagements = 0
        self.native_frames = 0  # relayed in C (both ways), as of the last copy back
        self._frames_copied = 0
        self.yields: dict[int, int] = {}  # why the C path gave the call back, how often

    @property
    def engaged(self) -> bool:
        return self._relay is not None and bool(self._relay.engaged)

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(SYNC_INTERVAL, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.disengage()

    def _tick(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(SYNC_INTERVAL, self._tick)
        try:
            if self.engaged:
                self._copy_back()
                if not self._still_steady():
                    self.disengage()
            elif self._strikes < MAX_STRIKES:
                self._engage()
        except Exception:
            # Whatever went wrong, the Python path can carry the call.
            logger.exception("the native relay failed; the call goes on in Python")
            self.disengage()
            self._strikes = MAX_STRIKES

    # ------------------------------------------------------------------ engaging
    def _steady(self) -> tuple[Any, Any] | None:
        """The browser's nominated pair and the phone's RTP session, if the call is steady."""
        bridge, browser, phone = self._bridge, self._browser, self._phone
        a_to_b, b_to_a = bridge.a_to_b, bridge.b_to_a
        channel, rtp = browser._channel, phone.rtp
        codec = browser.codec
        forward, backward = a_to_b.transcoder, b_to_a.transcoder
        if forward is None:  # G.711 untouched
            codecs_steady = codec is not None and phone.codec.name == codec.name
        else:  # Opus <-> G.711, neither transcoder concealing or holding PCM back
            codecs_steady = (
                _transcoded(a_to_b, b_to_a)
                and forward.steady
                and backward is not None
                and backward.steady
            )
        if (
            codec is None
            or not codecs_steady
            or phone.codec.name.upper() not in G711
            or a_to_b.muted
            or b_to_a.muted
            or a_to_b._timeline._last is None
            or b_to_a._timeline._last is None
            or channel is None
            or not channel.attached
            or browser._closed
            or channel.on_packet != a_to_b.on_packet
            or channel.reception is None
            or len(channel._protocols) != 1
        ):
            return None
        pair = channel._connection._nominated.get(1)
        if (
            pair is None
            or type(pair.protocol.transport) is TurnTransport  # type: ignore[comparison-overlap]
            or pair.protocol is not channel._protocols[0]
            or not _numeric(pair.remote_addr[0])
        ):
            return None
        reception = rtp._reception
        if (
            not rtp._started
            or rtp._closed
            or rtp.on_audio_packet != b_to_a.on_packet
            or not rtp._sending
            or rtp._latched is None
            or rtp._send_address != rtp._latched
            or not _numeric(rtp._latched[0])
            or rtp._repacketizer is not None
            or rtp._dtmf_active
            or rtp._dtmf_receiver.awaiting_end
            or not rtp._byte_per_tick
            or rtp.codec.name != phone.codec.name
            or rtp.codec.clock_rate != phone.codec.clock_rate
            or rtp._last_relay_timestamp is None
            or rtp._last_send_time is None
            or reception is None
            or not reception._started
            or reception._probation
        ):
            return None
        return pair, rtp

    def _still_steady(self) -> bool:
        """While engaged: the pair and the phone's address are still those it was given
        (ICE or a re-INVITE may move them; most changes already took the path back)."""
        steady = self._steady()
        if steady is None:
            return False
        pair, rtp = steady
        return (
            pair.protocol is self._protocol
            and rtp._rtp_endpoint is self._endpoint
            and (
                (pair.remote_addr[0], pair.remote_addr[1]) == self._browser_address
                and (rtp._latched[0], rtp._latched[1]) == self._phone_address
            )
        )

    def _engage(self) -> None:
        steady = self._steady()
        if steady is None:
            return
        pair, rtp = steady
        browser = self._browser
        channel = browser._channel
        assert channel is not None and browser.codec is not None and _SRTP is not None
        browser_socket = pair.protocol.transport.get_extra_info("socket")
        phone_socket = rtp._rtp_transport.get_extra_info("socket")
        if browser_socket is None or phone_socket is None:
            self._strikes = MAX_STRIKES
            return
        relay = self._relay
        if relay is None:
            relay = self._relay = Relay()
            relay.protect_address, relay.unprotect_address = _SRTP
            relay.on_yield = self._yielded
        relay.browser_fd = browser_socket.fileno()
        relay.phone_fd = phone_socket.fileno()
        relay.tx_session = _pointer(channel._tx_session)
        relay.rx_session = _pointer(channel._rx_session)
        self._browser_address = (pair.remote_addr[0], pair.remote_addr[1])
        self._phone_address = (rtp._latched[0], rtp._latched[1])
        relay.set_browser_address(str(pair.remote_addr[0]), int(pair.remote_addr[1]))
        relay.set_phone_address(str(rtp._latched[0]), int(rtp._latched[1]))
        relay.set_browser_header(bytes(channel._tx_view[: channel._header_size]))
        relay.frame_ticks = browser.codec.frame_ticks
        relay.clock_rate = browser.codec.clock_rate
        relay.phone_frame_ticks = self._phone.codec.frame_ticks
        relay.phone_clock_rate = self._phone.codec.clock_rate
        self._set_transcoding(relay)
        relay.browser_pt = channel._payload_type
        relay.phone_pt = rtp._packetizer.payload_type
        relay.phone_ssrc = rtp._packetizer.ssrc
        relay.phone_rx_pt = rtp._recv_pt
        protocol = pair.protocol
        relay.browser_other = MethodType(type(protocol).datagram_received, protocol)
        relay.browser_srtp = channel._receive
        relay.browser_plain = channel.deliver_plain
        relay.phone_receive = rtp._on_rtp_datagram
        self._copy_in(relay, channel, rtp)
        # From here on the C path has the state: hooks and guards in, then engaged.
        self._protocol = protocol
        self._protocol_handler = vars(protocol).get("datagram_received")
        protocol.datagram_received = relay.from_browser
        self._endpoint = rtp._rtp_endpoint
        self._endpoint.datagram_received = relay.from_phone
        guard = self.disengage
        browser.native_guard = channel.native_guard = rtp.native_guard = guard
        self._bridge.a_to_b.native_guard = self._bridge.b_to_a.native_guard = guard
        relay.engaged = 1
        self.engagements += 1
        self._frames_at_engage = self._frames_copied = relay.a_frames + relay.b_frames

    def _set_transcoding(self, relay: Any) -> None:
        """The transcoders' codec states, tables and histories, when the path transcodes."""
        bridge = self._bridge
        forward, backward = bridge.a_to_b.transcoder, bridge.b_to_a.transcoder
        if forward is None or backward is None:
            relay.transcoding = 0
            return
        decoding, encoding = forward.native_frame, backward.native_frame
        assert decoding is not None and encoding is not None
        relay.opus_encode_address, relay.opus_decode_address = libopus_addresses()
        relay.opus_samples_address = libopus_packet_samples_address()
        relay.decoder, relay.encode_table = decoding.codec, decoding.table
        relay.a_history, relay.a_history_length = decoding.history, decoding.history_length
        relay.encoder, relay.decode_table = encoding.codec, encoding.table
        relay.b_history, relay.b_history_length = encoding.history, encoding.history_length
        relay.pcm_frame = decoding.frame
        relay.transcoding = 1

    def _mirrored(self) -> list[tuple[Any, str, str]]:
        """The path's state the relay holds while engaged, as (object, its attribute, the
        relay's field): copied in when it engages and back when it yields or syncs."""
        bridge, browser, rtp = self._bridge, self._browser, self._phone.rtp
        channel: Any = browser._channel
        reception = channel.reception  # the browser's stream (ChannelReception)
        statistics = rtp._reception  # the phone's (ReceptionStatistics)
        packetizer = rtp._packetizer
        return [
            (reception, "packets_received", "br_received"),
            (reception, "cycles", "br_cycles"),
            (reception, "max_seq", "br_max_seq"),
            (reception, "_jitter_q4", "br_jitter_q4"),
            (bridge.a_to_b._timeline, "_last", "a_last"),
            (bridge.a_to_b, "frames", "a_frames"),
            (packetizer, "next_sequence_number", "ph_sequence"),
            (packetizer, "packets_sent", "ph_packets_sent"),
            (packetizer, "octets_sent", "ph_octets_sent"),
            (rtp, "_last_relay_timestamp", "ph_last_relay_timestamp"),
            (rtp, "_next_timestamp", "ph_next_timestamp"),
            (rtp, "_last_send_time", "ph_last_send_time"),
            (rtp, "_last_rtp_time", "ph_last_rtp_time"),
            (statistics, "_received", "rs_received"),
            (statistics, "_cycles", "rs_cycles"),
            (statistics, "_max_seq", "rs_max_seq"),
            (statistics, "_last_ts", "rs_last_timestamp"),
            (statistics, "_last_arrival_units", "rs_last_arrival_units"),
            (statistics, "_jitter", "rs_jitter"),
            (bridge.b_to_a._timeline, "_last", "b_last"),
            (bridge.b_to_a, "frames", "b_frames"),
            (browser, "_pts", "br_pts"),
            (channel, "_sequence", "br_tx_sequence"),
            (channel, "_last_timestamp", "br_tx_last_timestamp"),
            (channel, "_octets", "br_octets"),
            (channel, "send_drops", "br_send_drops"),
        ]

    def _copy_in(self, relay: Any, channel: Any, rtp: Any) -> None:
        """The path's state, from the Python objects into the relay."""
        for owner, attribute, field in self._mirrored():
            setattr(relay, field, getattr(owner, attribute))
        # Fields with no value yet (None in Python) are flagged in the relay.
        reception, statistics = channel.reception, rtp._reception
        has_last = reception._last_arrival is not None and reception._last_timestamp is not None
        relay.br_has_last = int(has_last)
        relay.br_last_arrival = reception._last_arrival if has_last else 0
        relay.br_last_timestamp = reception._last_timestamp if has_last else 0
        relay.rs_has_transit = int(statistics._transit is not None)
        relay.rs_transit = statistics._transit or 0.0
        relay.browser_ssrc = channel._reception_ssrc
        relay.phone_rx_ssrc = statistics.ssrc
        relay.ph_received = rtp._stats.packets_received
        relay.br_packets_sent = channel.packets_sent

    def _copy_back(self) -> None:
        """The path's state, from the relay back into the Python objects."""
        relay, rtp = self._relay, self._phone.rtp
        channel: Any = self._browser._channel
        frames = relay.a_frames + relay.b_frames
        self.native_frames += frames - self._frames_copied
        self._frames_copied = frames
        for owner, attribute, field in self._mirrored():
            setattr(owner, attribute, getattr(relay, field))
        reception, statistics = channel.reception, cast(Any, rtp._reception)
        if relay.br_has_last:
            reception._last_arrival = relay.br_last_arrival
            reception._last_timestamp = relay.br_last_timestamp
        if relay.rs_has_transit:
            statistics._transit = relay.rs_transit
        if rtp._stats.packets_received != relay.ph_received:
            rtp._timeout_fired = False  # the phone was heard
            rtp._stats.packets_received = relay.ph_received
        if channel.packets_sent != relay.br_packets_sent:
            channel.packets_sent = relay.br_packets_sent
            channel._update_sender_reports()

    # ------------------------------------------------------------------ yielding
    def _yielded(self, reason: int) -> None:
        """The C path met a datagram it leaves to Python (it is no longer engaged)."""
        self.yields[reason] = self.yields.get(reason, 0) + 1
        relay = self._relay
        run = relay.a_frames + relay.b_frames - self._frames_at_engage
        self._strikes = self._strikes + 1 if run < SHORT_RUN else 0
        self._release()

    def disengage(self) -> None:
        """Take the path back to Python (before Python changes it). Idempotent."""
        relay = self._relay
        if relay is None or not relay.engaged:
            return
        relay.engaged = 0
        self._release()

    def _release(self) -> None:
        self._copy_back()
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            if self._protocol_handler is not None:
                protocol.datagram_received = self._protocol_handler
            else:
                vars(protocol).pop("datagram_received", None)
        self._protocol_handler = None
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            vars(endpoint).pop("datagram_received", None)
        browser, rtp = self._browser, self._phone.rtp
        browser.native_guard = rtp.native_guard = None
        if browser._channel is not None:
            browser._channel.native_guard = None
        self._bridge.a_to_b.native_guard = self._bridge.b_to_a.native_guard = None
