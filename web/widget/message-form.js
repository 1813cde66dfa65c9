// Click-to-text: "Write a message" when nobody can answer (the site's `fallback` has
// "text", or its chat found nobody): the visitor's message, their name and a way back (a
// phone number or an email address), sent with a call token to POST /api/messages
// (docs/embedding.md). Refusals go next to the field they are about; once received, the
// status line says so and where the answer will come.
import { h } from './dom.js';
import { fallbacks, nobodyAnswered } from './fallback.js';
import { postWithCallToken } from './token.js';
import { fill } from './words.js';

const MAX_CHARS = 1000; // as the gateway takes a message
const TEXT_CODES = new Set(['text_missing', 'text_invalid']);
const CONTACT_CODES = new Set(['contact_missing', 'contact_invalid']);

/** The gateway refused the message; `code` is its reason. */
export class MessageRefused extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** Leave a message: `fields` {site, text, contact, name?, page?, source?, conversation?}.
 * Resolves to {id, received_at}; rejects with MessageRefused or another Error (offline). */
export function leaveMessage(base, fields, onChallenge = () => {}) {
  return postWithCallToken(base, 'api/messages', fields, onChallenge, (code, message) => new MessageRefused(code, message));
}

export class MessageForm {
  /** `host`: the <click-to-call> element. */
  constructor(host) {
    this.host = host;
    this.sending = false;
    this.shown = false; // whether the status line says the message was received
    this.text = ''; // what it says then
    this.conversationId = null; // the chat the message follows, if any
    this.asked = false; // opened from the chat (nobody answered it) or from closed hours
    this.render();
  }

