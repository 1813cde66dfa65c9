// The call page: one call from this browser to the site's phone, through the gateway.
// The token request, the events and their payloads are described in docs/signaling.md.

const STATE_WORDS = {
  connecting: 'Connecting…',
  ringing: 'Ringing…',
  early_media: 'Ringing…',
  answered: 'In call',
  on_hold: 'On hold',
};
const CAUSE_WORDS = {
  busy: 'busy',
  no_answer: 'no answer',
  declined: 'declined',
  unreachable: 'unreachable',
  failed: 'the call failed',
  operator_hung_up: 'the other side hung up',
  visitor_hung_up: 'you hung up',
  time_limit: 'the time limit was reached',
};
// Refusals of call:start by code, in the visitor's words (else the gateway's message).
const REFUSAL_WORDS = {
  busy: 'All lines are busy. Please try again in a few minutes.',
  site_busy: 'All lines are busy. Please try again in a few minutes.',
  too_many_calls: 'There is already a call from your connection.',
  budget_exhausted: 'Calls are paused for today. Please try again later.',
  unavailable: 'Calls cannot be taken right now. Please try again later.',
};
const START_TIMEOUT_MS = 30000;
const TOKEN_RETRY_MS = [1000, 2000, 5000, 10000];

const siteId = decodeURIComponent(location.pathname.replace(/\/+$/, '').split('/').pop() || '');
const byId = (id) => document.getElementById(id);
const ui = {
  status: byId('status'),
  call: byId('call'),
  hangup: byId('hangup'),
  mute: byId('mute'),
  remote: byId('remote-audio'),
  keys: [...document.querySelectorAll('#keypad button')],
};

let iceServers = [];
// Why the last token request was refused (shown instead of the socket's own refusal).
let tokenProblem = null;
// The call in progress, or null: {pc, mic, callId, started, muted, pendingCandidates,
// heldStates, endSent}. Every async step checks `call === c` after awaiting, because the
// visitor may have hung up (or the socket dropped) meanwhile.
let call = null;

// socket.io asks for `auth` before every (re)connection: each gets a fresh call token.
const socket = io({ transports: ['websocket'], auth: (send) => fetchAuth().then(send) });

socket.on('connect', () => {
  if (!call) idle('Ready');
});
socket.on('connect_error', (err) => {
  // `active` is false when the server refused us (unknown site, origin, token): no retry.
  const reason = tokenProblem || err.message;
  show(socket.active ? 'Connecting to the call service…' : `Cannot call: ${reason}`);
  ui.call.disabled = true;
});
socket.on('disconnect', () => {
  // The gateway hangs up a call whose socket is gone; a reconnection starts afresh.
  if (call) endCall('Call ended: the connection was lost');
  else idle('Connection lost, reconnecting…');
});
socket.on('session', (session) => {
  iceServers = Array.isArray(session.ice_servers) ? session.ice_servers : [];
});
socket.on('call:state', onState);
socket.on('error', (error) => {
  if (error.event === 'call:start') return; // answered in the call:start ack
  if (error.event === 'call:candidate') {
    console.warn('candidate refused:', error.message);
    return;
  }
  if (call) show(`Problem: ${error.message}`);
});

ui.call.addEventListener('click', startCall);
ui.hangup.addEventListener('click', () => hangUp('Call ended'));
ui.mute.addEventListener('click', toggleMute);
for (const key of ui.keys) {
  key.addEventListener('click', () => {
    if (call && call.callId) socket.emit('call:dtmf', { digits: key.dataset.digit });
  });
}

class Refused extends Error {}

// The socket's auth: a call token, or, when the gateway refused one, an empty token (the
// socket is then refused, and connect_error shows `tokenProblem`). Network trouble is
// retried here, since the socket cannot retry what it never started.
async function fetchAuth() {
  for (let attempt = 0; ; attempt += 1) {
    try {
      const token = await callToken();
      tokenProblem = null;
      return { site: siteId, token };
    } catch (err) {
      if (err instanceof Refused) {
        tokenProblem = err.message;
        return { site: siteId, token: '' };
      }
      show('Connecting to the call service…');
      await sleep(TOKEN_RETRY_MS[Math.min(attempt, TOKEN_RETRY_MS.length - 1)]);
    }
  }
}

// POST /api/token; a site that asks for a challenge answers with one first.
async function callToken() {
  let body = { site: siteId };
  for (let round = 0; round < 3; round += 1) {
    const response = await fetch('/api/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
    });
    const reply = await response.json().catch(() => null);
    if (response.ok && reply && reply.token) return reply.token;
    const error = (reply && reply.error) || {};
    if (response.status >= 500) throw new Error(error.message || `HTTP ${response.status}`);
    if (reply && reply.challenge) {
      show('Checking this browser…');
      body = { site: siteId, proof: await solveChallenge(reply.challenge) };
      continue;
    }
    throw new Refused(error.message || `the call service answered ${response.status}`);
  }
  throw new Refused('the challenge was not accepted');
}

