# The C relay (gateway/media/_g711relay.c): G.711 relayed, or Opus <-> G.711 transcoded;
# gateway/media/native_relay.py drives it.
from collections.abc import Callable
from typing import Any

class Relay:
    protect_address: int
    unprotect_address: int
    tx_session: int
    rx_session: int
    browser_fd: int
    phone_fd: int
    browser_other: Callable[[bytes, tuple[Any, ...]], None] | None
    browser_srtp: Callable[[bytes], None] | None
    browser_plain: Callable[[bytes], None] | None
    phone_receive: Callable[[bytes, tuple[Any, ...]], None] | None
    on_yield: Callable[[int], None] | None
    engaged: int
    last_yield: int
    yields: int
    frame_ticks: int
    clock_rate: int
    phone_frame_ticks: int
    phone_clock_rate: int
    transcoding: int
    opus_encode_address: int
    opus_decode_address: int
    opus_samples_address: int
    decoder: int
    encode_table: int
    a_history: int
    a_history_length: int
    encoder: int
    decode_table: int
    b_history: int
    b_history_length: int
    pcm_frame: int
    browser_pt: int
    browser_ssrc: int
    br_received: int
    br_cycles: int
    br_jitter_q4: int
    br_last_arrival: int
    br_last_timestamp: int
    br_max_seq: int
    br_has_last: int
    a_last: int
    a_frames: int
    phone_pt: int
    phone_ssrc: int
    ph_sequence: int
    ph_packets_sent: int
    ph_octets_sent: int
    ph_last_relay_timestamp: int
    ph_next_timestamp: int
    ph_last_send_time: float
    phone_rx_pt: int
    phone_rx_ssrc: int
    ph_received: int
    ph_last_rtp_time: float
    rs_received: int
    rs_cycles: int
    rs_last_timestamp: int
    rs_max_seq: int
    rs_has_transit: int
    rs_transit: float
    rs_last_arrival_units: float
    rs_jitter: float
    b_last: int
    b_frames: int
    br_pts: int
    br_tx_last_timestamp: int
    br_octets: int
    br_packets_sent: int
    br_send_drops: int
    br_tx_sequence: int
    def from_browser(self, data: bytes, addr: tuple[Any, ...], /) -> None: ...
    def from_phone(self, data: bytes, addr: tuple[Any, ...], /) -> None: ...
    def set_browser_address(self, host: str, port: int, /) -> None: ...
    def set_phone_address(self, host: str, port: int, /) -> None: ...
    def set_browser_header(self, header: bytes, /) -> None: ...