  render() {
    const ui = {};
    ui.offer = h('button', {
      type: 'button', class: 'offer message-offer', 'aria-expanded': 'false', 'aria-controls': 'message-form', hidden: '',
    });
    ui.intro = h('p', { class: 'intro', id: 'message-intro', tabindex: '-1' });
    ui.textLabel = h('label', { for: 'msg-text' });
    ui.text = h('textarea', {
      id: 'msg-text', name: 'message', rows: '4', maxlength: String(MAX_CHARS), required: '', dir: 'auto',
      'aria-describedby': 'msg-text-error',
    });
    ui.textError = h('p', { class: 'error', id: 'msg-text-error', 'aria-live': 'polite' });
    ui.nameLabel = h('label', { for: 'msg-name' });
    ui.name = h('input', { type: 'text', id: 'msg-name', name: 'name', autocomplete: 'name', maxlength: '64' });
    ui.contactLabel = h('label', { for: 'msg-contact' });
    ui.contact = h('input', {
      type: 'text', id: 'msg-contact', name: 'contact', autocomplete: 'email', inputmode: 'email',
      maxlength: '254', required: '', 'aria-describedby': 'msg-contact-hint msg-contact-error',
    });
    ui.contactHint = h('p', { class: 'hint', id: 'msg-contact-hint' });
    ui.contactError = h('p', { class: 'error', id: 'msg-contact-error', 'aria-live': 'polite' });
    ui.error = h('p', { class: 'error', id: 'msg-error', 'aria-live': 'polite' });
    ui.send = h('button', { type: 'submit', class: 'send primary' });
    ui.form = h(
      'form',
      { class: 'message-form', id: 'message-form', novalidate: '', 'aria-labelledby': 'message-intro', hidden: '' },
      ui.intro,
      h('div', { class: 'field' }, ui.textLabel, ui.text, ui.textError),
      h('div', { class: 'field' }, ui.nameLabel, ui.name),
      h('div', { class: 'field' }, ui.contactLabel, ui.contact, ui.contactHint, ui.contactError),
      ui.error,
      ui.send,
    );
    this.ui = ui;
    ui.offer.addEventListener('click', () => this.toggle());
    // A field the visitor corrects is no longer marked wrong.
    for (const [input, error] of [[ui.text, ui.textError], [ui.contact, ui.contactError], [ui.name, null]]) {
      input.addEventListener('input', () => {
        if (input.getAttribute('aria-invalid') !== 'true') return;
        input.removeAttribute('aria-invalid');
        if (error) error.textContent = '';
      });
    }
    ui.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  label(words) {
    const ui = this.ui;
    const m = words.message;
    ui.offer.textContent = m.offer;
    ui.intro.textContent = m.intro;
    ui.textLabel.textContent = m.text;
    ui.nameLabel.textContent = `${m.name} ${words.optional}`;
    ui.contactLabel.textContent = m.contact;
    ui.contactHint.textContent = m.contactHint;
    ui.send.textContent = m.send;
  }

  /** Whether "Write a message" is offered among the fallbacks now. */
  offered() {
    const { settings, detail, session } = this.host;
    if (!fallbacks(settings).includes('text') || !settings.messages) return false;
    if (session && session.call) return false;
    return this.sending || (!this.shown && nobodyAnswered(detail));
  }

  update() {
    const ui = this.ui;
    const offered = this.offered();
    ui.offer.hidden = !offered;
    if (!offered && !this.asked) ui.form.hidden = true;
    ui.offer.setAttribute('aria-expanded', String(!ui.form.hidden));
  }

  /** Show the form (or hide it, from the offer). */
  toggle() {
    if (this.ui.form.hidden) this.open();
    else this.close();
  }

  /** Show the form, with `text` written already (a chat's messages) and the chat's
   * `conversationId`; the message field gets the focus (the intro on a phone). */
  open({ text = '', conversationId = null } = {}) {
    const ui = this.ui;
    const host = this.host;
    this.asked = true;
    this.conversationId = conversationId;
    if (text && !ui.text.value) ui.text.value = text.slice(0, MAX_CHARS);
    const typedName = host.callPanel.ui.name.value.trim();
    if (!ui.name.value && typedName) ui.name.value = typedName;
    ui.form.hidden = false;
    ui.offer.setAttribute('aria-expanded', 'true');
    if (host.smallScreen()) ui.intro.focus();
    else if (ui.text.value) ui.contact.focus();
    else ui.text.focus();
  }

  close() {
    this.asked = false;
    this.ui.form.hidden = true;
    this.ui.offer.setAttribute('aria-expanded', 'false');
  }

  async submit() {
    const ui = this.ui;
    const host = this.host;
    if (this.sending || !host.session) return;
    this.clearErrors();
    const text = ui.text.value.trim();
    const contact = ui.contact.value.trim();
    if (!text) return this.refused('text_missing', '');
    if (!contact) return this.refused('contact_missing', '');
    const fields = { site: host.session.siteId, text, contact };
    const name = ui.name.value.trim();
    if (name) fields.name = name;
    const page = host.pageAddress();
    if (page) fields.page = page;
    const source = host.sourceTag();
    if (source) fields.source = source;
    if (this.conversationId) fields.conversation = this.conversationId;
    this.sending = true;
    ui.send.disabled = true;
    host.writeStatus(host.words.message.sending, '');
    try {
      await leaveMessage(host.base, fields, () => host.writeStatus(host.words.checking, ''));
      this.sending = false;
      ui.send.disabled = false;
      this.received(contact);
    } catch (err) {
      this.sending = false;
      ui.send.disabled = false;
      host.writeStatus(...host.baseWords);
      this.refused(err instanceof MessageRefused ? err.code : 'offline', err.message);
    }
  }

  /** The gateway has it: the status line says so (until the next call), the form goes. */
  received(contact) {
    const host = this.host;
    this.text = fill(host.words.message.received, { contact });
    this.shown = true;
    this.ui.text.value = '';
    this.close();
    host.chatPanel.left();
    host.writeStatus(this.text, '');
    host.emit('messagestatechange', { state: 'received', text: this.text });
    host.updateControls();
    host.ui.panel.focus();
  }

  refused(code, message) {
    const ui = this.ui;
    const host = this.host;
    const m = host.words.message;
    const text = code === 'offline' ? m.offline : host.words.refusals[code] || fill(m.failed, { reason: message || code });
    let input = null;
    let error = ui.error;
    if (TEXT_CODES.has(code)) {
      input = ui.text;
      error = ui.textError;
    } else if (CONTACT_CODES.has(code)) {
      input = ui.contact;
      error = ui.contactError;
    } else if (code === 'name_invalid') {
      input = ui.name;
    }
    error.textContent = text;
    host.emit('messagestatechange', { state: 'refused', code, text });
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } else {
      ui.send.focus();
    }
  }

  clearErrors() {
    const ui = this.ui;
    for (const error of [ui.textError, ui.contactError, ui.error]) error.textContent = '';
    for (const input of [ui.text, ui.contact, ui.name]) input.removeAttribute('aria-invalid');
  }

  /** A call starts: the status line is the call's again. */
  forget() {
    this.shown = false;
  }
}
