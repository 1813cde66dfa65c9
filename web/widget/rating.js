// After an answered call, an optional rating: one to five stars and a comment, sent to the
// gateway with the proof that came with the call's end (POST /api/calls/<call id>/rating,
// docs/signaling.md), and kept with the call's record. Never asked after a call nobody
// answered, and gone once the visitor calls again.
import { h, icon } from './dom.js';
import { fill } from './words.js';

const MAX_COMMENT_CHARS = 500;

export class RatingForm {
  /** `host`: the <click-to-call> element. */
  constructor(host) {
    this.host = host;
    this.call = null; // {id, proof} of the call to rate
    this.state = 'none'; // none | asking | sending | sent
    this.render();
  }

  render() {
    const ui = {};
    ui.legend = h('legend');
    ui.stars = [1, 2, 3, 4, 5].map((n) => {
      const input = h('input', { type: 'radio', name: 'rating', value: String(n) });
      const text = h('span', { class: 'visually-hidden' });
      return { input, text, label: h('label', { class: 'star' }, input, icon('star'), text) };
    });
    ui.commentLabel = h('span');
    ui.comment = h('input', { type: 'text', name: 'comment', maxlength: String(MAX_COMMENT_CHARS) });
    ui.error = h('p', { class: 'error', 'aria-live': 'polite' });
    ui.send = h('button', { type: 'submit', class: 'send-rating' });
    ui.form = h(
      'form',
      { class: 'rating', novalidate: '', hidden: '' },
      h('fieldset', { class: 'stars' }, ui.legend, ...ui.stars.map((star) => star.label)),
      h('label', {}, ui.commentLabel, ui.comment),
      ui.error,
      ui.send,
    );
    ui.thanks = h('p', { class: 'thanks', role: 'status', hidden: '' });
    this.ui = ui;
    this.elements = [ui.form, ui.thanks];
    for (const star of ui.stars) {
      star.input.addEventListener('change', () => {
        ui.error.textContent = '';
      });
    }
    ui.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  label(words) {
    const r = words.rating;
    const ui = this.ui;
    ui.legend.textContent = r.question;
    for (const [index, star] of ui.stars.entries()) star.text.textContent = fill(r.stars, { n: index + 1 });
    ui.commentLabel.textContent = `${r.comment} ${words.optional}`;
    ui.send.textContent = r.send;
    ui.thanks.textContent = r.thanks;
  }

  /** A call ended: ask for a rating when it was answered (the gateway sent a proof). */
  offer(detail) {
    if (!detail.ratingProof || !detail.callId) return;
    this.call = { id: detail.callId, proof: detail.ratingProof };
    this.state = 'asking';
    for (const star of this.ui.stars) star.input.checked = false;
    this.ui.comment.value = '';
    this.ui.error.textContent = '';
  }

  /** A new call starts: the last one's rating is no longer asked for. */
  clear() {
    this.call = null;
    this.state = 'none';
  }

  update(phase) {
    const ended = phase === 'ended';
    this.ui.form.hidden = !(ended && (this.state === 'asking' || this.state === 'sending'));
    this.ui.thanks.hidden = !(ended && this.state === 'sent');
    this.ui.send.disabled = this.state === 'sending';
  }

  async submit() {
    const ui = this.ui;
    const host = this.host;
    const call = this.call;
    if (!call || this.state !== 'asking') return;
    const chosen = ui.stars.find((star) => star.input.checked);
    if (!chosen) {
      ui.error.textContent = host.words.rating.choose;
      ui.stars[0].input.focus();
      return;
    }
    const body = { proof: call.proof, rating: Number(chosen.input.value) };
    const comment = ui.comment.value.trim();
    if (comment) body.comment = comment.slice(0, MAX_COMMENT_CHARS);
    this.state = 'sending';
    ui.error.textContent = '';
    host.updateControls();
    let ok = false;
    try {
      const response = await fetch(new URL(`api/calls/${encodeURIComponent(call.id)}/rating`, host.base), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
      // 409: rated already (another tab): as good as sent.
      ok = response.ok || response.status === 409;
    } catch {
      ok = false;
    }
    if (this.call !== call) return; // a new call started meanwhile
    this.state = ok ? 'sent' : 'asking';
    if (ok) {
      host.emit('rated', { rating: body.rating, comment: body.comment || '' });
    } else {
      ui.error.textContent = host.words.rating.failed;
    }
    host.updateControls();
  }
}