function solveChallenge(challenge) {
  if (challenge.kind !== 'pow') {
    return Promise.reject(new Refused(`this page cannot solve a ${challenge.kind} challenge`));
  }
  // A Web Worker keeps the page responsive while it hashes.
  return new Promise((resolve, reject) => {
    const worker = new Worker('/static/pow-worker.js');
    worker.onmessage = (event) => {
      worker.terminate();
      resolve({ challenge: challenge.challenge, solution: event.data.solution });
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Refused(`the challenge cannot be solved here: ${event.message}`));
    };
    worker.postMessage({ challenge: challenge.challenge, difficulty: challenge.difficulty });
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function startCall() {
  if (call || !socket.connected) return;
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
  call = c;
  ui.call.disabled = true;
  ui.hangup.disabled = false;
  show('Starting…');
  // Attach and play the remote stream now, inside the click: later audio needs no gesture.
  const remote = new MediaStream();
  ui.remote.srcObject = remote;
  ui.remote.play().catch(() => {});

  if (!navigator.mediaDevices) {
    endCall('Calling needs a secure (https) page.');
    return;
  }
  let mic;
  try {
    mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    if (call === c) endCall(micProblem(err));
    return;
  }
  if (call !== c) {
    stopTracks(mic);
    return;
  }
  c.mic = mic;
  ui.mute.disabled = false;
  show('Connecting…');

  const pc = new RTCPeerConnection({ iceServers });
  c.pc = pc;
  for (const track of mic.getAudioTracks()) pc.addTrack(track, mic);
  pc.ontrack = (event) => remote.addTrack(event.track);
  pc.onicecandidate = (event) => sendCandidate(c, event.candidate);
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === 'failed' && call === c) hangUp('Call ended: the connection failed');
  };

  let reply;
  try {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (call !== c) return;
    const answered = socket.timeout(START_TIMEOUT_MS).emitWithAck('call:start', { sdp: offer.sdp });
    c.started = true;
    for (const candidate of c.pendingCandidates) socket.emit('call:candidate', candidate);
    c.pendingCandidates = [];
    reply = await answered;
  } catch (err) {
    if (call === c) hangUp(`Call failed: ${err.message}`);
    return;
  }
  if (call !== c) return;
  if (!reply || !reply.ok) {
    endCall(`Call failed: ${refusalWords(reply && reply.error)}`);
    return;
  }
  c.callId = reply.call_id;
  try {
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.sdp });
  } catch (err) {
    if (call === c) hangUp(`Call failed: ${err.message}`);
    return;
  }
  if (call !== c) return;
  for (const key of ui.keys) key.disabled = false;
  if (c.muted) socket.emit('call:mute', { muted: true });
  const held = c.heldStates;
  c.heldStates = [];
  for (const state of held) onState(state);
}

function sendCandidate(c, candidate) {
  if (call !== c) return;
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
  if (c.started) socket.emit('call:candidate', payload);
  else c.pendingCandidates.push(payload);
}

function onState(update) {
  const c = call;
  if (!c) return;
  if (c.callId === null) {
    // Normally the answer comes first; keep a state that overtook it until it has.
    if (c.started) c.heldStates.push(update);
    return;
  }
  if (update.call_id !== c.callId) return; // from an earlier call
  if (update.state === 'ended') {
    endCall(`Call ended: ${CAUSE_WORDS[update.cause] || update.cause}`);
    return;
  }
  show(STATE_WORDS[update.state] || update.state);
}

function toggleMute() {
  const c = call;
  if (!c || !c.mic) return;
  c.muted = !c.muted;
  for (const track of c.mic.getAudioTracks()) track.enabled = !c.muted;
  ui.mute.setAttribute('aria-pressed', String(c.muted));
  if (c.callId) socket.emit('call:mute', { muted: c.muted });
}

function hangUp(words) {
  if (call && call.started && socket.connected) socket.emit('call:hangup', {});
  endCall(words);
}

function endCall(words) {
  const c = call;
  call = null;
  if (c) {
    if (c.pc) c.pc.close();
    if (c.mic) stopTracks(c.mic);
  }
  ui.remote.srcObject = null;
  idle(words);
}

function idle(words) {
  ui.call.disabled = !socket.connected;
  ui.hangup.disabled = true;
  ui.mute.disabled = true;
  ui.mute.setAttribute('aria-pressed', 'false');
  for (const key of ui.keys) key.disabled = true;
  show(words);
}

function show(words) {
  ui.status.textContent = words;
}

function stopTracks(stream) {
  for (const track of stream.getTracks()) track.stop();
}

function refusalWords(error) {
  if (!error) return 'no answer from the gateway';
  return REFUSAL_WORDS[error.code] || error.message;
}

function micProblem(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Microphone access was denied. Allow it to call.';
    case 'NotFoundError':
      return 'No microphone was found.';
    case 'NotReadableError':
      return 'The microphone is in use by another program.';
    default:
      return `Cannot use the microphone: ${err && err.message ? err.message : err}`;
  }
}
