import numpy as np
import pytest

from sip_bridge.rtp.concealment import LossConcealer

from .tones import dominant_frequency, rms, tone


@pytest.mark.parametrize(("frequency", "rate"), [(440, 8000), (1000, 8000), (300, 16000)])
def test_concealed_frame_continues_the_tone(frequency, rate):
    frame = rate // 50
    signal = tone(frequency, rate, 0.2)
    concealer = LossConcealer(frame, rate)
    for i in range(5):
        concealer.good_frame(signal[i * frame : (i + 1) * frame])
    patch = concealer.conceal()
    assert patch.dtype == np.int16 and patch.shape == (frame,)
    # Same tone, same loudness in the first 10 ms (hold), and no jump at the seam.
    assert (
        abs(dominant_frequency(np.concatenate([signal[: 5 * frame], patch]), rate) - frequency) <= 5
    )
    assert rms(patch[: frame // 2]) == pytest.approx(rms(signal[: frame // 2]), rel=0.15)
    seam = abs(int(patch[0]) - int(signal[5 * frame]))
    assert seam < 0.25 * 8000


def test_concealment_fades_to_silence_and_stays_silent():
    concealer = LossConcealer(160, 8000)
    concealer.good_frame(tone(500, 8000, 0.02))
    levels = [rms(concealer.conceal()) for _ in range(6)]
    assert levels[0] > levels[1] > levels[2] > 0  # 10 ms hold then a 50 ms fade
    assert levels[3:] == [0.0, 0.0, 0.0]
    assert concealer.concealing


def test_resuming_audio_is_cross_faded_in():
    concealer = LossConcealer(160, 8000)
    concealer.good_frame(tone(500, 8000, 0.02))
    concealer.conceal()
    loud = np.full(160, 10000, np.int16)
    resumed = concealer.good_frame(loud)
    assert not concealer.concealing
    assert abs(int(resumed[0])) < 10000  # starts from the concealment, not a step
    assert np.all(resumed[20:] == 10000)  # 2.5 ms crossfade, then the real audio
    assert np.all(loud == 10000)  # the caller's array is not modified
    assert concealer.good_frame(loud) is loud  # no loss: frames pass through untouched


def test_concealing_silence_gives_silence():
    concealer = LossConcealer(160, 8000)
    assert not np.any(concealer.conceal())
