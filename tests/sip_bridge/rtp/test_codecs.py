import numpy as np
import pytest

from sip_bridge.rtp.codecs import CODECS, UnknownCodecError, codec_by_name, codec_by_payload_type
from sip_bridge.rtp.g722 import G722Decoder, G722Encoder, G722Error

from .tones import dominant_frequency, rms, tone


def test_codec_table():
    rows = {
        name: (
            c.payload_type,
            c.clock_rate,
            c.sample_rate,
            c.frame_samples,
            c.frame_bytes,
            c.timestamp_step(),
        )
        for name, c in CODECS.items()
    }
    assert rows == {
        "PCMU": (0, 8000, 8000, 160, 160, 160),
        "PCMA": (8, 8000, 8000, 160, 160, 160),
        "G722": (9, 8000, 16000, 320, 160, 160),
        "G729": (18, 8000, 8000, 160, 20, 160),
        "OPUS": (111, 48000, 48000, 960, 80, 960),  # dynamic PT: what we offer
    }
    assert CODECS["G722"].samples_per_frame(30) == 480
    assert CODECS["PCMA"].bytes_per_frame(10) == 80


def test_lookup_by_name_and_payload_type():
    assert codec_by_name("pcmu") is CODECS["PCMU"]
    assert codec_by_payload_type(9) is CODECS["G722"]
    assert codec_by_payload_type(18) is CODECS["G729"]
    with pytest.raises(UnknownCodecError, match="SPEEX"):
        codec_by_name("SPEEX")
    with pytest.raises(UnknownCodecError, match="96"):
        codec_by_payload_type(96)


@pytest.mark.parametrize("name", ["PCMU", "PCMA", "G722", "G729"])
@pytest.mark.parametrize("ptime", [20, 30])
def test_every_codec_has_the_same_encoder_decoder_shape(name, ptime):
    codec = CODECS[name]
    encoder, decoder = codec.create_encoder(ptime), codec.create_decoder()
    signal = tone(1000, codec.sample_rate, 0.5)
    frame = codec.samples_per_frame(ptime)
    out = []
    for start in range(0, len(signal) - frame + 1, frame):
        payload = encoder.encode(signal[start : start + frame])
        assert isinstance(payload, bytes) and len(payload) == codec.bytes_per_frame(ptime)
        pcm = decoder.decode(payload)
        assert pcm.dtype == np.int16 and pcm.shape == (frame,)
        out.append(pcm)
    decoded = np.concatenate(out)
    assert abs(dominant_frequency(decoded[frame:], codec.sample_rate) - 1000) <= 5


@pytest.mark.parametrize("frequency", [1000, 440, 6000])
def test_g722_round_trip_keeps_the_tone(frequency):
    encoder, decoder = G722Encoder(), G722Decoder()
    signal = tone(frequency, 16000, 1.0)
    decoded = np.concatenate(
        [decoder.decode(encoder.encode(signal[i : i + 320])) for i in range(0, 16000, 320)]
    )
    assert len(decoded) == 16000
    steady = decoded[1600:]
    assert abs(dominant_frequency(steady, 16000) - frequency) <= 5
    # Wideband: 6 kHz survives (G.711 at 8 kHz could not carry it at all).
    assert rms(steady) > 0.5 * rms(signal)


def test_g722_encoder_is_stateful_per_stream():
    # ADPCM: the same frame encodes differently depending on what came before.
    encoder = G722Encoder()
    frame = tone(1000, 16000, 0.02)
    assert encoder.encode(frame) != encoder.encode(frame)


def test_g722_errors():
    with pytest.raises(G722Error, match="expects 320 samples"):
        G722Encoder().encode(np.zeros(100, np.int16))
    with pytest.raises(G722Error, match="empty"):
        G722Decoder().decode(b"")
    with pytest.raises(ValueError):
        G722Encoder(321)


def test_opus_round_trip_keeps_the_tone():
    codec = CODECS["OPUS"]
    encoder, decoder = codec.create_encoder(20), codec.create_decoder()
    signal = tone(1000, 48000, 1.0)
    payloads = [encoder.encode(signal[i : i + 960]) for i in range(0, 48000, 960)]
    assert all(isinstance(p, bytes) and 0 < len(p) < 400 for p in payloads[1:])
    decoded = np.concatenate([decoder.decode(p) for p in payloads if p])
    assert decoded.dtype == np.int16
    assert abs(dominant_frequency(decoded[9600:], 48000) - 1000) <= 5
    assert decoder.decode(b"\xff\xff\xff").size == 0  # garbage: nothing, no exception
