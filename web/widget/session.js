// One visitor's connection to the gateway and the call they make over it: the token, the
// socket.io connection, the microphone and the RTCPeerConnection. No DOM of its own: it
// tells the widget what happens with `status` events, whose `detail` is
//   {phase: 'loading', step?: 'checking' | 'reconnecting'}
//   {phase: 'ready'}
//   {phase: 'unavailable', cause: 'refused', code, message}    (final: no call possible)
//   {phase: 'microphone' | 'connecting' | 'ringing' | 'in-call' | 'on-hold' | 'transferring'}
//   {phase: 'ended', cause, code?, message?, callId?, ratingProof?, reason?}
//   {phase: 'voicemail', step: 'microphone' | 'connecting' | 'greeting' | 'recording' |
//    'sending', maxSeconds?}                                   (leaving a voicemail)
// where an ended call's cause is one of the gateway's (busy, no_answer, declined,
// unreachable, failed, operator_hung_up, visitor_hung_up, time_limit, phone_system_refused,
// no_common_codec, redirect_failed, session_expired, transfer_failed; `reason`: the SIP
// status in standard words, as "421 Extension Required"), or 'hangup' (the
// visitor, here), 'network' (ICE failed), 'connection_lost', 'refused' (code, message,
// retry_after?: call:start refused), 'error' (message), or a microphone problem: 'mic-denied',
// 'mic-blocked', 'no-mic', 'mic-busy', 'mic-failed' (message). An answered call that the
// gateway ended comes with its id and `ratingProof`, for the visitor's rating. A voicemail
// ends as 'voicemail_sent' (seconds) or 'voicemail_failed' (reason: empty, connection,
// error), or as a call does ('refused', 'connection_lost', a microphone problem, 'error').
// The chat of the connection ("Write to us") is told with `chat` events: {kind: 'reply',
// text, at} (an operator's message), {kind: 'delivered' | 'unanswered', messageId, reason?}.
// The events and payloads on the wire are described in docs/signaling.md.
import { io } from '../vendor/socket.io.esm.min.js';
import { Refused, fetchCallToken } from './token.js';

