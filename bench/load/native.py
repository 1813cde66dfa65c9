"""The generator's media path in C (bench/load/native_media.c), compiled at bench time.

At 100 G.711 calls the Python media path (browser_media.BrowserAudio: a timer and a
callback per frame, a readiness event, a Python receive and a numpy analysis per echoed
packet, `select()` over every socket at each wake-up) cost the generators more CPU than the
gateway they loaded. Here the same work is done in C, inside the generator's event loop:

- `NativeSelector` is the loop's selector. Its `select()` waits in C (epoll_pwait2: a
  timeout in nanoseconds, as `select()`'s microseconds were) and meanwhile sends every
  call's frame when it is due -- each call on its own clock phase, with its own jitter
  drawn per frame -- and reads the calls' sockets (recvmmsg).
- RTP read there is unprotected, decoded (G.711 by the u-law table; Opus by libopus, the
  library opuslib-next loaded, with the call's own decoder state) and measured in C as
  `Visitor.on_packet` measures it (arrival against media time in the window, tone onsets
  -> round trip, 600 ms of tone's PCM for the frequency check). The server's RTCP is
  unprotected there too and its SRs' time kept for our receiver reports (all aiortc took
  from it: its own RTCP loops are stopped, they sent nothing anyway). STUN and DTLS are
  kept and handed to aioice/aiortc through the socket's reader in the loop, as before.
- Our RTCP reports and the consent checks stay in Python (under one per call and second).

`NativeAudio` is BrowserAudio with its per-packet work moved to the engine; what goes on
the wire is the same bytes at the same times, for G.711 and Opus calls alike (Opus calls
send the frame set their answer chose: fullband, or narrowband for maxplaybackrate=8000).

`build()` compiles the library with `cc`; without a compiler it raises NativeUnavailable
(the benchmark then says so: `--generator-media python` runs the Python path).
"""

from __future__ import annotations

import asyncio
import math
import os
import select
import selectors
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cffi import FFI

from sip_bridge.rtp.opus import OpusDecoder

from .browser_media import BrowserAudio, Lateness

SOURCE = Path(__file__).with_name("native_media.c")
LIBRARY = "libbench_native_media.so"
MAX_EVENTS = 256
STASH_BUFFER = 1500

_CDEF = """
typedef struct engine engine;
typedef struct call call;
engine *ne_new(uintptr_t protect, uintptr_t unprotect, uintptr_t unprotect_rtcp,
               uintptr_t opus_decode, const int16_t *decode, int quiet, int onset,
               double late_threshold);
int ne_last_sr(call *c, uint32_t *ssrc, uint32_t *lsr, double *at);
int ne_set_frames(engine *e, int set, const uint8_t *frames, const int *lengths,
                  const uint8_t *levels, int count, int stride);
void ne_set_window(engine *e, double start, double end);
call *ne_add_call(engine *e, int index, int fd, uint32_t address, uint16_t port,
                  void *tx, void *rx, const uint8_t *header, int header_size, int level_at,
                  int abs_at, int twcc_at, int payload_type, uint16_t sequence,
                  uint32_t timestamp0, uint16_t transport_sequence, uint32_t ticks,
                  double first_due, double jitter, uint64_t seed, int frame_set,
                  void *decoder, int rate, int analyse, int frequency_size);
void ne_stop_call(engine *e, call *c);
void ne_free_call(call *c);
void ne_forget_fd(engine *e, int fd);
int ne_take_stashed(call *c, uint8_t *out, int capacity, uint32_t *address, uint16_t *port);
int ne_select(engine *e, int epfd, double timeout, int *fds, uint32_t *events, int max);
void ne_counters(call *c, int64_t *out);
void ne_set_frequency_frames(call *c, int frames);
size_t ne_arrivals(call *c, double **arrivals, int64_t **indexes);
size_t ne_rtt(call *c, double **rtt);
int16_t *ne_frequency(call *c, int **lengths, int *size);
int ne_lateness(engine *e, int64_t *counts, double *max_late, double *late_at);
"""


class NativeUnavailable(RuntimeError):
    """The C media path could not be built or loaded here."""


def build(directory: Path) -> Path:
    """Compile native_media.c into `directory`; the library's path."""
    compiler = shutil.which("cc")
    if compiler is None:
        raise NativeUnavailable(
            "no C compiler (cc) for the generator's media path; "
            "--generator-media python runs the Python one"
        )
    output = directory / LIBRARY
    done = subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(output), str(SOURCE), "-lm"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise NativeUnavailable(f"cc could not build {SOURCE.name}:\n{done.stderr[-2000:]}")
    return output


