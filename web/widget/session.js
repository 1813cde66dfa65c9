// One visitor's connection to the gateway and the call they make over it: the token, the
// socket.io connection, the microphone and the RTCPeerConnection. No DOM of its own: it
// tells the widget what happens with `status` events, whose `detail` is
//   {phase: 'loading', step?: 'checking' | 'reconnecting'}
//   {phase: 'ready'}
//   {phase: 'unavailable', cause: 'refused', code, message}    (final: no call possible)
//   {phase: 'microphone' | 'connecting' | 'ringing' | 'in-call' | 'on-hold' | 'transferring'}
//   {phase: 'ended', cause, code?, message?, callId?, ratingProof?, reason?}
// where an ended call's cause is one of the gateway's (busy, no_answer, declined,
// unreachable, failed, operator_hung_up, visitor_hung_up, time_limit, phone_system_refused,
// no_common_codec, redirect_failed, session_expired, transfer_failed; `reason`: the SIP
// status in standard words, as "421 Extension Required"), or 'hangup' (the
// visitor, here), 'network' (ICE failed), 'connection_lost', 'refused' (code, message,
// retry_after?: call:start refused), 'error' (message), or a microphone problem: 'mic-denied',
// 'mic-blocked', 'no-mic', 'mic-busy', 'mic-failed' (message). An answered call that the
// gateway ended comes with its id and `ratingProof`, for the visitor's rating.
// The events and payloads on the wire are described in docs/signaling.md.
import { io } from '../vendor/socket.io.esm.min.js';
import { Refused, fetchCallToken } from './token.js';

const START_TIMEOUT_MS = 30000;
const TOKEN_RETRY_MS = [1000, 2000, 5000, 10000];
const GATEWAY_STATES = {
  connecting: 'connecting',
  ringing: 'ringing',
  early_media: 'ringing',
  answered: 'in-call',
  on_hold: 'on-hold',
  transferring: 'transferring',
};

export class CallSession extends EventTarget {
  /** `base`: the gateway's URL, ending with '/'. */
  constructor(base, siteId) {
    super();
    this.base = base;
    this.siteId = siteId;
    this.socket = null;
    this.iceServers = [];
    this.tokenProblem = null; // why the last token request was refused
    // The call in progress, or null: {pc, mic, callId, started, muted, pendingCandidates,
    // heldStates, endSent}. Every async step checks `call === c` after awaiting, because
    // the visitor may have hung up (or the socket dropped) meanwhile.
    this.call = null;
    this.endedCallId = null; // the last call's id, whose end the gateway confirms later
    this.closed = false;
  }

  get ready() {
    return Boolean(this.socket && this.socket.connected);
  }

  /** Open the connection (once); `status` events say how it goes. */
  connect() {
    if (this.socket || this.closed) return;
    const url = new URL(this.base);
    // socket.io asks for `auth` before every (re)connection: each gets a fresh call token.
    const socket = io(url.origin, {
      path: `${url.pathname}socket.io`,
      transports: ['websocket'],
      auth: (send) => this.fetchAuth().then(send),
    });
    this.socket = socket;
    socket.on('connect', () => {
      if (!this.call) this.emitStatus({ phase: 'ready' });
    });
    socket.on('connect_error', (err) => {
      // `active` is false when the server refused us (unknown site, origin, token): final.
      if (socket.active) {
        if (!this.call) this.emitStatus({ phase: 'loading' });
      } else {
        // The token's refusal says why (with a code the widget has words for).
        const problem = this.tokenProblem || { code: (err.data && err.data.code) || '', message: err.message };
        this.emitStatus({ phase: 'unavailable', cause: 'refused', code: problem.code, message: problem.message });
      }
    });
    socket.on('disconnect', () => {
      // The gateway hangs up a call whose socket is gone; a reconnection starts afresh.
      if (this.call) this.endCall({ cause: 'connection_lost' });
      else if (!this.closed) this.emitStatus({ phase: 'loading', step: 'reconnecting' });
    });
    socket.on('session', (session) => {
      this.iceServers = Array.isArray(session.ice_servers) ? session.ice_servers : [];
    });
    socket.on('call:state', (update) => this.onState(update));
    socket.on('error', (error) => {
      if (error.event === 'call:start' || error.event === 'call:candidate') return; // in acks
      console.warn('click-to-call:', error.message);
    });
  }

