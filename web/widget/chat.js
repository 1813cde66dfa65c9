// Click-to-chat, "Write to us", for sites with `chat`: a conversation view (role="log",
// named "Conversation") with a text box and Send, before, during and after a call. Each
// message goes to the site's operators as a SIP MESSAGE (the gateway's side), their
// replies appear here as they come. When nobody takes a message or answers in time, the
// view says so and offers to leave the message with a way back (message-form.js); on a
// closed site, "Write to us" opens that form at once.
import { h, icon } from './dom.js';
import { fill } from './words.js';

const MAX_CHARS = 1000; // as the gateway takes a message
// Where the chat may be used: the widget is connected (or can be) and not busy otherwise.
const CHAT_PHASES = new Set(['ready', 'ended', 'connecting', 'ringing', 'in-call', 'on-hold', 'closed']);

export class ChatPanel {
  /** `host`: the <click-to-call> element. */
  constructor(host) {
    this.host = host;
    this.items = new Map(); // messageId -> the status element of a visitor's message
    this.written = []; // the visitor's messages, for a message left afterwards
    this.sending = false;
    this.render();
  }

  render() {
    const ui = {};
    ui.toggleText = h('span');
    ui.toggle = h(
      'button',
      { type: 'button', class: 'chat-toggle tool', 'aria-expanded': 'false', 'aria-controls': 'chat', hidden: '' },
      icon('chat'),
      ui.toggleText,
    );
    ui.log = h('div', { class: 'chat-log', role: 'log', 'aria-live': 'polite', tabindex: '0' });
    ui.empty = h('p', { class: 'hint chat-empty' });
    ui.note = h('p', { class: 'chat-note', 'aria-live': 'polite', hidden: '' });
    ui.leave = h('button', { type: 'button', class: 'chat-leave offer', hidden: '' });
    ui.textLabel = h('label', { for: 'chat-text' });
    ui.text = h('textarea', {
      id: 'chat-text', name: 'chat', rows: '2', maxlength: String(MAX_CHARS), enterkeyhint: 'send', dir: 'auto',
    });
    ui.error = h('p', { class: 'error', id: 'chat-error', 'aria-live': 'polite' });
    ui.text.setAttribute('aria-describedby', 'chat-error');
    ui.send = h('button', { type: 'submit', class: 'chat-send send' });
    ui.form = h('form', { class: 'chat-form', novalidate: '' }, ui.textLabel, ui.text, ui.error, ui.send);
    ui.view = h('div', { class: 'chat', id: 'chat', hidden: '' }, ui.log, ui.empty, ui.note, ui.leave, ui.form);
    this.ui = ui;

    ui.toggle.addEventListener('click', () => this.toggle());
    ui.leave.addEventListener('click', () => this.leaveMessage());
    ui.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    ui.text.addEventListener('keydown', (event) => {
      // Enter sends, Shift+Enter starts a new line (as chat boxes do).
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
  }

  label(words) {
    const c = words.chat;
    const ui = this.ui;
    ui.toggleText.textContent = c.open;
    ui.log.setAttribute('aria-label', c.conversation);
    ui.empty.textContent = c.empty;
    ui.leave.textContent = c.leave;
    ui.textLabel.textContent = c.message;
    ui.send.textContent = c.send;
  }

  /** Listen to the session's chat events (a new session: a new conversation). */
  attach(session) {
    session.addEventListener('chat', (event) => this.onChat(event.detail));
  }

  get open() {
    return !this.ui.view.hidden;
  }

  update(phase) {
    const ui = this.ui;
    const settings = this.host.settings;
    const usable = Boolean(settings.chat) && CHAT_PHASES.has(phase) && this.host.canConnect;
    const closedInstead = phase === 'closed' && settings.chat && settings.messages;
    ui.toggle.hidden = !(usable || closedInstead);
    if (ui.toggle.hidden || phase === 'closed') ui.view.hidden = true;
    ui.toggle.setAttribute('aria-expanded', String(!ui.view.hidden));
    ui.empty.hidden = ui.log.childElementCount > 0;
  }

  toggle() {
    const host = this.host;
    if (host.detail.phase === 'closed' || !host.canConnect) {
      host.messageForm.open(); // nobody is there to chat: leave a message
      host.updateControls();
      return;
    }
    const ui = this.ui;
    ui.view.hidden = !ui.view.hidden;
    ui.toggle.setAttribute('aria-expanded', String(!ui.view.hidden));
    if (!ui.view.hidden) {
      if (host.session) host.session.connect();
      ui.text.focus();
    }
    host.updateControls();
  }

  async send() {
    const ui = this.ui;
    const host = this.host;
    const session = host.session;
    const text = ui.text.value.trim();
    ui.error.textContent = '';
    ui.text.removeAttribute('aria-invalid');
    if (!text || this.sending || !session) return;
    this.sending = true;
    ui.send.disabled = true;
    const item = this.append('visitor', text);
    const status = item.querySelector('.delivery');
    status.textContent = host.words.chat.sending;
    const visitor = { page: host.pageAddress() };
    const name = host.callPanel.ui.name.value.trim();
    if (host.settings.visitor_details !== 'off' && name) visitor.name = name;
    const source = host.sourceTag();
    if (source) visitor.source = source;
    const sent = await session.sendChat(text, visitor);
    this.sending = false;
    ui.send.disabled = false;
    if (sent.ok) {
      ui.text.value = '';
      this.items.set(sent.messageId, status);
      this.written.push(text);
      host.emit('chat', { kind: 'sent', text });
      return;
    }
    const c = host.words.chat;
    status.textContent = c.notDelivered;
    item.classList.add('failed');
    const reason = sent.code === 'offline' ? c.offline : fill(c.failed, { reason: host.words.refusals[sent.code] || sent.message || sent.code });
    ui.error.textContent = reason;
    ui.text.setAttribute('aria-invalid', 'true');
    ui.text.focus();
    host.emit('chat', { kind: 'refused', code: sent.code, text: reason });
    if (sent.code === 'closed' || sent.code === 'conversation_full') this.offerToLeave();
  }

  onChat(detail) {
    const c = this.host.words.chat;
    if (detail.kind === 'reply') {
      this.append('operator', detail.text);
      this.ui.note.hidden = true;
      this.ui.leave.hidden = true;
      if (!this.open) {
        this.ui.view.hidden = false; // a reply opens the conversation
        this.host.updateControls();
      }
      this.host.emit('chat', { kind: 'reply', text: detail.text });
      return;
    }
    const status = this.items.get(detail.messageId);
    if (detail.kind === 'delivered') {
      if (status) status.textContent = c.delivered;
    } else if (detail.kind === 'unanswered') {
      if (status && detail.reason === 'unreachable') {
        status.textContent = c.notDelivered;
        status.closest('.msg').classList.add('failed');
      }
      this.offerToLeave();
      this.host.emit('chat', { kind: 'unanswered', reason: detail.reason || '' });
    }
  }

  /** Nobody is answering: say so, and offer to leave the message with a way back. */
  offerToLeave() {
    const ui = this.ui;
    if (!this.host.settings.messages) return;
    ui.note.textContent = this.host.words.chat.unanswered;
    ui.note.hidden = false;
    ui.leave.hidden = false;
  }

  leaveMessage() {
    const host = this.host;
    host.messageForm.open({ text: this.written.join('\n'), conversationId: host.session && host.session.conversationId });
    host.updateControls();
  }

  /** The message was left: the offer goes. */
  left() {
    this.ui.note.hidden = true;
    this.ui.leave.hidden = true;
  }

  /** One message in the log: who wrote it (words, for everyone), its text, and for the
   * visitor's what became of it. */
  append(sender, text) {
    const c = this.host.words.chat;
    const who = h('span', { class: 'who' }, sender === 'visitor' ? c.you : c.us);
    const body = h('span', { class: 'text', dir: 'auto' }, text); // right-to-left text reads so
    const item = h('p', { class: `msg ${sender}` }, who, body);
    if (sender === 'visitor') item.append(h('span', { class: 'delivery' }));
    this.ui.log.append(item);
    this.ui.empty.hidden = true;
    this.ui.log.scrollTop = this.ui.log.scrollHeight;
    return item;
  }
}
