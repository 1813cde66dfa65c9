// <click-to-call site="shop">: the visitor's call button and call panel, in a shadow root.
// The site's look (label, colours, position, language, visitor details) comes from the
// gateway (GET /api/widget/<site>), never from the page. The JavaScript API (call(),
// hangup(), state, and the statechange / ended / error events) is in docs/embedding.md.
import { CallSession, micBlockedByPage } from './session.js';
import { WidgetAudio } from './sounds.js';
import { LANGUAGES, fill, pickLanguage } from './words.js';

const BASE = new URL('../', import.meta.url); // the gateway: this file is /widget/element.js
const SITE_ID = /^[a-z0-9-]{1,40}$/;
const DIGITS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'];
const DIGIT_NAMES = { '*': 'star', '#': 'pound' };
const IN_CALL = new Set(['microphone', 'connecting', 'ringing', 'in-call', 'on-hold']);
const TALKING = new Set(['in-call', 'on-hold']);
// Causes of an ended call that are problems (an `error` event, and words on what to do).
const PROBLEMS = new Set([
  'mic-denied', 'mic-blocked', 'no-mic', 'mic-busy', 'mic-failed', 'network',
  'connection_lost', 'refused', 'error',
]);
const DEFAULT_SETTINGS = {
  label: '',
  colour: '#0a7d32',
  text_colour: '#ffffff',
  position: 'bottom-right',
  language: 'auto',
  visitor_details: 'off',
};
const PHONE_ICON =
  'M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z';

export class ClickToCall extends HTMLElement {
  constructor() {
    super();
    this.session = null;
    this.audio = new WidgetAudio();
    this.words = LANGUAGES.en;
    this.settings = DEFAULT_SETTINGS;
    this.detail = { phase: 'loading' };
    this.lastStatus = ''; // the status words last shown (statechange fires on a change)
    this.mode = 'inline'; // page | inline | floating
    this.pendingCall = false;
    this.remote = null; // the remote MediaStream of the call being started
    this.focusCallWhenReady = false; // the panel was opened by keyboard before it connected
    this.canConnect = false; // until the browser and the page are known to be able to call
    this.stopMeter = () => {};
    this.timer = null;
    this.answeredAt = 0;
    this.ui = null;
  }

  // ------------------------------------------------------------------ public API

  /** Start a call (opening the panel); best called from a click, for the microphone. */
  call() {
    this.open(false);
    this.startCall();
  }

  /** Hang up the call in progress, if any. */
  hangup() {
    if (this.pendingCall) {
      this.pendingCall = false; // not started yet: nothing to tell the gateway
      this.ui.audio.srcObject = null;
    }
    if (this.session && this.session.call) this.session.hangUp();
  }

  /** What the widget is doing: loading, ready, unavailable, microphone, connecting,
   * ringing, in-call, on-hold or ended. */
  get state() {
    return this.detail.phase;
  }

  // ------------------------------------------------------------------ life cycle

  connectedCallback() {
    if (!this.ui) this.render();
    if (!this.session) this.init();
  }

  disconnectedCallback() {
    // Moved within the page: connectedCallback follows at once and keeps everything.
    queueMicrotask(() => {
      if (this.isConnected || !this.session) return;
      this.session.close();
      this.session = null;
      this.stopCallExtras();
    });
  }

