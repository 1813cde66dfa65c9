// Request-a-Call from the widget: a call token (as for a call, token.js), then
// POST /api/callbacks, then the callback's progress from GET /api/callbacks/<id> until it
// reaches a final status. No DOM of its own: a `CallbackWatch` tells the widget what
// happens with `progress` events whose `detail` is
//   {state, id, due_at, missed?}
// where `state` is one of
//   scheduled         waiting for its time (due_at, seconds since the epoch)
//   calling-operator  the gateway is ringing the site's operator
//   calling-you       the operator answered; the visitor's phone is ringing
//   connected         both phones are joined
//   retrying          not reached this time, tried again at due_at; missed: 'you' | 'us'
//   done | failed (missed: 'you' | 'us') | interrupted | cancelled   (final)
// A callback the gateway no longer knows (404) ends as `interrupted`.
// The gateway's statuses and history events are described in docs/callbacks.md; whether a
// status is final comes from the gateway too (`final` in each answer), never from a list here.
import { postWithCallToken } from './token.js';

const POLL_MS = 2000; // while the callback is due or under way
const FAR_POLL_MS = 30000; // while it is scheduled for more than a minute ahead

/** The gateway refused the request; `code` is its machine-readable reason. */
export class CallbackRefused extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/**
 * Ask for a callback: `fields` is {site, number, name?, at?, page?, reason?}. Resolves to
 * the gateway's `{id, status, due_at}`; rejects with CallbackRefused (the gateway said no)
 * or another Error (network trouble, worth trying again).
 */
export function requestCallback(base, fields, onChallenge = () => {}) {
  return postWithCallToken(base, 'api/callbacks', fields, onChallenge, (code, message) => new CallbackRefused(code, message));
}

/** Follows one callback: polls the gateway until a final status, or until `stop()`. */
export class CallbackWatch extends EventTarget {
  constructor(base, created) {
    super();
    this.base = base;
    this.id = created.id;
    this.timer = null;
    this.stopped = false;
    this.created = created;
    this.last = '';
  }

  /** Report the callback as created, then poll. */
  start() {
    const { status, final, due_at } = this.created;
    this.update({ status, final, due_at, history: [] });
  }

  update(callback) {
    const final = callback.final === true;
    if (final) this.stop(); // before the event: listeners see `stopped`
    const detail = { id: this.id, ...progress(callback) };
    const key = JSON.stringify(detail);
    if (key !== this.last) {
      this.last = key;
      this.dispatchEvent(new CustomEvent('progress', { detail }));
    }
    if (final) return;
    const ahead = callback.due_at - Date.now() / 1000;
    const wait = callback.status === 'scheduled' && ahead > 60 ? FAR_POLL_MS : POLL_MS;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.poll(), wait);
  }

  async poll() {
    clearTimeout(this.timer); // cancel() may poll while a poll is due: one loop only
    this.timer = null;
    if (this.stopped) return;
    let callback = null;
    try {
      const url = new URL(`api/callbacks/${encodeURIComponent(this.id)}`, this.base);
      const response = await fetch(url, { cache: 'no-store', credentials: 'omit' });
      if (response.status === 404) {
        // The gateway no longer knows it (unknown_callback): over, shown as interrupted.
        callback = { status: 'interrupted', final: true, due_at: this.created.due_at };
      } else if (response.ok) {
        callback = await response.json();
      }
    } catch {
      // Offline for a moment: ask again later.
    }
    if (this.stopped) return;
    if (callback && typeof callback.status === 'string') {
      this.update(callback);
    } else {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.poll(), POLL_MS);
    }
  }

  /** Cancel the callback while it waits for its time (DELETE /api/callbacks/<id>).
   * Resolves once the gateway answered (the progress shows the outcome); rejects with
   * CallbackRefused when it is too late, or another Error. */
  async cancel() {
    const url = new URL(`api/callbacks/${encodeURIComponent(this.id)}`, this.base);
    const response = await fetch(url, { method: 'DELETE', cache: 'no-store', credentials: 'omit' });
    const reply = await response.json().catch(() => null);
    if (response.ok && reply && typeof reply.status === 'string') {
      this.update(reply);
      return;
    }
    this.poll(); // what it is doing instead
    const error = (reply && reply.error) || {};
    throw new CallbackRefused(error.code || 'refused', error.message || `HTTP ${response.status}`);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
  }
}

/** {state, due_at, missed?} of a callback as `GET /api/callbacks/<id>` shows it. */
export function progress(callback) {
  const history = Array.isArray(callback.history) ? callback.history : [];
  const last = history.length ? history[history.length - 1] : { event: '', detail: '' };
  const missed = String(last.detail || '').startsWith('visitor') ? 'you' : 'us';
  const due_at = callback.due_at;
  switch (callback.status) {
    case 'scheduled':
      // Back to `scheduled` after a try: the gateway tries again later.
      return last.event === 'scheduled' ? { state: 'retrying', due_at, missed } : { state: 'scheduled', due_at };
    case 'dialing':
      if (last.event === 'connected') return { state: 'connected', due_at };
      if (last.event === 'operator_answered' || last.event === 'calling_visitor') {
        return { state: 'calling-you', due_at };
      }
      return { state: 'calling-operator', due_at };
    case 'failed':
      return { state: 'failed', due_at, missed };
    default:
      return { state: callback.status, due_at };
  }
}
