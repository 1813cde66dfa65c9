// How good a connection is, from the browser's own measurements (RTCPeerConnection
// getStats()): what the widget reads during a call to warn the visitor when it degrades,
// and what the pre-call check (precheck.js) judges. No DOM of its own.
//
// The numbers come from both directions: what reaches the browser (inbound-rtp: loss and
// jitter, counted here), what reaches the gateway (remote-inbound-rtp: the loss, jitter and
// round trip the gateway's RTCP receiver reports say), and the ICE pair's round trip (its
// consent checks).

const WATCH_INTERVAL_MS = 1000;

// A sample is weak past any of these; good again only under the lower ones (hysteresis:
// a connection at the edge does not make the warning blink).
export const WEAK = { loss: 0.05, jitter: 0.05, rtt: 0.5 };
export const GOOD = { loss: 0.02, jitter: 0.03, rtt: 0.3 };
export const WEAK_SAMPLES = 3; // in a row, before the warning shows
export const GOOD_SAMPLES = 5; // in a row, before it goes

/**
 * The audio numbers of `pc` now: {at (ms), sent, received, lost (packets, counted here),
 * jitter (s, here), remoteLoss (0-1, the gateway's last report, or null), remoteJitter,
 * rtt (s: RTCP's, else the ICE pair's, or null), rttFrom ('rtcp' | 'ice' | '')}.
 */
export async function readStats(pc) {
  const report = await pc.getStats();
  const sample = {
    at: performance.now(),
    sent: 0,
    received: 0,
    lost: 0,
    jitter: 0,
    remoteLoss: null,
    remoteJitter: null,
    rtt: null,
    rttFrom: '',
  };
  let pairRtt = null;
  let selectedPair = null;
  report.forEach((stats) => {
    if (stats.type === 'transport' && stats.selectedCandidatePairId) selectedPair = stats.selectedCandidatePairId;
  });
  report.forEach((stats) => {
    if (stats.kind && stats.kind !== 'audio') return;
    switch (stats.type) {
      case 'outbound-rtp':
        sample.sent += stats.packetsSent || 0;
        break;
      case 'inbound-rtp':
        sample.received += stats.packetsReceived || 0;
        sample.lost += Math.max(0, stats.packetsLost || 0);
        sample.jitter = Math.max(sample.jitter, stats.jitter || 0);
        break;
      case 'remote-inbound-rtp':
        if (typeof stats.fractionLost === 'number') sample.remoteLoss = stats.fractionLost;
        if (typeof stats.jitter === 'number') sample.remoteJitter = stats.jitter;
        if (typeof stats.roundTripTime === 'number') {
          sample.rtt = stats.roundTripTime;
          sample.rttFrom = 'rtcp';
        }
        break;
      case 'candidate-pair':
        if ((stats.id === selectedPair || (!selectedPair && stats.nominated)) && stats.currentRoundTripTime) {
          pairRtt = stats.currentRoundTripTime;
        }
        break;
      default:
    }
  });
  if (sample.rtt === null && pairRtt !== null) {
    sample.rtt = pairRtt;
    sample.rttFrom = 'ice';
  }
  return sample;
}

/** What happened between two samples: {loss (0-1, the worse direction), jitter (s, the
 * worse direction), rtt (s or null), rttFrom}. */
export function between(before, after) {
  const received = after.received - before.received;
  const lost = after.lost - before.lost;
  const downLoss = received + lost > 0 ? Math.max(0, lost) / (received + lost) : 0;
  return {
    loss: Math.max(downLoss, after.remoteLoss || 0),
    jitter: Math.max(after.jitter, after.remoteJitter || 0),
    rtt: after.rtt,
    rttFrom: after.rttFrom,
  };
}

/** Whether a connection is weak, from one measurement after another, with hysteresis:
 * weak after WEAK_SAMPLES weak ones in a row, good again after GOOD_SAMPLES good ones. */
export class QualityJudge {
  constructor() {
    this.weak = false;
    this.run = 0; // samples in a row pointing the other way
    this.reason = ''; // loss | jitter | rtt: what made it weak
  }

  /** Judge one measurement ({loss, jitter, rtt}); returns whether the connection is weak. */
  add(measure) {
    if (this.weak) {
      const good = measure.loss < GOOD.loss && measure.jitter < GOOD.jitter && (measure.rtt ?? 0) < GOOD.rtt;
      this.run = good ? this.run + 1 : 0;
      if (this.run >= GOOD_SAMPLES) {
        this.weak = false;
        this.run = 0;
        this.reason = '';
      }
    } else {
      const why = weakness(measure);
      this.run = why ? this.run + 1 : 0;
      if (this.run >= WEAK_SAMPLES) {
        this.weak = true;
        this.run = 0;
        this.reason = why;
      }
    }
    return this.weak;
  }
}

/** What makes a measurement weak ('loss', 'jitter', 'rtt'), or ''. */
export function weakness(measure) {
  if (measure.loss >= WEAK.loss) return 'loss';
  if (measure.jitter >= WEAK.jitter) return 'jitter';
  if ((measure.rtt ?? 0) >= WEAK.rtt) return 'rtt';
  return '';
}

/** Watches a call's peer connection once a second; `change` events say {weak, reason}
 * when the judgement changes. */
export class QualityWatch extends EventTarget {
  constructor(pc) {
    super();
    this.pc = pc;
    this.judge = new QualityJudge();
    this.last = null;
    this.timer = setInterval(() => this.sample(), WATCH_INTERVAL_MS);
  }

  async sample() {
    let now;
    try {
      now = await readStats(this.pc);
    } catch {
      return; // closed meanwhile
    }
    if (this.timer === null) return;
    const before = this.last;
    this.last = now;
    if (!before || now.sent === before.sent) return; // not sending yet (or on hold)
    const was = this.judge.weak;
    const weak = this.judge.add(between(before, now));
    if (weak !== was) {
      this.dispatchEvent(new CustomEvent('change', { detail: { weak, reason: this.judge.reason } }));
    }
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}