  async init() {
    const ui = this.ui;
    this.mode = this.getAttribute('mode') === 'page' ? 'page' : 'inline';
    const siteId = this.getAttribute('site') || (this.mode === 'page' ? siteOfPage() : '');
    const session = new CallSession(BASE, siteId);
    this.session = session;
    session.addEventListener('status', (event) => this.show(event.detail));
    session.addEventListener('microphone', (event) => {
      this.stopMeter = this.audio.meter(event.detail.stream, (level) => {
        ui.meter.value = level;
      });
    });
    // Safari may start a media element only once it has a track: try again then.
    session.addEventListener('track', () => ui.audio.play().catch(() => {}));

    if (!SITE_ID.test(siteId)) {
      this.apply(DEFAULT_SETTINGS);
      this.unavailable({ cause: 'refused', message: `no valid site id: ${JSON.stringify(siteId)}` });
      return;
    }
    let settings = DEFAULT_SETTINGS;
    try {
      const response = await fetch(new URL(`api/widget/${siteId}`, BASE), { credentials: 'omit' });
      const reply = await response.json();
      if (response.ok) {
        settings = { ...DEFAULT_SETTINGS, ...reply };
      } else if (response.status === 404) {
        this.apply(DEFAULT_SETTINGS);
        this.unavailable({ cause: 'refused', message: reply.error.message });
        return;
      }
    } catch {
      // Unreachable for now: the defaults, and the connection says what is wrong.
    }
    if (this.session !== session) return; // removed from the page meanwhile
    this.apply(settings);

    if (!window.isSecureContext) {
      this.unavailable({ cause: 'insecure' });
    } else if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.RTCPeerConnection) {
      this.unavailable({ cause: 'unsupported' });
    } else if (this.mode === 'page' && micBlockedByPage()) {
      this.unavailable({ cause: 'mic-blocked' });
    } else {
      this.canConnect = true;
      this.show({ phase: 'loading' });
      // A floating widget connects when it is opened (or asked to call), not on every page.
      if (this.mode !== 'floating' || !ui.panel.hidden || this.pendingCall) session.connect();
    }
  }

  /** Show a problem that rules out calling: connection refused or a browser limit. */
  unavailable(detail) {
    this.session.emitStatus({ phase: 'unavailable', ...detail });
  }

  // ------------------------------------------------------------------ settings

  apply(settings) {
    this.settings = settings;
    const language = pickLanguage(settings.language);
    this.words = LANGUAGES[language];
    const w = this.words;
    const ui = this.ui;
    if (this.mode !== 'page') this.mode = settings.position === 'inline' ? 'inline' : 'floating';
    ui.root.lang = language;
    ui.root.dataset.mode = this.mode;
    ui.root.dataset.position = settings.position;
    // CSSOM, not a style attribute: allowed under a Content-Security-Policy without
    // 'unsafe-inline'. The gateway checked that the pair has AA contrast.
    this.style.setProperty('--ctc-accent', settings.colour);
    this.style.setProperty('--ctc-accent-text', settings.text_colour);
    const label = settings.label || w.label;
    if (this.mode === 'page') {
      document.documentElement.lang = language; // the whole page speaks it
      document.title = label;
    }
    ui.title.textContent = label;
    ui.launcherLabel.textContent = label;
    ui.launcher.hidden = this.mode !== 'floating';
    ui.close.hidden = this.mode !== 'floating';
    ui.close.setAttribute('aria-label', w.close);
    ui.panel.hidden = this.mode === 'floating';
    ui.call.textContent = w.call;
    ui.hangup.textContent = w.hangup;
    ui.mute.textContent = w.mute;
    ui.keypad.setAttribute('aria-label', w.keypad);
    for (const key of ui.keys) {
      const name = DIGIT_NAMES[key.dataset.digit];
      if (name) key.setAttribute('aria-label', w[name]);
    }
    ui.meterLabel.textContent = w.micLevel;
    ui.volumeLabel.textContent = w.volume;
    ui.timer.setAttribute('aria-label', w.callTime);
    ui.reasonLabel.textContent = `${w.reason} ${w.optional}`;
    const required = settings.visitor_details === 'required';
    ui.name.required = required;
    ui.nameLabel.textContent = required ? w.name : `${w.name} ${w.optional}`;
  }

  // ------------------------------------------------------------------ the view

  show(detail) {
    const previous = this.detail;
    this.detail = detail;
    const w = this.words;
    const { phase } = detail;
    let status;
    let help = '';
    switch (phase) {
      case 'loading':
        status = detail.step ? w[detail.step] : w.loading;
        break;
      case 'ready':
        status = w.ready;
        if (this.pendingCall) queueMicrotask(() => this.startCall());
        break;
      case 'unavailable':
        this.pendingCall = false;
        [status, help] = this.problemWords(detail, w.cannotCall);
        break;
      case 'microphone':
        status = w.microphone;
        help = w.microphoneHelp;
        break;
      case 'connecting':
        status = w.connecting;
        break;
      case 'ringing':
        status = w.ringing;
        break;
      case 'in-call':
        status = w.inCall;
        this.startTimer();
        break;
      case 'on-hold':
        status = w.onHold;
        help = w.onHoldHelp;
        break;
      case 'ended':
        [status, help] = this.endedWords(detail);
        this.stopCallExtras();
        break;
      default:
        status = phase;
    }
    const ui = this.ui;
    // Only changed text is written, so that screen readers announce changes once.
    if (ui.status.textContent !== status) ui.status.textContent = status;
    if (ui.help.textContent !== help) ui.help.textContent = help;
    ui.help.hidden = !help;
    ui.root.dataset.phase = phase;
    this.updateControls();
    // The gateway confirms some states the widget already showed: no repeated events.
    if (phase !== previous.phase || status !== this.lastStatus) {
      this.emit('statechange', { state: phase, text: status });
    }
    this.lastStatus = status;
    if (phase === 'ended') this.emit('ended', { cause: detail.cause, text: status });
    if (phase === 'unavailable' || (phase === 'ended' && PROBLEMS.has(detail.cause))) {
      this.emit('error', { code: detail.cause, text: status, help });
    }
  }

  endedWords(detail) {
    const w = this.words;
    const { cause } = detail;
    if (cause === 'hangup') return [w.ended, ''];
    if (cause === 'refused') {
      return [fill(w.failed, { reason: w.refusals[detail.code] || detail.message }), ''];
    }
    if (cause === 'error') return [fill(w.failed, { reason: detail.message }), ''];
    if (w.problems[cause]) return this.problemWords(detail, w.failed);
    const words = w.causes[cause] || cause;
    return [fill(w.endedBecause, { cause: words }), w.causeHelp[cause] || ''];
  }

  problemWords(detail, template) {
    const problem = this.words.problems[detail.cause];
    if (problem) return problem.map((text) => fill(text, { reason: detail.message || '' }));
    return [fill(template, { reason: detail.message || '' }), ''];
  }

  updateControls() {
    const ui = this.ui;
    const { phase } = this.detail;
    const session = this.session;
    const calling = IN_CALL.has(phase);
    const talking = TALKING.has(phase);
    const canCall = (phase === 'ready' || phase === 'ended') && Boolean(session && session.ready);
    ui.call.disabled = !canCall;
    ui.hangup.disabled = !calling;
    ui.mute.disabled = !calling || phase === 'microphone';
    ui.mute.setAttribute('aria-pressed', String(calling && session.muted));
    ui.keypad.hidden = !talking;
    ui.audioControls.hidden = !calling || phase === 'microphone';
    ui.timer.hidden = !talking;
    ui.details.hidden = this.settings.visitor_details === 'off' || calling || phase === 'unavailable';
    ui.launcher.classList.toggle('active', calling);
    // A control that just went away must not take the keyboard focus with it.
    const focused = this.shadowRoot.activeElement;
    if (focused && (focused.disabled || focused.closest('[hidden]'))) {
      (calling ? ui.hangup : canCall ? ui.call : ui.panel).focus();
    } else if (this.focusCallWhenReady && canCall && (focused === ui.close || focused === ui.panel)) {
      ui.call.focus();
    }
    if (canCall || phase === 'unavailable') this.focusCallWhenReady = false;
  }

  startTimer() {
    if (this.timer !== null) return; // on-hold and back: the call goes on
    this.answeredAt = Date.now();
    const tick = () => {
      const seconds = Math.floor((Date.now() - this.answeredAt) / 1000);
      this.ui.timer.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
    };
    tick();
    this.timer = setInterval(tick, 1000);
  }

  stopCallExtras() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.stopMeter();
    this.stopMeter = () => {};
    if (this.ui) this.ui.audio.srcObject = null;
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }

  // ------------------------------------------------------------------ actions

  /** Open the floating panel (and connect); `focus`: move the keyboard focus into it. */
  open(focus = true) {
    if (!this.session) return;
    if (this.canConnect) this.session.connect();
    if (this.mode !== 'floating' || !this.ui.panel.hidden) return;
    this.ui.panel.hidden = false;
    this.ui.launcher.setAttribute('aria-expanded', 'true');
    if (focus) {
      const first = this.firstControl();
      this.focusCallWhenReady = first === this.ui.close;
      first.focus();
    }
  }

  closePanel() {
    if (this.mode !== 'floating') return;
    this.ui.panel.hidden = true;
    this.ui.launcher.setAttribute('aria-expanded', 'false');
    this.ui.launcher.focus();
  }

  firstControl() {
    const ui = this.ui;
    if (!ui.details.hidden && !ui.name.value) return ui.name;
    if (!ui.call.disabled) return ui.call;
    if (!ui.hangup.disabled) return ui.hangup;
    return ui.close;
  }

  startCall() {
    const session = this.session;
    const { phase } = this.detail;
    if (!session || session.call || IN_CALL.has(phase) || phase === 'unavailable') return;
    const visitor = this.visitorDetails();
    if (visitor === null) return;
    if (!this.pendingCall) {
      // Inside the click: the AudioContext and the remote <audio> start now, so that
      // autoplay rules never silence the call when its audio arrives later.
      this.audio.unlock();
      this.remote = new MediaStream();
      this.ui.audio.srcObject = this.remote;
      this.ui.audio.play().catch(() => {});
    }
    if (!session.ready) {
      this.pendingCall = true; // started once connected, on the same <audio> stream
      if (this.canConnect) session.connect();
      return;
    }
    this.pendingCall = false;
    session.start(this.remote, visitor);
  }

  /** {name, reason, page}, or null when the site needs a name that is missing. */
  visitorDetails() {
    const ui = this.ui;
    const visitor = { page: pageAddress(this.mode === 'page' ? document.referrer : location.href) };
    if (this.settings.visitor_details === 'off') return visitor;
    visitor.name = ui.name.value.trim();
    visitor.reason = ui.reason.value.trim();
    if (ui.name.required && !visitor.name) {
      ui.name.setAttribute('aria-invalid', 'true');
      ui.help.textContent = this.words.nameNeeded;
      ui.help.hidden = false;
      ui.name.focus();
      return null;
    }
    ui.name.removeAttribute('aria-invalid');
    return visitor;
  }

  pressKey(digit) {
    if (!this.session || !this.session.sendDigits(digit)) return;
    this.audio.keyTone(digit);
    const key = this.ui.keys.find((button) => button.dataset.digit === digit);
    if (key) {
      key.classList.add('pressed');
      setTimeout(() => key.classList.remove('pressed'), 150);
    }
  }

  toggleMute() {
    if (!this.session || !this.session.call) return;
    this.session.setMuted(!this.session.muted);
    this.updateControls();
  }

  // ------------------------------------------------------------------ DOM

  render() {
    const root = this.attachShadow({ mode: 'open' });
    const stylesheet = h('link', { rel: 'stylesheet', href: new URL('widget/widget.css', BASE).href });
    const ui = {};
    ui.launcherLabel = h('span', { class: 'launcher-label' });
    ui.launcher = h(
      'button',
      { type: 'button', class: 'launcher', part: 'launcher', 'aria-expanded': 'false', 'aria-controls': 'panel', hidden: '' },
      phoneIcon(),
      ui.launcherLabel,
    );
    ui.title = h('p', { class: 'title', id: 'title' });
    ui.close = h('button', { type: 'button', class: 'close', hidden: '' }, h('span', { 'aria-hidden': 'true' }, '×'));
    ui.status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' });
    ui.help = h('p', { class: 'help', 'aria-live': 'polite', hidden: '' });
    ui.timer = h('p', { class: 'timer', role: 'timer', hidden: '' });
    ui.nameLabel = h('span');
    ui.name = h('input', { type: 'text', name: 'name', autocomplete: 'name', maxlength: '64', enterkeyhint: 'go' });
    ui.reasonLabel = h('span');
    ui.reason = h('input', { type: 'text', name: 'reason', maxlength: '200', enterkeyhint: 'go' });
    ui.details = h(
      'div',
      { class: 'details', hidden: '' },
      h('label', {}, ui.nameLabel, ui.name),
      h('label', {}, ui.reasonLabel, ui.reason),
    );
    ui.call = h('button', { type: 'button', class: 'call', disabled: '' });
    ui.hangup = h('button', { type: 'button', class: 'hangup', disabled: '' });
    ui.mute = h('button', { type: 'button', class: 'mute', 'aria-pressed': 'false', disabled: '' });
    ui.meterLabel = h('span');
    ui.meter = h('meter', { min: '0', max: '1', value: '0' });
    ui.volumeLabel = h('span');
    ui.volume = h('input', { type: 'range', min: '0', max: '100', value: '100', step: '5' });
    ui.audioControls = h(
      'div',
      { class: 'audio-controls', hidden: '' },
      h('label', { class: 'level' }, ui.meterLabel, ui.meter),
      h('label', { class: 'volume' }, ui.volumeLabel, ui.volume),
    );
    ui.keys = DIGITS.map((digit) => h('button', { type: 'button', 'data-digit': digit }, digit));
    ui.keypad = h('div', { class: 'keypad', role: 'group', hidden: '' }, ...ui.keys);
    ui.audio = h('audio', { class: 'remote' });
    ui.panel = h(
      'section',
      { class: 'panel', id: 'panel', part: 'panel', 'aria-labelledby': 'title', tabindex: '-1', hidden: '' },
      h('div', { class: 'head' }, ui.title, ui.close),
      ui.status,
      ui.help,
      ui.timer,
      ui.details,
      h('div', { class: 'controls' }, ui.call, ui.hangup, ui.mute),
      ui.audioControls,
      ui.keypad,
      ui.audio,
    );
    // Hidden until the stylesheet is in, so that nothing flashes unstyled.
    ui.root = h('div', { class: 'ctc', part: 'widget', hidden: '' }, ui.launcher, ui.panel);
    const reveal = () => ui.root.removeAttribute('hidden');
    stylesheet.addEventListener('load', reveal);
    stylesheet.addEventListener('error', reveal);
    root.append(stylesheet, ui.root);
    this.ui = ui;

    ui.launcher.addEventListener('click', () => (ui.panel.hidden ? this.open() : this.closePanel()));
    ui.close.addEventListener('click', () => this.closePanel());
    ui.call.addEventListener('click', () => this.startCall());
    ui.hangup.addEventListener('click', () => this.hangup());
    ui.mute.addEventListener('click', () => this.toggleMute());
    ui.volume.addEventListener('input', () => {
      ui.audio.volume = Number(ui.volume.value) / 100;
    });
    for (const key of ui.keys) key.addEventListener('click', () => this.pressKey(key.dataset.digit));
    for (const input of [ui.name, ui.reason]) {
      input.addEventListener('keydown', (event) => {
        if (event.key !== 'Enter' || ui.call.disabled) return;
        // Else the same Enter would press Hang up, which takes the focus as the call starts.
        event.preventDefault();
        this.startCall();
      });
    }
    ui.panel.addEventListener('keydown', (event) => this.onKey(event));
  }

  onKey(event) {
    if (event.key === 'Escape' && this.mode === 'floating') {
      event.preventDefault();
      this.closePanel();
      return;
    }
    const typing = event.target instanceof HTMLInputElement && event.target.type === 'text';
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (DIGITS.includes(event.key) && TALKING.has(this.detail.phase)) {
      event.preventDefault();
      this.pressKey(event.key);
    }
  }
}

/** `tag` with attributes and children (strings become text): no HTML parsing, so nothing
 * here depends on the host page's Trusted Types or CSP. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

function phoneIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', PHONE_ICON);
  svg.append(path);
  return svg;
}

/** The site id of the full-page widget, from its address: .../embed/<site>. */
function siteOfPage() {
  const last = location.pathname.replace(/\/+$/, '').split('/').pop() || '';
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

/** `address` without query and fragment (they may hold a search or a session), or ''. */
function pageAddress(address) {
  try {
    const url = new URL(address);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return '';
    return `${url.origin}${url.pathname}`;
  } catch {
    return '';
  }
}
