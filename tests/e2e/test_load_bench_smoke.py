"""The load benchmark still runs, and its visitors look like Chromium on the wire.

One small point (two calls through one worker), its packets counted on loopback by
bench/load/capture.py: each call on its own clock phase (not all calls' frames in one
tick), Chromium's header extensions and SRTP tag size, and RTCP reports and STUN consent
checks sent to the gateway. The benchmark's figures are not asserted as targets here:
`make bench` measures them and docs/benchmark.md writes them down. The stock aiortc
client (`--generator-media aiortc`) places its calls with aiortc's own packets instead.
"""

from __future__ import annotations

import pytest

from bench.load.generator import visitor_seed
from bench.load.run import PointSpec, run_point
from bench.load.visitor import FRAME, Visitor, phase_offset
from bench.load.window import Window

FIELDS = (
    "calls",
    "calls_ok",
    "cpu_ms_per_call_s",
    "frames_on_time_pct",
    "echo_rtt_ms_p95",
    "setup_ms_p95",
    "rss_mb_per_call",
    "generator_cpu_pct",
)
SEED = 0
# RTCP comes every 2.5-7.5 s per stream: a window this long holds at least one of each.
SECONDS = 8
# aiortc sends RTCP about every second; aioice checks consent 4-6 s after connecting, and
# the window opens a second or so after that: 7 s hold at least one check of each call.
STOCK_SECONDS = 7


def _circular_ms(a: float, b: float) -> float:
    period = FRAME * 1000
    difference = abs(a - b) % period
    return min(difference, period - difference)


def two_calls(codec: str, media: str) -> dict:
    """A point of two calls through one worker, its packets counted."""
    return run_point(
        PointSpec(
            calls=2,
            seconds=SECONDS,
            codec=codec,
            workers=1,
            seed=SEED,
            capture=True,
            generator_media=media,
        )
    )


@pytest.mark.parametrize("media", ["c", "python"])
def test_the_load_benchmark_loads_the_gateway_like_browsers(media):
    """Both media paths of the generator (bench/load/native.py in C, browser_media.py in
    Python) put the same on the wire and measure the echo."""
    phases = [phase_offset(visitor_seed(SEED, index)) * 1000 for index in range(2)]
    assert _circular_ms(*phases) > 6, "pick a seed whose two calls' clocks are apart"

    result = two_calls("pcmu", media)

    assert all(result[field] is not None for field in FIELDS), result
    assert result["calls_ok"] == 2, result["errors"]
    assert result["generator_media"] == [media]
    assert result["frames_on_time_pct"] > 0
    assert result["frequency_hz_median"] == 1000.0
    assert result["echo_rtt_samples"] >= 2  # an onset each second of each call
    assert result["cpu_ms_per_call_s"] > 0
    to_gateway = result["packets"]["rates"]["to server"]
    rtp = result["packets"]["rtp_to_server"]
    assert rtp["streams"] == 2
    if result["generator_late_ticks_pct"] < 1:
        # Each call on its own clock: the two streams arrive at the phases their seeds
        # gave. (A generator that fell behind, on a busy machine, catches up in bursts:
        # its arrival times then say more about the machine; the schedule itself is
        # checked without a socket below.)
        assert _circular_ms(*rtp["phases_ms"]) > 3, rtp
    # Chromium's header extensions (MID, then audio level) on every packet, and its SRTP
    # profile: 12 + 8 + 160 + a 10-byte tag.
    assert rtp["extension_ids"] == {"4,1": rtp["extension_ids"]["4,1"]}, rtp
    assert to_gateway["rtp"]["mean_bytes"] == 190
    # Reduced-size RTCP as Chromium sends it: SR + SDES (70 bytes protected), RR with one
    # report block (46); and STUN consent checks.
    assert to_gateway["rtcp-200"]["mean_bytes"] == 70
    assert to_gateway["rtcp-201"]["mean_bytes"] == 46
    assert to_gateway["stun-request"]["per_call_s"] > 0


