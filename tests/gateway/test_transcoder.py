"""The transcoder keeps a tone's frequency and level, frame for frame, both ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.media.bridge import Direction
from gateway.media.transcoder import (
    OPUS,
    AudioCodec,
    OpusDecoder,
    OpusEncoder,
    Transcoder,
    audio_codec,
    silence_frame,
)
from sip_bridge.rtp.codecs import codec_by_name

FRAMES = 100


def tone(rate: int, hz: float, frames: int = FRAMES) -> np.ndarray:
    t = np.arange(rate // 50 * frames) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)


def peak_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    spectrum[0] = 0
    return float(np.argmax(spectrum) * rate / len(pcm))


def encode_all(encode, pcm: np.ndarray, rate: int) -> list[bytes | None]:
    size = rate // 50
    return [encode(pcm[i * size : (i + 1) * size]) for i in range(len(pcm) // size)]


@pytest.mark.parametrize("phone", ["PCMU", "PCMA", "G722", "G729"])
def test_browser_opus_to_phone_keeps_the_tone(phone):
    target = audio_codec(phone)
    transcoder = Transcoder(OPUS, target)
    assert transcoder.pcm_rate == target.sample_rate  # decoded straight to the phone's rate
    frames = [f for f in encode_all(OpusEncoder().encode, tone(48000, 700), 48000) if f]
    converted = [transcoder.convert(f) for f in frames]
    assert all(len(o) == 1 for o in converted)  # one frame out for each frame in
    out = [o for [o] in converted]
    decoder = codec_by_name(phone).create_decoder()
    pcm = np.concatenate([decoder.decode(o) for o in out[10:]])
    assert len(pcm) == (len(out) - 10) * target.sample_rate // 50
    assert abs(peak_hz(pcm, target.sample_rate) - 700) < 5
    assert 3000 < np.abs(pcm.astype(np.int32)).mean() < 7000  # level kept (~5100)


@pytest.mark.parametrize("phone", ["PCMU", "G722", "G729"])
def test_phone_to_browser_opus_encodes_at_the_phone_rate(phone):
    source = audio_codec(phone)
    transcoder = Transcoder(source, OPUS)
    assert transcoder.pcm_rate == source.sample_rate  # no upsampling before libopus
    encoder = codec_by_name(phone).create_encoder(20)
    payloads = [encoder.encode(f) for f in np.split(tone(source.sample_rate, 700), FRAMES)]
    converted = [transcoder.convert(p) for p in payloads]
    assert all(len(o) == 1 for o in converted)  # one frame out for each frame in
    decoder = OpusDecoder()
    pcm = np.concatenate([decoder.decode(o) for [o] in converted[10:]])
    assert abs(peak_hz(pcm, 48000) - 700) < 5
    assert 3000 < np.abs(pcm.astype(np.int32)).mean() < 7000  # level kept (~5100)


def test_lost_frames_are_concealed_in_the_target_codec():
    transcoder = Transcoder(audio_codec("PCMU"), OPUS)
    encoder = codec_by_name("PCMU").create_encoder(20)
    for frame in np.split(tone(8000, 700, 20), 20):
        transcoder.convert(encoder.encode(frame))
    concealed = transcoder.conceal_one()
    assert concealed is not None
    pcm = OpusDecoder().decode(concealed)
    assert len(pcm) == 960  # a decodable 20 ms Opus frame carrying the concealment


def test_g729_payloads_that_are_not_20_ms_are_concealed_for_the_browser():
    transcoder = Transcoder(audio_codec("G729"), OPUS)
    encoder = codec_by_name("G729").create_encoder(20)
    for frame in np.split(tone(8000, 700, 20), 20):
        transcoder.convert(encoder.encode(frame))
    # A length RFC 3551 does not allow, and a lone Annex B SID frame (10 ms).
    for payload in (b"\x01\x02\x03", b"\x32\x40"):
        [out] = transcoder.convert(payload)
        assert len(OpusDecoder().decode(out)) == 960


class RecordingLeg:
    """An `AudioLeg` that keeps what the bridge sends it."""

    def __init__(self, codec: AudioCodec) -> None:
        self.codec = codec
        self.sent: list[bytes] = []

    def listen(self, handler) -> None:
        pass

    def send(self, payload, frames) -> None:
        self.sent.append(bytes(payload))


@pytest.mark.parametrize(("phone", "browser"), [("PCMU", "opus"), ("PCMU", "PCMU")])
def test_a_muted_direction_sends_silence_in_the_target_codec(phone, browser):
    source, target = RecordingLeg(audio_codec(phone)), RecordingLeg(audio_codec(browser))
    direction = Direction(source, target)
    encoder = codec_by_name(phone).create_encoder(20)
    for k, frame in enumerate(np.split(tone(8000, 700, 10), 10)):
        direction.muted = k >= 5
        direction.on_packet(encoder.encode(frame), 160 * k)
    silence = silence_frame(target.codec)
    assert silence and target.sent[-5:] == [silence] * 5
    if browser == "opus":
        assert np.abs(OpusDecoder().decode(silence).astype(np.int32)).max() < 33
    else:
        assert not codec_by_name(browser).create_decoder().decode(silence).any()
    assert silence_frame(audio_codec(browser)) is silence  # made once, not per call


def _threads() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads: line in /proc/self/status")


def test_transcoding_both_ways_starts_no_threads():
    """Opus is coded in the calling thread: no thread pool per call (PyAV's encoder path
    gave each call two threads, ~100 in a worker carrying 25 transcoded calls)."""
    frames = [f for f in encode_all(OpusEncoder().encode, tone(48000, 700, 10), 48000) if f]
    g711 = codec_by_name("PCMU").create_encoder(20)
    phone = [g711.encode(f) for f in np.split(tone(8000, 700, 10), 10)]
    before = _threads()
    for _ in range(3):
        to_phone = Transcoder(OPUS, audio_codec("PCMU"))
        to_browser = Transcoder(audio_codec("PCMU"), OPUS)
        assert all(len(to_phone.convert(f)) == 1 for f in frames)
        assert all(len(to_browser.convert(p)) == 1 for p in phone)
    assert _threads() == before


def test_browser_opus_is_decoded_at_the_phone_rate_without_a_resampler():
    frames = [f for f in encode_all(OpusEncoder().encode, tone(48000, 700), 48000) if f]
    for phone, rate in (("PCMU", 8000), ("G722", 16000)):
        decoder = OpusDecoder(rate)
        pcm = np.concatenate([decoder.decode(f) for f in frames[10:]])
        assert len(pcm) == (len(frames) - 10) * rate // 50
        assert abs(peak_hz(pcm, rate) - 700) < 5, phone


@pytest.mark.parametrize("ptime", [10, 30, 40, 60])
def test_a_phone_at_another_packet_time_reaches_the_browser_as_20_ms_opus_frames(ptime):
    """libopus is handed 20 ms frames whatever the phone's packet time: the PCM of 10, 30,
    40 or 60 ms packets is cut into 20 ms frames again, none of it concealed away."""
    phone, browser = RecordingLeg(audio_codec("PCMU")), RecordingLeg(OPUS)
    direction = Direction(phone, browser)
    encoder = codec_by_name("PCMU").create_encoder(ptime)
    samples = 8 * ptime
    pcm_in = tone(8000, 700, 60)  # 1.2 s: a whole number of packets at every packet time
    for k in range(len(pcm_in) // samples):
        packet = pcm_in[k * samples : (k + 1) * samples]
        direction.on_packet(encoder.encode(packet), k * samples)
    assert len(browser.sent) == 60  # 20 ms out for every 20 ms in
    decoder = OpusDecoder()
    decoded = [decoder.decode(frame) for frame in browser.sent]
    assert all(len(pcm) == 960 for pcm in decoded)
    pcm = np.concatenate(decoded[10:])
    assert abs(peak_hz(pcm, 48000) - 700) < 5
    assert 3000 < np.abs(pcm.astype(np.int32)).mean() < 7000  # heard, not concealed away


def _python_path(transcoder: Transcoder) -> Transcoder:
    transcoder._native = None
    return transcoder


@pytest.mark.parametrize("phone", ["PCMU", "PCMA"])
def test_the_c_frame_step_codes_exactly_as_the_python_path(phone):
    """gateway/media/_opusframes.c (built by make) does the steady G.711 <-> Opus frame in
    one call; both ways, through a loss (concealed, then faded back in by the Python path),
    a 40 ms Opus packet and a corrupt one, it gives the same bytes as the Python path."""
    phone_codec = audio_codec(phone)
    g711 = codec_by_name(phone).create_encoder(20)
    opus_in = [f for f in encode_all(OpusEncoder().encode, tone(48000, 700, 40), 48000) if f]
    opus_in[20:21] = [OpusEncoder().encode(tone(48000, 700, 2)), b"\xff\xff\xff"]  # 40 ms
    phone_in = [g711.encode(f) for f in np.split(tone(8000, 700, 40), 40)]
    for source, target, payloads in ((OPUS, phone_codec, opus_in), (phone_codec, OPUS, phone_in)):
        native, python = Transcoder(source, target), _python_path(Transcoder(source, target))
        assert native.native, "gateway/media/_opusframes.c is not built: run make"
        for k, payload in enumerate(payloads):
            if k == 10:  # a frame lost upstream
                assert native.conceal_one() == python.conceal_one()
                continue
            assert native.convert(payload) == python.convert(payload), (source.name, k)
        assert np.array_equal(native._concealer.history, python._concealer.history)
