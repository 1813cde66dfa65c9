"""The adaptive jitter buffer, driven by a fake clock (no sleeping)."""

import random

import numpy as np
import pytest

from sip_bridge.rtp.jitter import LOST, JitterBuffer

F = 0.020  # packet time
STEP = 160  # RTP units per packet at 8 kHz
NETWORK = 0.030  # fixed part of the one-way network delay in these simulations


class Playout:
    """Drives a buffer: packets arrive at given times, the consumer pulls every 20 ms."""

    def __init__(self, buffer=None, tick_phase=0.0071):
        self.buffer = buffer or JitterBuffer(8000, STEP)
        self.phase = tick_phase
        self.results = []  # (pull time, payload | LOST | None)

    def run(self, arrivals, until):
        arrivals = sorted(arrivals, key=lambda a: a[0])
        i = 0
        t = self.phase
        while t < until:
            while i < len(arrivals) and arrivals[i][0] <= t:
                arrival, seq, ts, payload, *marker = arrivals[i]
                self.buffer.put(seq & 0xFFFF, ts & 0xFFFFFFFF, payload, arrival, *marker)
                i += 1
            self.results.append((t, self.buffer.get(t)))
            t += F
        return self

    def payloads(self):
        return [r for _, r in self.results if r is not None and r is not LOST]

    def delays(self, since=0.0, drift=0.0):
        """Added delay of each played frame: play time - send time - network delay."""
        return np.array(
            [
                t - p * F * (1 + drift) - NETWORK
                for t, p in self.results
                if t >= since and isinstance(p, int)
            ]
        )

    def count(self, kind, since=0.0, until=float("inf")):
        return sum(1 for t, r in self.results if since <= t < until and r is kind)


def stream(count, *, jitter=lambda k, rng: 0.0, loss=0.0, seed=7, seq0=1000, ts0=5000, start=0):
    rng = random.Random(seed)
    out = []
    for k in range(start, start + count):
        if rng.random() < loss:
            continue
        out.append((k * F + NETWORK + jitter(k, rng), seq0 + k, ts0 + k * STEP, k))
    return out


def test_in_order_stream_plays_every_frame_in_order_after_prebuffering():
    playout = Playout().run(stream(100), until=2.5)
    assert playout.payloads() == list(range(100))
    first_play = next(t for t, r in playout.results if r is not None)
    assert 0.020 + NETWORK <= first_play < 0.020 + NETWORK + F  # target: min_delay, 20 ms
    assert playout.buffer.stats.received == 100
    assert playout.buffer.stats.lost == 0 or playout.results[-1][1] is None


def test_reordered_packets_are_played_in_order():
    packets = stream(50)
    for i in range(5, 45, 7):  # swap neighbours: the second arrives first
        (a, *ra), (b, *rb) = packets[i], packets[i + 1]
        packets[i], packets[i + 1] = (b, *ra), (a, *rb)
    playout = Playout().run(packets, until=1.5)
    assert playout.payloads() == list(range(50))
    assert playout.buffer.stats.late == 0


def test_duplicates_are_counted_and_played_once():
    packets = stream(50)
    packets += [(a + 0.003, *rest) for a, *rest in packets[10:20]]
    playout = Playout().run(packets, until=1.5)
    assert playout.payloads() == list(range(50))
    assert playout.buffer.stats.duplicates == 10


def test_lost_packet_is_concealed_in_its_slot():
    packets = [p for p in stream(50) if p[3] != 20]
    playout = Playout().run(packets, until=1.3)
    results = [r for _, r in playout.results if r is not None]
    assert results[:25] == [*range(20), LOST, *range(21, 25)]
    assert playout.buffer.stats.lost == 1


def test_packet_arriving_after_its_slot_is_dropped_as_late():
    packets = [p if p[3] != 20 else (p[0] + 0.5, *p[1:]) for p in stream(50)]
    playout = Playout().run(packets, until=1.3)
    results = [r for _, r in playout.results if r is not None]
    assert results[20] is LOST
    assert 20 not in playout.payloads()
    assert playout.buffer.stats.late == 1


def test_sequence_and_timestamp_wraparound():
    packets = stream(100, seq0=65500, ts0=2**32 - 30 * STEP)
    playout = Playout().run(packets, until=2.5)
    assert playout.payloads() == list(range(100))
    assert playout.buffer.stats.resyncs == 0


def test_duplicate_detection_across_sequence_wrap():
    packets = stream(60, seq0=65530)
    packets.append((packets[8][0] + 0.005, *packets[8][1:]))  # seq 2 after the wrap
    playout = Playout().run(packets, until=1.6)
    assert playout.payloads() == list(range(60))
    assert playout.buffer.stats.duplicates == 1


def test_timestamp_jump_resynchronizes():
    old = stream(50)
    # Sender restarts 1 s later with unrelated sequence numbers and timestamps.
    new = [(a + 1.0, s, t, p) for a, s, t, p in stream(50, seq0=7, ts0=2**31, start=50)]
    playout = Playout().run(old + new, until=3.5)
    assert playout.payloads() == list(range(100))
    assert playout.buffer.stats.resyncs == 1


def test_ssrc_change_reset_starts_the_new_stream():
    playout = Playout()
    playout.run(stream(30), until=0.7)
    playout.buffer.reset()
    new = [(a + 0.2, *rest) for a, *rest in stream(30, seq0=40000, ts0=123, start=30)]
    playout.phase = 0.7071
    playout.run(new, until=1.8)
    assert playout.payloads() == list(range(60))