class Engine:
    """One per generator process: the C engine, its calls, the process's send lateness."""

    def __init__(self, library: Path, *, quiet: int, onset: int, late: float) -> None:
        from pylibsrtp._binding import ffi as srtp_ffi
        from pylibsrtp._binding import lib as srtp_lib

        from sip_bridge.rtp.g711 import ULAW_DECODE_TABLE
        from sip_bridge.rtp.opus import libopus_addresses

        self.ffi = ffi = FFI()
        ffi.cdef(_CDEF)
        try:
            self.lib = ffi.dlopen(str(library))
        except OSError as exc:
            raise NativeUnavailable(f"cannot load {library}: {exc}") from exc
        self._srtp_ffi = srtp_ffi

        def address(name: str) -> int:
            return int(srtp_ffi.cast("uintptr_t", srtp_ffi.addressof(srtp_lib, name)))

        self.decode_table = np.asarray(ULAW_DECODE_TABLE, dtype=np.int16)
        table = ffi.new("int16_t[256]", [int(v) for v in self.decode_table])
        self.handle = self.lib.ne_new(
            address("srtp_protect"),
            address("srtp_unprotect"),
            address("srtp_unprotect_rtcp"),
            libopus_addresses()[1],
            table,
            quiet,
            onset,
            late,
        )
        if self.handle == ffi.NULL:
            raise NativeUnavailable("the C media engine could not allocate")
        self._stash = ffi.new("uint8_t[]", STASH_BUFFER)
        self._stash_view = ffi.buffer(self._stash)
        self._from = ffi.new("uint32_t *")
        self._port = ffi.new("uint16_t *")
        self._frame_sets: list[Sequence[bytes]] = []

    def set_frames(self, frames: Sequence[bytes], levels: Sequence[int]) -> int:
        """A frame set for calls to send (its number); a set already given keeps its own."""
        given = self._given(frames)
        if given is not None:
            return given
        stride = max(len(f) for f in frames)
        data = b"".join(f.ljust(stride, b"\0") for f in frames)
        number = len(self._frame_sets)
        ok = self.lib.ne_set_frames(
            self.handle,
            number,
            self.ffi.from_buffer("uint8_t[]", data),
            self.ffi.new("int[]", [len(f) for f in frames]),
            self.ffi.new("uint8_t[]", list(levels)),
            len(frames),
            stride,
        )
        if ok != 0:
            raise NativeUnavailable("the C media engine could not take these frames")
        self._frame_sets.append(frames)
        return number

    def frame_set(self, frames: Sequence[bytes]) -> int:
        """The number of a frame set given with set_frames."""
        given = self._given(frames)
        if given is None:
            raise ValueError("frames not given to the engine (Engine.set_frames)")
        return given

    def _given(self, frames: Sequence[bytes]) -> int | None:
        """The number of this very frame set, if it was given already."""
        for number, known in enumerate(self._frame_sets):
            if known is frames:
                return number
        return None

    def set_window(self, start: float, end: float) -> None:
        self.lib.ne_set_window(self.handle, start, end)

    def session(self, srtp_t) -> object:
        """A pylibsrtp session's srtp_t (pylibsrtp's cdata), as a pointer for this library."""
        return self.ffi.cast("void *", int(self._srtp_ffi.cast("uintptr_t", srtp_t)))

    def take_stashed(self, call) -> tuple[bytes, tuple[str, int]] | None:
        size = self.lib.ne_take_stashed(call, self._stash, STASH_BUFFER, self._from, self._port)
        if size < 0:
            return None
        host = socket.inet_ntoa(struct.pack("=I", self._from[0]))
        port = struct.unpack("!H", struct.pack("=H", self._port[0]))[0]
        return bytes(self._stash_view[:size]), (host, port)

    def lateness(self) -> tuple[int, int, float, list[tuple[float, float]]]:
        counts = self.ffi.new("int64_t[2]")
        max_late = self.ffi.new("double *")
        late_at = self.ffi.new("double[100]")
        n = self.lib.ne_lateness(self.handle, counts, max_late, late_at)
        at = [(round(late_at[2 * i], 3), round(late_at[2 * i + 1] * 1000, 1)) for i in range(n)]
        return counts[0], counts[1], max_late[0], at