def test_each_call_sends_on_its_own_clock():
    """The schedule, without sockets: frame k of a call is due at anchor + phase + 20 ms k,
    the phase drawn from the call's seed, never in the past when the call starts."""
    anchor = 1000.0
    visitors = [
        Visitor(
            index,
            signaling=None,
            codec="pcmu",
            frames=[b""],
            levels=[127],
            window=Window(),
            lateness=None,
            jitter=0.0,
            seed=visitor_seed(SEED, index),
            anchor=anchor,
        )
        for index in range(2)
    ]
    for now in (anchor, anchor + 0.0137, anchor + 3.5):
        due = [v.first_due(now) for v in visitors]
        assert all(now <= d < now + FRAME for d in due)
        phases = [((d - anchor) % FRAME) * 1000 for d in due]
        assert _circular_ms(*phases) > 6
        for v, phase in zip(visitors, phases, strict=True):
            assert abs(phase - v.phase * 1000) < 1e-6


def test_opus_visitors_go_narrowband_when_the_answer_caps_playback_as_chromium_does():
    """An answer's Opus fmtp maxplaybackrate=8000 (the gateway's, when its phones are all
    narrowband): Chromium's encoder then codes narrowband at 12 kbit/s, and so do the
    visitors' frames; without it, fullband."""
    from opuslib_next.api.decoder import libopus_packet_get_bandwidth
    from opuslib_next.constants import BANDWIDTH_FULLBAND, BANDWIDTH_NARROWBAND

    from bench.load.audio import encoded_frames, plays_narrowband

    answer = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n"
    capped = answer + "a=fmtp:111 maxplaybackrate=8000;sprop-maxcapturerate=8000\r\n"
    assert plays_narrowband(capped) and not plays_narrowband(answer)
    for narrowband, bandwidth in ((True, BANDWIDTH_NARROWBAND), (False, BANDWIDTH_FULLBAND)):
        frames = encoded_frames("opus", narrowband=narrowband)
        assert {libopus_packet_get_bandwidth(f) for f in frames} == {bandwidth}


def test_a_stock_aiortc_client_loads_the_gateway():
    """`--generator-media aiortc` (bench/load/stock_visitor.py): stock aiortc peers, their
    own offer and media path, place the calls and hear the echo through aiortc's decoder."""
    result = run_point(
        PointSpec(
            calls=2,
            seconds=STOCK_SECONDS,
            codec="pcmu",
            workers=1,
            seed=SEED,
            capture=True,
            generator_media="aiortc",
        )
    )

    assert result["calls_ok"] == 2, result["errors"]
    assert result["generator_media"] == ["aiortc"]
    assert result["frequency_hz_median"] == 1000.0
    assert result["echo_rtt_samples"] >= 2
    assert result["cpu_ms_per_call_s"] > 0
    to_gateway = result["packets"]["rates"]["to server"]
    # aiortc's packets, not Chromium's: its SRTP profile (AES-GCM, 16-byte tags) and only
    # the MID extension on pre-encoded frames: 12 + 8 + 160 + 16 bytes (Chromium's: 190).
    assert to_gateway["rtp"]["mean_bytes"] == 196
    # aiortc's RTCP as aiortc sends it (SR and RR every 0.5-1.5 s per call, not Chromium's
    # 2.5-7.5 s), and aioice's consent checks.
    assert to_gateway["rtcp-200"]["per_call_s"] > 0.4
    assert to_gateway["rtcp-201"]["per_call_s"] > 0.4
    assert to_gateway["stun-request"]["per_call_s"] > 0


@pytest.mark.parametrize("media", ["c", "python"])
def test_opus_visitors_hear_the_echo_through_the_transcoder(media):
    """Opus visitors, both media paths (the C one decodes the echo with libopus in C): the
    gateway answers narrowband (its phones are G.711) and the visitors send the narrowband
    frames as Chromium would, the transcoded echo comes back and is heard as the tone."""
    from bench.load.audio import encoded_frames

    result = two_calls("opus", media)

    assert result["calls_ok"] == 2, result["errors"]
    assert result["generator_media"] == [media]
    assert abs(result["frequency_hz_median"] - 1000.0) <= 10
    assert result["echo_rtt_samples"] >= 2
    assert result["frames_on_time_pct"] > 0
    to_gateway = result["packets"]["rates"]["to server"]
    # The narrowband frames (a whole number of periods in the window, give or take a
    # frame): 12 + 8 (MID, audio level) + the frame + a 10-byte tag.
    narrowband = encoded_frames("opus", narrowband=True)
    expected = 12 + 8 + sum(map(len, narrowband)) / len(narrowband) + 10
    assert abs(to_gateway["rtp"]["mean_bytes"] - expected) <= 1, (to_gateway, expected)
    assert to_gateway["stun-request"]["per_call_s"] > 0
