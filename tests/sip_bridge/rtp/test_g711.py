"""G.711 tables against the ITU-T reference algorithm, libavcodec and audioop.

The reference here is the G.711 quantizer as the ITU-T G.191 software tool
library states it, restated per sample in plain Python (independent of the
vectorized table construction under test).
"""

import warnings

import av
import numpy as np
import pytest

from sip_bridge.rtp import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))
ULAW_OR_ALAW_TABLE = {"pcm_mulaw": g711.ULAW_ENCODE_TABLE, "pcm_alaw": g711.ALAW_ENCODE_TABLE}


# -- the reference, one sample at a time -----------------------------------------


def reference_ulaw_compress(x: int) -> int:
    magnitude = ((~x) >> 2) if x < 0 else (x >> 2)  # 14-bit, one's complement
    magnitude = min(magnitude + 33, 0x1FFF)
    segment = 1
    rest = magnitude >> 6
    while rest:
        segment += 1
        rest >>= 1
    code = ((8 - segment) << 4) | (0x0F - ((magnitude >> segment) & 0x0F))
    return code | 0x80 if x >= 0 else code


def reference_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    inverted = ~code
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    step = 4 << (exponent + 1)
    return sign * ((0x80 << exponent) + step * mantissa + step // 2 - 4 * 33)


def reference_alaw_compress(x: int) -> int:
    magnitude = ((~x) >> 4) if x < 0 else (x >> 4)  # 12-bit
    if magnitude > 15:
        exponent = 1
        while magnitude > 16 + 15:
            magnitude >>= 1
            exponent += 1
        magnitude -= 16
        magnitude += exponent << 4
    if x >= 0:
        magnitude |= 0x80
    return magnitude ^ 0x55


def reference_alaw_expand(code: int) -> int:
    toggled = (code ^ 0x55) & 0x7F
    exponent = toggled >> 4
    mantissa = toggled & 0x0F
    if exponent > 0:
        mantissa += 16
    mantissa = (mantissa << 4) + 8
    if exponent > 1:
        mantissa <<= exponent - 1
    return mantissa if code > 127 else -mantissa


# -- bit exactness -----------------------------------------------------------------


def test_ulaw_encode_matches_reference_for_all_inputs():
    expected = bytes(reference_ulaw_compress(int(x)) for x in ALL_SAMPLES)
    assert g711.ulaw_encode(ALL_SAMPLES) == expected


def test_alaw_encode_matches_reference_for_all_inputs():
    expected = bytes(reference_alaw_compress(int(x)) for x in ALL_SAMPLES)
    assert g711.alaw_encode(ALL_SAMPLES) == expected


def test_ulaw_decode_matches_reference_for_all_codes():
    expected = [reference_ulaw_expand(c) for c in ALL_CODES]
    assert g711.ulaw_decode(ALL_CODES).tolist() == expected


def test_alaw_decode_matches_reference_for_all_codes():
    expected = [reference_alaw_expand(c) for c in ALL_CODES]
    assert g711.alaw_decode(ALL_CODES).tolist() == expected


def test_known_values():
    # Zero, full scale and the sign convention (G.711 tables 1a/2a, G.191).
    assert g711.ulaw_encode(np.array([0, -1, 32767, -32768], np.int16)) == b"\xff\x7f\x80\x00"
    assert g711.alaw_encode(np.array([0, -1, 32767, -32768], np.int16)) == b"\xd5\x55\xaa\x2a"
    assert g711.ulaw_decode(b"\xff\x7f\x80\x00").tolist() == [0, 0, 32124, -32124]
    assert g711.alaw_decode(b"\xd5\x55\xaa\x2a").tolist() == [8, -8, 32256, -32256]


def test_round_trip_is_idempotent_on_reconstruction_levels():
    for encode, decode in (
        (g711.ulaw_encode, g711.ulaw_decode),
        (g711.alaw_encode, g711.alaw_decode),
    ):
        levels = decode(ALL_CODES)
        assert decode(encode(levels)).tolist() == levels.tolist()


# -- against audioop (CPython's C implementation) ----------------------------------


def test_alaw_encode_equals_audioop_for_all_inputs():
    assert g711.alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(ALL_SAMPLES.tobytes(), 2)


def test_ulaw_encode_equals_audioop_up_to_its_negative_rounding():
    """audioop takes |x| of a negative sample as -(x >> 2), G.191 as (~x) >> 2.

    The two agree on every non-negative input; on negative ones audioop's code for
    x is the reference code for x - 4 (its 14-bit magnitude is one step larger).
    """
    ours = np.frombuffer(g711.ulaw_encode(ALL_SAMPLES), np.uint8)
    theirs = np.frombuffer(audioop.lin2ulaw(ALL_SAMPLES.tobytes(), 2), np.uint8)
    non_negative = ALL_SAMPLES >= 0
    assert np.array_equal(ours[non_negative], theirs[non_negative])
    shifted = (ALL_SAMPLES >= -32764) & (ALL_SAMPLES < 0)
    assert np.array_equal(
        theirs[shifted], np.frombuffer(g711.ulaw_encode(ALL_SAMPLES[shifted] - 4), np.uint8)
    )
    assert np.count_nonzero(ours != theirs) == 508


@pytest.mark.parametrize(
    ("decode", "reference"),
    [(g711.ulaw_decode, audioop.ulaw2lin), (g711.alaw_decode, audioop.alaw2lin)],
)
def test_decode_equals_audioop_for_all_codes(decode, reference):
    assert decode(ALL_CODES).tobytes() == reference(ALL_CODES, 2)


# -- against libavcodec ----------------------------------------------------------------


def libav_encode(codec: str, pcm: np.ndarray) -> np.ndarray:
    context = av.CodecContext.create(codec, "w")
    context.sample_rate = 8000
    context.layout = "mono"
    context.format = "s16"
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8000
    packets = context.encode(frame) + context.encode(None)
    return np.frombuffer(b"".join(bytes(p) for p in packets), np.uint8)


def libav_decode(codec: str, payload: bytes) -> np.ndarray:
    context = av.CodecContext.create(codec, "r")
    context.sample_rate = 8000
    context.layout = "mono"
    frames = context.decode(av.Packet(payload))
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames])