class NativeSelector(selectors.EpollSelector):
    """The generator loop's selector: waits in the engine, which sends and reads media
    meanwhile (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self._engine = engine
        self._fds = engine.ffi.new("int[]", MAX_EVENTS)
        self._events = engine.ffi.new("uint32_t[]", MAX_EVENTS)

    def unregister(self, fileobj):
        key = super().unregister(fileobj)
        # The socket is closing: the engine must not read it (nor a later one on its fd).
        self._engine.lib.ne_forget_fd(self._engine.handle, key.fd)
        return key

    def select(self, timeout: float | None = None):
        wait = -1.0 if timeout is None else max(timeout, 0.0)
        most = min(max(len(self._fd_to_key), 1), MAX_EVENTS)
        fds, events = self._fds, self._events
        n = self._engine.lib.ne_select(
            self._engine.handle, self._selector.fileno(), wait, fds, events, most
        )
        if n < 0:
            raise OSError(-n, os.strerror(-n))
        ready = []
        for i in range(n):
            event = events[i]
            mask = 0
            if event & ~select.EPOLLIN:
                mask |= selectors.EVENT_WRITE
            if event & ~select.EPOLLOUT:
                mask |= selectors.EVENT_READ
            key = self._fd_to_key.get(fds[i])
            if key:
                ready.append((key, mask & key.events))
        return ready


class NativeAudio(BrowserAudio):
    """BrowserAudio whose frames, echo reading and echo measurements run in the engine.

    RTCP reports are built here from the engine's counters; `measurements()` gives what
    Visitor.on_sent / on_packet would have gathered. `decoder`: the echo's OpusDecoder
    (None: G.711), decoding at `rate`."""

    def __init__(
        self,
        *args,
        engine: Engine,
        index: int,
        frequency_frames: int,
        decoder: OpusDecoder | None = None,
        rate: int = 8000,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self._engine = engine
        self._index = index
        self._frequency_frames = frequency_frames
        self._decoder = decoder  # its state is the engine's while the call runs
        self._rate = rate
        self._call = None
        self._fd = -1
        self._transport = None
        self._stoppers: list[asyncio.Future] = []

    def start(self, first_due: float) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        pair = self._connection._nominated.get(1)
        transport = pair.protocol.transport
        sock = transport.get_extra_info("socket")
        host, port = pair.remote_addr[:2]
        view = self._tx_view
        engine = self._engine

        def at(offset: int | None) -> int:
            return -1 if offset is None else offset

        call = engine.lib.ne_add_call(
            engine.handle,
            self._index,
            sock.fileno(),
            struct.unpack("=I", socket.inet_aton(host))[0],
            struct.unpack("=H", struct.pack("!H", port))[0],
            engine.session(self._tx_session),
            engine.session(self._rx_session),
            engine.ffi.from_buffer("uint8_t[]", bytes(view[: self._header_size])),
            self._header_size,
            at(self._level_at),
            at(self._abs_at),
            at(self._twcc_at),
            self._payload_type,
            self._sequence,
            self._timestamp0,
            self._transport_sequence,
            self._ticks,
            first_due,
            self._jitter,
            self._random.getrandbits(64),
            engine.frame_set(self._frames),
            engine.ffi.cast("void *", self._decoder.state_address)
            if self._decoder is not None
            else engine.ffi.NULL,
            self._rate,
            1,
            self._rate // 50,
        )
        if call == engine.ffi.NULL:
            raise RuntimeError("the C media engine refused the call")
        engine.lib.ne_set_frequency_frames(call, self._frequency_frames)
        self._call = call
        self._fd = sock.fileno()
        self._transport = transport
        # The engine reads this socket now; what it keeps for Python comes through here.
        loop._add_reader(self._fd, self._take_stashed, transport._protocol)
        self._rtcp_at(first_due + self._random.uniform(0.2, 1.0), self._send_sr)
        self._rtcp_at(first_due + self._random.uniform(0.2, 1.0), self._send_rr)

    def _take_stashed(self, protocol) -> None:
        while self._call is not None:
            taken = self._engine.take_stashed(self._call)
            if taken is None:
                return
            protocol.datagram_received(*taken)

    def stop(self) -> None:
        for stopper in self._stoppers:
            stopper.cancel()
        if self._call is not None:
            self._engine.lib.ne_stop_call(self._engine.handle, self._call)
            transport = self._transport
            if transport is not None and not transport.is_closing():
                self._loop._add_reader(self._fd, transport._read_ready)
            self._sync()
        self._transport = None
        super().stop()

    # ------------------------------------------------------------------ read-outs
    def _counters(self) -> list[int]:
        out = self._engine.ffi.new("int64_t[12]")
        self._engine.lib.ne_counters(self._call, out)
        return list(out)

    def _sync(self) -> None:
        """BrowserAudio's counters from the engine's (the RTCP reports read them)."""
        if self._call is None:
            return
        (self.packets_sent, self._octets, self._k, _, _, self._received, remote, has_base,
         base, highest, self._cycles, _) = self._counters()  # fmt: skip
        if has_base:
            self.remote_ssrc, self._base_sequence, self._max_sequence = remote, base, highest

    def attach(self) -> bool:
        if not super().attach():
            return False
        # aiortc's RTCP loops send nothing (silenced in BrowserAudio.attach) and the server's
        # RTCP no longer reaches aiortc: stop them (the sender's BYE goes to nothing too).
        # A task cancelled before its first step never says it started, and aiortc's stop()
        # waits for that: cancel each once it has.
        for owner, prefix in (
            (self._transceiver.sender, "_RTCRtpSender__"),
            (self._receiver, "_RTCRtpReceiver__"),
        ):
            task = getattr(owner, prefix + "rtcp_task", None)
            started = getattr(owner, prefix + "rtcp_started", None)
            if task is not None and started is not None:
                self._stoppers.append(asyncio.ensure_future(_cancel_once(task, started)))
        return True

    def _last_sender_report(self) -> tuple[int, int]:
        ffi = self._engine.ffi
        ssrc, lsr, at = ffi.new("uint32_t *"), ffi.new("uint32_t *"), ffi.new("double *")
        if self._call is None or not self._engine.lib.ne_last_sr(self._call, ssrc, lsr, at):
            return 0, 0
        if ssrc[0] != self.remote_ssrc:
            return 0, 0
        return lsr[0], min(0xFFFFFFFF, max(0, int((time.time() - at[0]) * 65536)))

    def _send_sr(self) -> None:
        self._sync()
        super()._send_sr()

    def _send_rr(self) -> None:
        self._sync()
        super()._send_rr()

    def measurements(self) -> dict:
        """What Visitor.on_sent and on_packet gather, from the engine."""
        ffi, lib, call = self._engine.ffi, self._engine.lib, self._call
        counters = self._counters()
        arrivals_p, indexes_p = ffi.new("double **"), ffi.new("int64_t **")
        n = lib.ne_arrivals(call, arrivals_p, indexes_p)
        arrivals = np.frombuffer(ffi.buffer(arrivals_p[0], 8 * n), np.float64).copy() if n else None
        indexes = np.frombuffer(ffi.buffer(indexes_p[0], 8 * n), np.int64).copy() if n else None
        rtt_p = ffi.new("double **")
        m = lib.ne_rtt(call, rtt_p)
        rtt = list(np.frombuffer(ffi.buffer(rtt_p[0], 8 * m), np.float64)) if m else []
        lengths_p, size_p = ffi.new("int **"), ffi.new("int *")
        kept_p = lib.ne_frequency(call, lengths_p, size_p)
        size, count = size_p[0], counters[11]
        kept = np.frombuffer(ffi.buffer(kept_p, 2 * size * count), np.int16)
        pcm = [kept[i * size : i * size + lengths_p[0][i]].copy() for i in range(count)]
        return {
            "frames_sent": counters[3],
            "sent_in_window": counters[4],
            "arrivals": arrivals,
            "indexes": indexes,
            "rtt": rtt,
            "frequency_pcm": pcm,
        }


async def _cancel_once(task: asyncio.Future, started: asyncio.Event) -> None:
    await started.wait()
    task.cancel()


def merge_lateness(python: Lateness, engine: Engine | None) -> dict:
    """The process's lateness: the Python path's sends and the engine's."""
    sends, late, max_late, late_at = python.sends, python.late, python.max_late, python.late_at
    if engine is not None:
        e_sends, e_late, e_max, e_at = engine.lateness()
        sends, late, max_late = sends + e_sends, late + e_late, max(max_late, e_max)
        late_at = sorted(late_at + e_at)[:50]
    return {
        "ticks": sends,
        "late_ticks": late,
        "max_late_s": max_late if math.isfinite(max_late) else 0.0,
        "late_ticks_at": late_at,
    }