def test_marker_after_silence_restarts_playout_without_concealing_the_silence():
    talk1 = stream(25)
    # 2 s of silence suppression: no packets, timestamps advance; marker on resume.
    talk2 = [(a, s - 100, t, p, k == 0) for k, (a, s, t, p) in enumerate(stream(25, start=125))]
    playout = Playout().run(talk1 + talk2, until=3.5)
    assert playout.payloads() == list(range(25)) + list(range(125, 150))
    silence = playout.count(LOST, since=0.6, until=2.5)
    assert silence <= 5  # concealment fades into the pause, then None (nothing to play)
    assert playout.count(None, since=0.8, until=2.5) >= 80


def test_stream_pause_returns_none_then_resumes():
    packets = stream(25) + stream(25, start=100)  # 1.5 s without packets, no marker
    playout = Playout().run(packets, until=3.0)
    assert playout.payloads() == list(range(25)) + list(range(100, 125))
    assert playout.buffer.stats.lost <= 5


def test_consumer_stall_catches_up_instead_of_staying_behind():
    playout = Playout()
    playout.run(stream(200), until=1.0)
    # The consumer does not pull for 600 ms (process stalled), then resumes.
    playout.phase = 1.6071
    playout.run([p for p in stream(200) if p[0] > 1.0], until=4.0)
    assert playout.delays(since=2.0).max() < 0.080


def simulate_network(seconds, jitter, loss, seed=3, drift=0.0):
    rng = random.Random(seed)
    packets = []
    for k in range(int(seconds / F)):
        if rng.random() < loss:
            continue
        send = k * F * (1 + drift)
        packets.append((send + NETWORK + 0.010 + jitter(send, rng), 1000 + k, 7 + k * STEP, k))
    return packets


def uniform_10ms(send, rng):
    return rng.uniform(-0.010, 0.010)


def test_delay_stays_low_with_loss_and_jitter_and_does_not_ratchet():
    packets = simulate_network(60, uniform_10ms, loss=0.02)
    playout = Playout().run(packets, until=61)
    stats = playout.buffer.stats
    delays = playout.delays(since=2.0)
    # The network's spread is 20 ms; the buffer adds at most that plus a frame.
    assert np.percentile(delays, 99) <= 0.045
    assert delays.max() <= 0.060
    # 2 % of 3000 packets were lost; the buffer itself makes almost no late drops.
    assert stats.late <= 15
    assert 40 <= stats.lost <= 90
    # No ratchet: the last 10 s are not slower than the first 10 s after warm-up.
    assert (
        playout.delays(since=50).mean()
        <= playout.delays(
            since=2,
        ).mean()
        + 0.005
    )
    assert playout.buffer.target_delay <= 0.025


def test_losses_alone_never_raise_the_delay():
    clean = Playout().run(simulate_network(20, uniform_10ms, loss=0.0), until=21)
    lossy = Playout().run(simulate_network(20, uniform_10ms, loss=0.10), until=21)
    assert lossy.delays(since=2).mean() <= clean.delays(since=2).mean() + 0.003
    assert lossy.buffer.target_delay == pytest.approx(clean.buffer.target_delay, abs=0.003)


def test_delay_grows_during_a_jitter_burst_and_comes_back_down():
    def burst(send, rng):
        if 20 <= send < 25:
            return rng.uniform(-0.010, 0.090)  # 100 ms spread for 5 s
        return rng.uniform(-0.010, 0.010)

    playout = Playout()
    targets = []
    packets = sorted(simulate_network(60, burst, loss=0.02), key=lambda a: a[0])
    for second in range(1, 61):
        playout.phase = (second - 1) + 0.0071
        playout.run([p for p in packets if second - 1 < p[0] <= second], until=second)
        targets.append(playout.buffer.target_delay)
    assert max(targets[:19]) <= 0.025
    assert max(targets[21:26]) >= 0.080  # adapted to the burst...
    late_in_burst = playout.buffer.stats.late
    assert late_in_burst <= 40  # ...fast enough that few packets came too late
    assert targets[35] <= 0.030  # ...and back down within 10 s of calm
    assert playout.delays(since=36).max() <= 0.060


def test_jitter_spikes_of_one_percent_do_not_inflate_the_delay():
    def spiky(send, rng):
        return rng.uniform(-0.003, 0.003) + (0.080 if rng.random() < 0.01 else 0.0)

    playout = Playout().run(simulate_network(30, spiky, loss=0.0), until=31)
    assert playout.buffer.target_delay <= 0.025
    assert playout.delays(since=5).mean() <= 0.040


@pytest.mark.parametrize("drift", [0.001, -0.001])
def test_clock_drift_between_sender_and_consumer_stays_bounded(drift):
    playout = Playout().run(simulate_network(60, uniform_10ms, 0.0, drift=drift), until=61)
    delays = playout.delays(since=5, drift=drift)
    assert delays.max() <= 0.070 and delays.min() >= -0.001
    stats = playout.buffer.stats
    # 0.1 % of 3000 frames = 3 frames of drift to absorb, by dropping or inserting.
    assert stats.discarded + stats.concealed - stats.lost <= 10


def test_delay_bounds_are_configurable_and_respected():
    buffer = JitterBuffer(8000, STEP, min_delay=0.06, max_delay=0.1)

    def wild(send, rng):
        return rng.uniform(-0.010, 0.300)

    playout = Playout(buffer).run(simulate_network(10, wild, 0.0), until=11)
    assert buffer.target_delay == pytest.approx(0.1)
    assert playout.delays(since=2).max() <= 0.1 + 2 * F + 0.010
    quiet = Playout(JitterBuffer(8000, STEP, min_delay=0.06)).run(stream(100), until=3)
    assert quiet.buffer.target_delay == pytest.approx(0.06)


def test_nothing_before_the_first_packet():
    buffer = JitterBuffer()
    assert buffer.get(0.0) is None
    assert buffer.get(1.0) is None
    with pytest.raises(ValueError):
        JitterBuffer(min_delay=0.3, max_delay=0.2)
