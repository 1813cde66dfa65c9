// The pre-call check ("Test my microphone and connection"): the microphone's level, and a
// few seconds of the visitor's audio sent to the gateway and echoed back over a real
// WebRTC connection (ICE, DTLS-SRTP; no SIP, no call), measured with getStats(): how much
// came back and how late. No DOM of its own: `run()` resolves to a result the widget puts
// in words (check-panel.js):
//   {microphone: 'ok' | 'silent' | <a microphone problem of session.js>,
//    connection: 'good' | 'weak' | 'unreachable' | 'refused' | 'failed' | 'skipped',
//    loss (0-1), rtt (s or null), rttFrom ('rtcp' | 'ice'), jitter (s), code?, message?,
//    retry_after?}
// The socket.io events are described in docs/signaling.md (check:start, check:stop).
import { between, readStats, weakness } from './quality.js';
import { microphoneProblem, stopTracks } from './session.js';

const MEASURE_MS = 5000; // of audio going there and back
const GATHER_MS = 3000; // the offer carries the candidates gathered by then
const CONNECT_MS = 8000; // without a connection by then, the network blocks it
const START_TIMEOUT_MS = 15000;
// A level the fake or a real microphone reaches when someone speaks; below it all along,
// nothing is heard.
const HEARD_LEVEL = 0.02;

export class ConnectionCheck extends EventTarget {
  /** `session`: the widget's CallSession (its socket and ICE servers); `audio`: the
   * widget's WidgetAudio (for the level); `onLevel(level)` sees the microphone live. */
  constructor(session, audio, onLevel = () => {}) {
    super();
    this.session = session;
    this.audio = audio;
    this.onLevel = onLevel;
    this.pc = null;
    this.mic = null;
    this.stopMeter = () => {};
    this.checkId = null;
    this.cancelled = false;
    this.loudest = 0;
  }

  async run(measureMs = MEASURE_MS) {
    const result = { microphone: 'ok', connection: 'skipped', loss: 0, rtt: null, jitter: 0 };
    try {
      this.mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      result.microphone = microphoneProblem(err).cause;
      return result;
    }
    this.stopMeter = this.audio.meter(this.mic, (level) => {
      this.loudest = Math.max(this.loudest, level);
      this.onLevel(level);
    });
    try {
      Object.assign(result, await this.measure(measureMs));
    } catch (err) {
      Object.assign(result, { connection: 'failed', message: err && err.message ? err.message : String(err) });
    } finally {
      this.close();
    }
    if (this.loudest < HEARD_LEVEL) result.microphone = 'silent';
    return result;
  }

  async measure(measureMs) {
    const session = this.session;
    const pc = new RTCPeerConnection({ iceServers: session.iceServers });
    this.pc = pc;
    for (const track of this.mic.getAudioTracks()) pc.addTrack(track, this.mic);
    pc.ontrack = () => {}; // the echo: measured, not played
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, GATHER_MS);
    if (this.cancelled) return { connection: 'skipped' };
    const reply = await session.socket
      .timeout(START_TIMEOUT_MS)
      .emitWithAck('check:start', { sdp: pc.localDescription.sdp });
    if (!reply || !reply.ok) {
      const error = (reply && reply.error) || {};
      const refused = { connection: 'refused', code: error.code || '', message: error.message || '' };
      if (Number(error.retry_after) > 0) refused.retry_after = Number(error.retry_after);
      return refused;
    }
    this.checkId = reply.check_id;
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    if (!(await connected(pc, CONNECT_MS))) return { connection: 'unreachable' };
    const wait = Math.min(measureMs, Math.max(1000, Number(reply.seconds) * 1000 - 2000));
    await sleep(500); // the echo settles: the first packets were sent before it connected
    const before = await readStats(pc);
    await sleep(wait);
    const after = await readStats(pc);
    const sent = after.sent - before.sent;
    const came = after.received - before.received;
    // What went there and came back, of what left: loss on the way out and back.
    const loss = sent > 0 ? Math.min(1, Math.max(0, 1 - came / sent)) : 1;
    const { jitter, rtt, rttFrom } = between(before, after);
    const measured = { loss, jitter, rtt, rttFrom };
    return { connection: weakness(measured) ? 'weak' : 'good', ...measured };
  }

  /** Stop early (the visitor calls, or leaves). */
  cancel() {
    this.cancelled = true;
    this.close();
  }

  close() {
    this.stopMeter();
    this.stopMeter = () => {};
    if (this.checkId && this.session.ready) this.session.socket.emit('check:stop', {});
    this.checkId = null;
    if (this.pc) this.pc.close();
    this.pc = null;
    if (this.mic) stopTracks(this.mic);
    this.mic = null;
  }
}

/** Resolves once `pc` has gathered its candidates, or after `ms` with those it has. */
function gathered(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** Whether `pc` connects (ICE and DTLS) within `ms`. */
function connected(pc, ms) {
  return new Promise((resolve) => {
    const finish = (ok) => {
      clearTimeout(timer);
      pc.removeEventListener('connectionstatechange', check);
      resolve(ok);
    };
    const check = () => {
      if (pc.connectionState === 'connected') finish(true);
      else if (pc.connectionState === 'failed' || pc.connectionState === 'closed') finish(false);
    };
    const timer = setTimeout(() => finish(false), ms);
    pc.addEventListener('connectionstatechange', check);
    check();
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
