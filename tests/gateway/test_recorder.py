"""A voicemail's recording (gateway.media.recorder) and its greeting
(gateway.media.greeting), without a network: frames of each browser codec in, an Ogg/Opus
file out whose length follows the RTP timestamps (a lost frame is silence, not a shorter
file) and which stops at its longest; a greeting read from any audio file, then the tone."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from gateway.media.greeting import TONE_HZ, greeting_pcm, read_audio
from gateway.media.recorder import OggOpusRecorder
from gateway.media.transcoder import OpusEncoder, audio_codec
from sip_bridge import codec_by_name
from tests.support.audio import dominant_frequency, write_tone_wav

HZ = 660


def frames_of(name: str, seconds: float):
    """(payload, RTP timestamp) of a 660 Hz tone in `name`, 20 ms each."""
    codec = audio_codec(name)
    rate = codec.sample_rate
    t = np.arange(round(rate * seconds)) / rate
    pcm = (np.sin(2 * np.pi * HZ * t) * 10000).astype(np.int16)
    encode = (
        OpusEncoder().encode if name == "opus" else codec_by_name(name).create_encoder(20).encode
    )
    step = rate // 50
    for index in range(len(pcm) // step):
        payload = encode(pcm[index * step : (index + 1) * step])
        if payload is not None:
            yield payload, 1000 + index * codec.frame_ticks


def decoded(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        assert container.format.name == "ogg"
        assert container.streams.audio[0].codec_context.name == "opus"
        rate = container.streams.audio[0].codec_context.sample_rate
        return np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)]), rate


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "opus"])
def test_the_recording_lasts_what_the_timestamps_say_and_holds_the_voice(tmp_path, codec):
    recorder = OggOpusRecorder(tmp_path / "vm.ogg", audio_codec(codec), max_frames=500)
    for index, (payload, timestamp) in enumerate(frames_of(codec, 3.0)):
        if index in (40, 41, 42):  # lost on the way
            continue
        recorder.add(payload, timestamp)
    recorder.close()
    samples, rate = decoded(tmp_path / "vm.ogg")
    assert recorder.frames == 150 and recorder.seconds == 3.0 and not recorder.full
    assert abs(len(samples) / rate - 3.0) < 0.03
    assert abs(dominant_frequency(samples, rate) - HZ) < 5


def test_the_recording_stops_at_its_longest(tmp_path):
    recorder = OggOpusRecorder(tmp_path / "vm.ogg", audio_codec("PCMU"), max_frames=100)
    for payload, timestamp in frames_of("PCMU", 5.0):
        recorder.add(payload, timestamp)
    recorder.close()
    assert recorder.full and recorder.seconds == 2.0
    samples, rate = decoded(tmp_path / "vm.ogg")
    assert abs(len(samples) / rate - 2.0) < 0.03


def test_a_greeting_is_read_from_an_audio_file_and_ends_with_the_tone(tmp_path):
    wav = write_tone_wav(tmp_path / "hello.wav", 440, 1.5, 44100)
    pcm = read_audio(wav, 8000)
    assert abs(len(pcm) / 8000 - 1.5) < 0.01 and abs(dominant_frequency(pcm, 8000) - 440) < 5
    whole = greeting_pcm(wav, 8000)
    assert abs(dominant_frequency(whole[-4000:], 8000) - TONE_HZ) < 5  # the tone last
    alone = greeting_pcm(None, 48000)
    assert len(alone) == 24000 and abs(dominant_frequency(alone, 48000) - TONE_HZ) < 5
    (tmp_path / "not-audio.wav").write_bytes(b"nothing to hear")
    with pytest.raises(ValueError, match="cannot read audio"):
        read_audio(tmp_path / "not-audio.wav", 8000)
