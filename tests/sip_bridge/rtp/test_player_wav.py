import asyncio
import wave

import numpy as np
import pytest

from sip_bridge.asyncio.player import PcmRecorder, paced_ticks, play_wav
from sip_bridge.asyncio.rtp_session import RtpSession
from sip_bridge.rtp.wav import WavFormatError, read_wav, resample, write_wav

from .tones import dominant_frequency, rms, tone


def test_wav_round_trip_and_resampling(tmp_path):
    path = tmp_path / "tone.wav"
    write_wav(path, tone(440, 16000, 0.5), 16000)
    with wave.open(str(path)) as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (
            1,
            2,
            16000,
        )
    same = read_wav(path, 16000)
    assert np.array_equal(same, tone(440, 16000, 0.5))
    narrow = read_wav(path, 8000)
    assert abs(len(narrow) - 4000) <= 40
    assert abs(dominant_frequency(narrow, 8000) - 440) <= 5
    wide = resample(tone(1000, 8000, 0.5), 8000, 16000)
    assert abs(dominant_frequency(wide, 16000) - 1000) <= 5


def test_stereo_is_mixed_down_and_bad_formats_are_refused(tmp_path):
    left, right = tone(440, 8000, 0.2), tone(440, 8000, 0.2)
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(np.column_stack([left, right]).astype("<i2").tobytes())
    assert np.array_equal(read_wav(path, 8000), left)
    eight_bit = tmp_path / "u8.wav"
    with wave.open(str(eight_bit), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(1)
        writer.setframerate(8000)
        writer.writeframes(b"\x80" * 100)
    with pytest.raises(WavFormatError, match="8-bit"):
        read_wav(eight_bit, 8000)
    (tmp_path / "junk.wav").write_bytes(b"not a wav")
    with pytest.raises(WavFormatError, match="not a PCM WAV"):
        read_wav(tmp_path / "junk.wav", 8000)


# Pacing runs on the event loop's clock; these run on looptime's fake one, which jumps to
# the next timer: what they check cannot depend on how busy the machine is.
@pytest.mark.looptime
async def test_paced_ticks_do_not_drift():
    loop = asyncio.get_running_loop()
    start = loop.time()
    lateness = []
    dues = []
    async for due in paced_ticks(0.01, 50):
        dues.append(due)
        lateness.append(loop.time() - due)
        await asyncio.sleep(0.002)  # work done at each tick must not push later ticks back
    assert dues == pytest.approx([start + k * 0.01 for k in range(50)], abs=1e-9)
    assert max(lateness) == pytest.approx(0, abs=1e-9)
    assert loop.time() - start == pytest.approx(0.49 + 0.002, abs=1e-9)


@pytest.mark.looptime
async def test_paced_ticks_restart_after_a_stall_instead_of_bursting():
    loop = asyncio.get_running_loop()
    start = loop.time()
    times = []
    async for _ in paced_ticks(0.01, 20):
        times.append(loop.time() - start)
        if len(times) == 5:
            await asyncio.sleep(0.3)  # the consumer stalls past max_lag (0.2 s)
    # No burst of the 30 overdue ticks: the schedule restarts at the end of the stall.
    assert times[:5] == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04], abs=1e-9)
    assert times[5:] == pytest.approx([0.34 + 0.01 * k for k in range(15)], abs=1e-9)


@pytest.mark.looptime
async def test_paced_ticks_catch_up_after_a_short_stall():
    loop = asyncio.get_running_loop()
    start = loop.time()
    times = []
    async for _ in paced_ticks(0.01, 12):
        times.append(loop.time() - start)
        if len(times) == 2:
            await asyncio.sleep(0.05)  # under max_lag: the overdue ticks come at once
    assert times[2:7] == pytest.approx([0.06] * 5, abs=1e-9)
    assert times[7:] == pytest.approx([0.07, 0.08, 0.09, 0.10, 0.11], abs=1e-9)


async def test_play_wav_into_one_session_record_wav_from_the_other(tmp_path):
    source = tmp_path / "in.wav"
    write_wav(source, tone(440, 16000, 0.6), 16000)  # wideband file into a PCMU call
    a = await RtpSession.open("127.0.0.1", (42000, 42999))
    b = await RtpSession.open("127.0.0.1", (42000, 42999))
    a.start(("127.0.0.1", b.local_port), "PCMU")
    b.start(("127.0.0.1", a.local_port), "PCMU")
    recorder = PcmRecorder(b)
    frames, _ = await asyncio.gather(play_wav(a, source), recorder.record(0.7))
    assert frames == 30
    recorded = tmp_path / "out.wav"
    recorder.write_wav(recorded)
    heard = read_wav(recorded, 8000)
    assert len(heard) == 35 * 160
    assert abs(dominant_frequency(heard, 8000) - 440) <= 5
    assert rms(heard) > 2000
    await a.close()
    await b.close()