@pytest.mark.parametrize(
    ("codec", "decode"), [("pcm_mulaw", g711.ulaw_decode), ("pcm_alaw", g711.alaw_decode)]
)
def test_decode_equals_libavcodec_for_all_codes(codec, decode):
    assert libav_decode(codec, ALL_CODES).tolist() == decode(ALL_CODES).tolist()


@pytest.mark.parametrize(
    ("codec", "encode", "decode"),
    [
        ("pcm_mulaw", g711.ulaw_encode, g711.ULAW_DECODE_TABLE),
        ("pcm_alaw", g711.alaw_encode, g711.ALAW_DECODE_TABLE),
    ],
)
def test_encode_matches_libavcodec_except_at_its_rounded_segment_edges(codec, encode, decode):
    """libavcodec's encoder tables place some decision levels differently: halfway
    between output levels at segment edges, and a 2-complement truncation for
    negative inputs. So where the two disagree, libavcodec's code must be the
    reference code of a nearby input (less than one step of the top segment away)
    and a neighbouring output level."""
    ours = np.frombuffer(encode(ALL_SAMPLES), np.uint8)
    theirs = libav_encode(codec, ALL_SAMPLES)
    differ = ours != theirs
    assert np.count_nonzero(differ) <= 1000  # < 1.6 % of inputs
    levels = np.sort(np.unique(decode))
    rank = {int(v): i for i, v in enumerate(levels)}
    ours_rank = np.array([rank[int(v)] for v in decode[ours[differ]]])
    theirs_rank = np.array([rank[int(v)] for v in decode[theirs[differ]]])
    assert np.all(np.abs(ours_rank - theirs_rank) == 1)
    table = ULAW_OR_ALAW_TABLE[codec]
    inputs = ALL_SAMPLES[differ].astype(np.int32)
    nearby = np.clip(inputs[:, None] + np.arange(-128, 129)[None, :], -32768, 32767)
    codes_nearby = table[nearby.astype(np.int16).view(np.uint16)]
    assert np.all(np.any(codes_nearby == theirs[differ][:, None], axis=1))


def test_encode_accepts_any_frame_length_and_makes_one_byte_per_sample():
    pcm = np.array([1000, -1000, 0], np.int16)
    assert len(g711.ulaw_encode(pcm)) == 3
    assert len(g711.alaw_encode(pcm[:0])) == 0