const START_TIMEOUT_MS = 30000;
const GATHER_MS = 3000; // a voicemail's offer carries the candidates gathered by then
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
    this.conversationId = null; // the chat of this connection, once it has one
    this.heldChat = [];
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
      this.conversationId = null; // the gateway ends a conversation whose socket is gone
      // The gateway hangs up a call whose socket is gone; a reconnection starts afresh.
      if (this.call) this.endCall({ cause: 'connection_lost' });
      else if (!this.closed) this.emitStatus({ phase: 'loading', step: 'reconnecting' });
    });
    socket.on('session', (session) => {
      this.iceServers = Array.isArray(session.ice_servers) ? session.ice_servers : [];
    });
    socket.on('call:state', (update) => this.onState(update));
    socket.on('voicemail:state', (update) => this.onVoicemailState(update));
    socket.on('chat:message', (message) => this.onChat('reply', message));
    socket.on('chat:state', (update) => this.onChat(update.state, update));
    socket.on('error', (error) => {
      if (['call:start', 'call:candidate', 'voicemail:start', 'chat:send'].includes(error.event)) return; // in acks
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

  /** The visitor hangs up (or something here ends the call): tell the gateway. Hanging
   * up a voicemail sends it. */
  hangUp(why = { cause: 'hangup' }) {
    if (this.call && this.call.kind === 'voicemail') {
      if (why.cause === 'hangup') {
        this.sendVoicemail();
        return;
      }
      if (this.call.voicemailId && this.ready) this.socket.emit('voicemail:send', {});
      this.endCall(why);
      return;
    }
    if (this.call && this.call.started && this.ready) this.socket.emit('call:hangup', {});
    this.endCall(why);
  }

  // ------------------------------------------------------------------ chat

  /** Send a chat message; resolves to {ok: true, messageId} or {ok: false, code, message,
   * retryAfter?}. The first starts the connection's conversation. */
  async sendChat(text, visitor) {
    if (!this.ready) {
      this.connect();
      if (!(await this.whenReady())) return { ok: false, code: 'offline', message: '' };
    }
    const payload = { text };
    if (visitor) payload.visitor = visitor;
    let reply;
    try {
      reply = await this.socket.timeout(START_TIMEOUT_MS).emitWithAck('chat:send', payload);
    } catch {
      return { ok: false, code: 'offline', message: '' };
    }
    if (!reply || !reply.ok) {
      const error = (reply && reply.error) || {};
      return { ok: false, code: error.code || 'error', message: error.message || '', retryAfter: Number(error.retry_after) || 0 };
    }
    this.conversationId = reply.conversation_id;
    const held = this.heldChat || [];
    this.heldChat = [];
    for (const [kind, update] of held) this.onChat(kind, update);
    return { ok: true, messageId: reply.message_id, conversationId: reply.conversation_id };
  }

  onChat(kind, update) {
    if (!update || typeof update !== 'object') return;
    if (!this.conversationId) {
      (this.heldChat = this.heldChat || []).push([kind, update]); // overtook the first ack
      return;
    }
    if (update.conversation_id !== this.conversationId) return;
    const detail = { kind, messageId: String(update.message_id || '') };
    if (kind === 'reply') {
      detail.text = String(update.text || '');
      detail.at = Number(update.at) || Date.now() / 1000;
    } else if (update.reason) {
      detail.reason = String(update.reason);
    }
    this.dispatchEvent(new CustomEvent('chat', { detail }));
  }

  // ------------------------------------------------------------------ voicemail

  /** Leave a voicemail: the microphone, then a connection of its own over which the
   * gateway plays the greeting and records (voicemail:start, docs/signaling.md). `remote`
   * is the MediaStream of the widget's <audio> (started inside the click). */
  async startVoicemail(remote, visitor) {
    if (this.call) return;
    const c = { kind: 'voicemail', pc: null, mic: null, voicemailId: null, sending: false, held: [] };
    this.call = c;
    this.emitStatus({ phase: 'voicemail', step: 'microphone' });
    if (!this.ready) {
      this.connect();
      const ready = await this.whenReady();
      if (this.call !== c) return;
      if (!ready) {
        this.endCall({ cause: 'connection_lost' });
        return;
      }
    }
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
    this.dispatchEvent(new CustomEvent('microphone', { detail: { stream: mic } }));
    this.emitStatus({ phase: 'voicemail', step: 'connecting' });
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    c.pc = pc;
    for (const track of mic.getAudioTracks()) pc.addTrack(track, mic);
    pc.ontrack = (event) => {
      remote.addTrack(event.track);
      this.dispatchEvent(new CustomEvent('track'));
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed' && this.call === c) this.hangUp({ cause: 'network' });
    };
    let reply;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, GATHER_MS); // no trickle: the offer carries its candidates
      if (this.call !== c) return;
      const payload = { sdp: pc.localDescription.sdp };
      if (visitor) payload.visitor = visitor;
      reply = await this.socket.timeout(START_TIMEOUT_MS).emitWithAck('voicemail:start', payload);
    } catch (err) {
      if (this.call === c) this.endCall({ cause: 'error', message: err.message });
      return;
    }
    if (this.call !== c) return;
    if (!reply || !reply.ok) {
      const error = (reply && reply.error) || {};
      const why = { cause: 'refused', code: error.code || 'no_answer', message: error.message || '' };
      if (Number(error.retry_after) > 0) why.retry_after = Number(error.retry_after);
      this.endCall(why);
      return;
    }
    c.voicemailId = reply.voicemail_id;
    c.maxSeconds = Number(reply.max_seconds) || 0;
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
    } catch (err) {
      if (this.call === c) this.hangUp({ cause: 'error', message: err.message });
      return;
    }
    const held = c.held;
    c.held = [];
    for (const update of held) this.onVoicemailState(update);
  }

  /** The visitor is done: the gateway keeps what it recorded, then says so. */
  sendVoicemail() {
    const c = this.call;
    if (!c || c.kind !== 'voicemail' || c.sending) return;
    if (!c.voicemailId) {
      this.endCall({ cause: 'voicemail_failed', reason: 'empty' }); // nothing recorded yet
      return;
    }
    c.sending = true;
    if (c.mic) stopTracks(c.mic);
    this.emitStatus({ phase: 'voicemail', step: 'sending' });
    this.socket.emit('voicemail:send', {});
  }

  onVoicemailState(update) {
    const c = this.call;
    if (!c || c.kind !== 'voicemail') return;
    if (c.voicemailId === null) {
      c.held.push(update); // overtook the ack
      return;
    }
    if (update.voicemail_id !== c.voicemailId) return;
    switch (update.state) {
      case 'greeting':
        if (!c.sending) this.emitStatus({ phase: 'voicemail', step: 'greeting' });
        break;
      case 'recording':
        if (!c.sending) this.emitStatus({ phase: 'voicemail', step: 'recording', maxSeconds: Number(update.seconds) || c.maxSeconds });
        break;
      case 'saved':
        this.endCall({ cause: 'voicemail_sent', seconds: Number(update.seconds) || 0 });
        break;
      case 'failed':
        this.endCall({ cause: 'voicemail_failed', reason: String(update.reason || 'error') });
        break;
      default:
        break;
    }
  }

  /** Resolves true once connected, false if refused or closed meanwhile. */
  whenReady() {
    return new Promise((resolve) => {
      if (this.ready) {
        resolve(true);
        return;
      }
      const onStatus = (event) => {
        const { phase } = event.detail;
        if (phase === 'unavailable') finish(false);
      };
      const finish = (ok) => {
        this.socket.off('connect', onConnect);
        this.removeEventListener('status', onStatus);
        resolve(ok);
      };
      const onConnect = () => finish(true);
      this.socket.on('connect', onConnect);
      this.addEventListener('status', onStatus);
    });
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

/** Resolves once `pc` has gathered its candidates, or after `ms`. */
function gathered(pc, ms) {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') {
      resolve();
      return;
    }
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

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