  /** The socket's auth: a call token, or after a refusal an empty one (so the socket is
   * refused, and connect_error reports `tokenProblem`). Network trouble is retried here,
   * since the socket cannot retry what it never started. */
  async fetchAuth() {
    for (let attempt = 0; ; attempt += 1) {
      try {
        const token = await fetchCallToken(this.base, this.siteId, () =>
          this.emitStatus({ phase: 'loading', step: 'checking' }),
        );
        this.tokenProblem = null;
        return { site: this.siteId, token };
      } catch (err) {
        if (err instanceof Refused) {
          this.tokenProblem = { code: err.code, message: err.message };
          return { site: this.siteId, token: '' };
        }
        this.emitStatus({ phase: 'loading' });
        await sleep(TOKEN_RETRY_MS[Math.min(attempt, TOKEN_RETRY_MS.length - 1)]);
      }
    }
  }

  /**
   * Start a call. `remote` is the MediaStream the remote track is added to (the widget
   * attached it to its <audio> inside the click); `visitor` is {name, reason, page}.
   */
  async start(remote, visitor) {
    if (this.call || !this.ready) return;
    const c = {
      pc: null,
      mic: null,
      callId: null,
      started: false,
      muted: false,
      pendingCandidates: [],
      heldStates: [],
      endSent: false,
    };
    this.call = c;
    this.emitStatus({ phase: 'microphone' });
    let mic;
    try {
      mic = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (err) {
      if (this.call === c) this.endCall(microphoneProblem(err));
      return;
    }
    if (this.call !== c) {
      stopTracks(mic);
      return;
    }
    c.mic = mic;
    for (const track of mic.getAudioTracks()) track.enabled = !c.muted;
    this.dispatchEvent(new CustomEvent('microphone', { detail: { stream: mic } }));
    this.emitStatus({ phase: 'connecting' });

    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    c.pc = pc;
    for (const track of mic.getAudioTracks()) pc.addTrack(track, mic);
    pc.ontrack = (event) => {
      remote.addTrack(event.track);
      this.dispatchEvent(new CustomEvent('track'));
    };
    pc.onicecandidate = (event) => this.sendCandidate(c, event.candidate);
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed' && this.call === c) this.hangUp({ cause: 'network' });
    };

    let reply;
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (this.call !== c) return;
      const payload = { sdp: offer.sdp };
      if (visitor) payload.visitor = visitor;
      const answered = this.socket.timeout(START_TIMEOUT_MS).emitWithAck('call:start', payload);
      c.started = true;
      for (const candidate of c.pendingCandidates) this.socket.emit('call:candidate', candidate);
      c.pendingCandidates = [];
      reply = await answered;
    } catch (err) {
      if (this.call === c) this.hangUp({ cause: 'error', message: err.message });
      return;
    }
    if (this.call !== c) return;
    if (!reply || !reply.ok) {
      const error = (reply && reply.error) || {};
      const why = {
        cause: 'refused',
        code: error.code || 'no_answer',
        message: error.message || 'no answer from the gateway',
      };
      // How long the gateway will refuse new calls (a rate limit), when it says.
      if (Number(error.retry_after) > 0) why.retry_after = Number(error.retry_after);
      this.endCall(why);
      return;
    }
    c.callId = reply.call_id;
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    } catch (err) {
      if (this.call === c) this.hangUp({ cause: 'error', message: err.message });
      return;
    }
    if (this.call !== c) return;
    if (c.muted) this.socket.emit('call:mute', { muted: true });
    const held = c.heldStates;
    c.heldStates = [];
    for (const state of held) this.onState(state);
  }

  sendCandidate(c, candidate) {
    if (this.call !== c) return;
    let payload;
    if (candidate && candidate.candidate) {
      payload = {
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid,
        sdpMLineIndex: candidate.sdpMLineIndex,
      };
    } else {
      if (c.endSent) return; // Chrome signals the end twice ('' then null)
      c.endSent = true;
      payload = { candidate: '', sdpMid: null, sdpMLineIndex: null };
    }
    if (c.started) this.socket.emit('call:candidate', payload);
    else c.pendingCandidates.push(payload);
  }

  onState(update) {
    const c = this.call;
    if (!c) {
      // The call the visitor hung up: the gateway's end of it may let them rate it.
      const proof = update.rating_proof;
      if (update.state === 'ended' && update.call_id === this.endedCallId && typeof proof === 'string' && proof) {
        this.dispatchEvent(new CustomEvent('rating', { detail: { callId: update.call_id, ratingProof: proof } }));
      }
      return;
    }
    if (c.callId === null) {
      // Normally the answer comes first; keep a state that overtook it until it has.
      if (c.started) c.heldStates.push(update);
      return;
    }
    if (update.call_id !== c.callId) return; // from an earlier call
    if (update.state === 'ended') {
      const why = { cause: update.cause || 'failed', callId: c.callId };
      if (typeof update.reason === 'string' && update.reason) why.reason = update.reason;
      // An answered call: the proof that lets the visitor rate it (rating.js).
      if (typeof update.rating_proof === 'string' && update.rating_proof) why.ratingProof = update.rating_proof;
      this.endCall(why);
      return;
    }
    const phase = GATEWAY_STATES[update.state];
    if (phase) this.emitStatus({ phase });
  }

  /** Send keypad digits; false when there is no answered call to send them in. */
  sendDigits(digits) {
    const c = this.call;
    if (!c || !c.callId) return false;
    this.socket.emit('call:dtmf', { digits });
    return true;
  }

  setMuted(muted) {
    const c = this.call;
    if (!c) return;
    c.muted = muted;
    if (c.mic) for (const track of c.mic.getAudioTracks()) track.enabled = !muted;
    if (c.callId) this.socket.emit('call:mute', { muted });
  }

  get muted() {
    return Boolean(this.call && this.call.muted);
  }

  /** The call's RTCPeerConnection (for its getStats()), or null. */
  get peerConnection() {
    return this.call ? this.call.pc : null;
  }

  /** The visitor hangs up (or something here ends the call): tell the gateway. */
  hangUp(why = { cause: 'hangup' }) {
    if (this.call && this.call.started && this.ready) this.socket.emit('call:hangup', {});
    this.endCall(why);
  }

  endCall(why) {
    const c = this.call;
    this.call = null;
    this.endedCallId = c ? c.callId : null;
    if (c) {
      if (c.pc) c.pc.close();
      if (c.mic) stopTracks(c.mic);
    }
    this.emitStatus({ phase: 'ended', ...why });
  }

  /** Hang up and disconnect for good (the widget left the page). */
  close() {
    if (this.call) this.hangUp();
    this.closed = true;
    if (this.socket) this.socket.disconnect();
  }

  emitStatus(detail) {
    this.dispatchEvent(new CustomEvent('status', { detail }));
  }
}

export function microphoneProblem(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return { cause: micBlockedByPage() ? 'mic-blocked' : 'mic-denied' };
    case 'NotFoundError':
    case 'OverconstrainedError':
      return { cause: 'no-mic' };
    case 'NotReadableError':
      return { cause: 'mic-busy' };
    default:
      return { cause: 'mic-failed', message: err && err.message ? err.message : String(err) };
  }
}

/** Whether the page's permissions policy (an iframe without allow="microphone") is what
 * refuses the microphone, where the browser can tell (Chromium). */
export function micBlockedByPage() {
  const policy = document.permissionsPolicy || document.featurePolicy;
  return Boolean(policy && policy.allowsFeature && !policy.allowsFeature('microphone'));
}

export function stopTracks(stream) {
  for (const track of stream.getTracks()) track.stop();
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
