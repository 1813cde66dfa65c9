"""G.729 through bcg729 (Debian's libbcg729-0): frames, tones, SID frames, bad payloads."""

import numpy as np
import pytest

from sip_bridge.rtp.g729 import FRAME_BYTES, G729Decoder, G729Encoder, g729_missing

from .tones import dominant_frequency, rms, tone


def test_bcg729_is_installed_here():
    assert g729_missing() is None


@pytest.mark.parametrize("frequency", [1000, 440])
def test_round_trip_keeps_the_tone_in_10_byte_frames(frequency):
    encoder, decoder = G729Encoder(160), G729Decoder()
    signal = tone(frequency, 8000, 1.0)
    out = []
    for start in range(0, len(signal), 160):
        payload = encoder.encode(signal[start : start + 160])
        assert len(payload) == 2 * FRAME_BYTES  # 20 ms: two frames, no SID (no VAD)
        out.append(decoder.decode(payload))
    decoded = np.concatenate(out)[800:]
    assert abs(dominant_frequency(decoded, 8000) - frequency) <= 5
    assert rms(decoded) > 0.5 * rms(signal)


def test_encoder_takes_whole_10_ms_frames_only():
    with pytest.raises(ValueError, match="80"):
        G729Encoder(100)
    with pytest.raises(ValueError, match="160"):
        G729Encoder(160).encode(np.zeros(80, np.int16))
    assert len(G729Encoder(80).encode(np.zeros(80, np.int16))) == FRAME_BYTES


def test_payload_lengths_the_rfc_does_not_allow_decode_to_nothing():
    decoder = G729Decoder()
    for length in (0, 1, 3, 9, 11, 15):
        assert decoder.decode(bytes(range(length))).shape == (0,)
    # Any 10-byte frame (garbage included) is audio; it does not upset the decoder.
    assert decoder.decode(bytes([0xFF]) * 20).shape == (160,)


def test_an_annex_b_sid_frame_after_speech_decodes_to_comfort_noise():
    encoder, decoder = G729Encoder(160), G729Decoder()
    speech = encoder.encode(tone(1000, 8000, 0.02))
    sid = bytes([0x32, 0x40])  # a 2-byte silence insertion descriptor
    pcm = decoder.decode(speech + sid)
    assert pcm.dtype == np.int16 and pcm.shape == (240,)
    assert decoder.decode(sid).shape == (80,)
