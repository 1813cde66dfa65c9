"""The load generator's C media path (bench/load/native.py) against its Python one.

A "server" socket here echoes what the engine sends, SRTP both ways (pylibsrtp, as aiortc
sets it up); the engine runs in a NativeSelector as in a generator process. What the engine
measured of the echo must be what `Visitor.on_packet` measures of the same packets (G.711,
and Opus decoded by libopus in C as the Python path decodes it), and what is not RTP must
reach Python untouched. No timed assertions: counts and contents.
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import time

import numpy as np
import pytest
from pylibsrtp import Policy, Session

from bench.load import native
from bench.load.audio import (
    ONSET,
    PERIOD_FRAMES,
    QUIET,
    TONE_HZ,
    EchoDecoder,
    dominant_frequency,
    encoded_frames,
)
from bench.load.visitor import CODECS, FREQUENCY_FRAMES, FREQUENCY_TOLERANCE_HZ, Visitor
from bench.load.window import Window

FRAMES = PERIOD_FRAMES + 12 + FREQUENCY_FRAMES  # the second period's onset and its tone
PAYLOAD_TYPES = {"pcmu": 0, "opus": 111}


def _session(key: bytes, outbound: bool) -> Session:
    direction = Policy.SSRC_ANY_OUTBOUND if outbound else Policy.SSRC_ANY_INBOUND
    return Session(Policy(key=key, ssrc_type=direction, srtp_profile=1))


@pytest.fixture
def engine(tmp_path):
    built = native.Engine(native.build(tmp_path), quiet=QUIET, onset=ONSET, late=0.010)
    built.set_window(0.0, float("inf"))
    return built


@pytest.mark.parametrize("codec", ["pcmu", "opus"])
def test_the_c_path_measures_the_echo_as_the_python_path_does(engine, codec):
    frames = encoded_frames(codec)
    engine.set_frames(frames, [127] * len(frames))
    if codec == "opus":  # the call sends the second set (narrowband, as for 8 kHz phones)
        frames = encoded_frames(codec, narrowband=True)
        assert engine.set_frames(frames, [127] * len(frames)) == 1
    payload_type = PAYLOAD_TYPES[codec]
    ticks = CODECS[codec][1] // 50
    c_decoder = EchoDecoder(codec)  # its own state, fresh as the Python visitor's
    up_key, down_key = os.urandom(30), os.urandom(30)
    visitor_tx, visitor_rx = _session(up_key, True), _session(down_key, False)
    server_rx, server_tx = _session(up_key, False), _session(down_key, True)
    visitor_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    visitor_socket.bind(("127.0.0.1", 0))
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    selector = native.NativeSelector(engine)
    selector.register(visitor_socket, selectors.EVENT_READ)
    header = struct.pack("!BBHII", 0x80, payload_type, 0, 0, 0x1234)
    host, port = server.getsockname()
    ffi, lib = engine.ffi, engine.lib
    call = lib.ne_add_call(
        engine.handle, 0, visitor_socket.fileno(),
        struct.unpack("=I", socket.inet_aton(host))[0],
        struct.unpack("=H", struct.pack("!H", port))[0],
        engine.session(visitor_tx._srtp[0]), engine.session(visitor_rx._srtp[0]),
        ffi.from_buffer("uint8_t[]", header), len(header), -1, -1, -1, payload_type,
        1000, 5000, 0, ticks, time.monotonic(), 0.0, 7, engine.frame_set(frames),
        ffi.cast("void *", c_decoder.opus.state_address) if c_decoder.opus else ffi.NULL,
        c_decoder.rate, 1, c_decoder.rate // 50,
    )  # fmt: skip
    assert call != ffi.NULL
    lib.ne_set_frequency_frames(call, FREQUENCY_FRAMES + 1)

    python = Visitor(
        0, signaling=None, codec=codec, frames=frames, levels=[127], window=Window(0, 1e18),
        lateness=None, jitter=0.0, seed=0, anchor=0.0,
    )  # fmt: skip
    python.on_sent(0, 0.0)  # the C path noted frame 0's send as the first onset sent
    received = []
    # Not RTP: a STUN binding request from the server, and an SR, both before the echo.
    stun = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12))
    server.sendto(stun, visitor_socket.getsockname())
    ntp = 0x0123456789ABCDEF
    sr = struct.pack("!BBHIQIII", 0x80, 200, 6, 0xBEEF, ntp, 0, 0, 0)
    server.sendto(server_tx.protect_rtcp(sr), visitor_socket.getsockname())
    stashed = []
    while len(received) < FRAMES:
        for key, _ in selector.select(0.05):
            assert key.fileobj is visitor_socket
            while (taken := engine.take_stashed(call)) is not None:
                stashed.append(taken)
        while True:
            try:
                data, source = server.recvfrom(1500)
            except BlockingIOError:
                break
            packet = server_rx.unprotect(data)
            sequence, timestamp = struct.unpack_from("!HI", packet, 2)
            payload = packet[12:]
            assert payload == frames[len(received) % len(frames)]
            assert (sequence, timestamp) == (1000 + len(received), 5000 + ticks * len(received))
            # The echo, as the server relays it: its own SSRC, sequence and timestamps.
            k = len(received)
            echo = struct.pack("!BBHII", 0x80, payload_type, 7 + k, 90000 + ticks * k, 0xCAFE)
            server.sendto(server_tx.protect(echo + payload), source)
            received.append((payload, 90000 + ticks * k))
    # The echoes are in the socket (loopback delivers in sendto): the engine reads them.
    selector.select(0)
    lib.ne_stop_call(engine.handle, call)  # its measurements stay readable
    selector.close()
    visitor_socket.close()
    server.close()
    counters = ffi.new("int64_t[12]")
    lib.ne_counters(call, counters)
    echoed = counters[5]
    for payload, timestamp in received[:echoed]:
        python.on_packet(memoryview(payload), timestamp)

    assert stashed == [(stun, (host, port))]
    ssrc, lsr, at = ffi.new("uint32_t *"), ffi.new("uint32_t *"), ffi.new("double *")
    assert lib.ne_last_sr(call, ssrc, lsr, at) == 1
    assert (ssrc[0], lsr[0]) == (0xBEEF, (ntp >> 16) & 0xFFFFFFFF)
    assert echoed >= PERIOD_FRAMES + 1  # the second onset came back
    arrivals, indexes = ffi.new("double **"), ffi.new("int64_t **")
    count = lib.ne_arrivals(call, arrivals, indexes)
    c_indexes = np.frombuffer(ffi.buffer(indexes[0], 8 * count), np.int64)
    assert list(c_indexes) == list(python._indexes) == list(range(echoed))
    rtt = ffi.new("double **")
    assert lib.ne_rtt(call, rtt) == len(python.rtt) >= 1
    kept = counters[11]
    assert kept == len(python._frequency_pcm) == FREQUENCY_FRAMES + 1
    lengths, size = ffi.new("int **"), ffi.new("int *")
    c_kept = lib.ne_frequency(call, lengths, size)
    assert size[0] == c_decoder.rate // 50
    assert [lengths[0][i] for i in range(kept)] == [len(f) for f in python._frequency_pcm]
    c_pcm = np.frombuffer(ffi.buffer(c_kept, 2 * size[0] * kept), np.int16)
    assert np.array_equal(c_pcm, np.concatenate(python._frequency_pcm))
    # The echo is heard: the tone, in what the C path kept (the first frame left out, as
    # Visitor.result leaves it out).
    heard = dominant_frequency(c_pcm[size[0] :], c_decoder.rate)
    assert abs(heard - TONE_HZ) <= FREQUENCY_TOLERANCE_HZ
    assert counters[0] >= FRAMES  # packets sent
