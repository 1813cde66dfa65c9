// <click-to-call site="shop">: the element shell. It holds the visitor's connection
// (session.js), fetches the site's settings (settings.js: look, language, hours, callbacks),
// and lays out the panel: a floating launcher and its card (a bottom sheet on a phone), or
// the panel inline or as a whole page; a header band with the site's logo, name and
// promise; the status line; then the parts by concern: the call (call-panel.js), the
// pre-call check (check-panel.js), the rating after a call (rating.js), the opening hours
// (hours.js) and "Call me back" (callback-form.js). It owns the state, the focus and the
// events of the JavaScript API (call(), hangup(), state, and statechange / ended / error /
// callbackstatechange / precheckstatechange / quality / rated), described in
// docs/embedding.md.
import { CallbackForm } from './callback-form.js';
import { ChatPanel } from './chat.js';
import { fallbacks } from './fallback.js';
import { CallPanel, IN_CALL, PROBLEMS, TALKING, problemWords } from './call-panel.js';
import { CheckPanel } from './check-panel.js';
import { h, icon } from './dom.js';
import { MessageForm } from './message-form.js';
import { TimeWords, renderHours } from './hours.js';
import { CallSession, micBlockedByPage } from './session.js';
import { RatingForm } from './rating.js';
import { DEFAULT_SETTINGS, applyLook, fetchSettings } from './settings.js';
import { WidgetAudio } from './sounds.js';
import { VoicemailPanel } from './voicemail.js';
import { ENGLISH, loadWords, pickLanguage } from './words.js';

const BASE = new URL('../', import.meta.url); // the gateway: this file is /widget/element.js
const SITE_ID = /^[a-z0-9-]{1,40}$/;
const MAX_SOURCE_CHARS = 64; // of a call link's ?source= tag, as the gateway takes it
// What a source tag keeps: letters and digits of any script, and a few separators.
const SOURCE_DROPPED = /[^\p{L}\p{N} ._:/+@-]+/gu;
const OPEN_HASH = '#call'; // a link to a page with the widget that opens it
const MAX_TIMER_MS = 24 * 3600 * 1000; // a closed widget reopens itself within a day
const TYPED_INPUTS = new Set(['text', 'tel', 'datetime-local']); // digits typed there stay there
// Where the floating panel becomes a bottom sheet (widget.css says the same).
const SMALL_SCREEN = '(max-width: 480px)';

export class ClickToCall extends HTMLElement {
  constructor() {
    super();
    this.base = BASE;
    this.session = null;
    this.audio = new WidgetAudio();
    this.words = ENGLISH;
    this.time = new TimeWords('en', ENGLISH);
    this.settings = DEFAULT_SETTINGS;
    this.detail = { phase: 'loading' };
    this.lastStatus = ''; // the status words last shown (statechange fires on a change)
    this.mode = 'inline'; // page | inline | floating
    this.link = false; // the call link's own page (/call/<site>)
    this.pendingCall = false;
    this.remote = null; // the remote MediaStream of the call being started
    this.panelWanted = false; // opened (or asked to call) before the settings said floating
    this.canConnect = false; // until the browser and the page are known to be able to call
    this.baseWords = ['', '']; // [status, help] of the widget's state, without a callback
    this.hoursShown = false;
    this.reportedPhase = ''; // the state of the last statechange event
    this.reopenTimer = null;
    this.ui = null;
    this.callPanel = null;
    this.callbackForm = null;
    this.checkPanel = null;
    this.ratingForm = null;
    this.voicemailPanel = null;
    this.chatPanel = null;
    this.messageForm = null;
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
      this.callPanel.ui.audio.srcObject = null;
      this.refresh();
    }
    if (this.session && this.session.call) this.session.hangUp();
  }

  /** What the widget is doing: loading, ready, closed, unavailable, microphone,
   * connecting, ringing, in-call, on-hold, transferring or ended. */
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
      this.callPanel.dispose();
      this.callbackForm.dispose();
      this.voicemailPanel.dispose();
      this.checkPanel.cancel();
      clearTimeout(this.reopenTimer);
      if (this.onHash) window.removeEventListener('hashchange', this.onHash);
    });
  }

  async init() {
    this.mode = this.getAttribute('mode') === 'page' ? 'page' : 'inline';
    // The call link's page (/call/<site>): a page of its own, not framed by a site.
    this.link = this.mode === 'page' && this.hasAttribute('link');
    const siteId = this.getAttribute('site') || (this.mode === 'page' ? siteOfPage() : '');
    const session = new CallSession(BASE, siteId);
    this.session = session;
    session.addEventListener('status', (event) => this.show(event.detail));
    session.addEventListener('microphone', (event) => this.callPanel.meter(this.audio, event.detail.stream));
    this.chatPanel.attach(session);
    // The end of a call the visitor hung up, confirmed by the gateway: a rating may follow.
    session.addEventListener('rating', (event) => {
      if (this.detail.phase !== 'ended') return;
      this.ratingForm.offer(event.detail);
      this.updateControls();
    });
    // Safari may start a media element only once it has a track: try again then.
    session.addEventListener('track', () => this.callPanel.ui.audio.play().catch(() => {}));

    if (!SITE_ID.test(siteId)) {
      await this.apply(DEFAULT_SETTINGS);
      this.unavailable({ cause: 'refused', code: 'unknown_site', message: `no valid site id: ${JSON.stringify(siteId)}` });
      return;
    }
    const fetched = await fetchSettings(BASE, siteId);
    if (this.session !== session) return; // removed from the page meanwhile
    const { refusal } = fetched;
    // Unreachable for now: the defaults, and the connection says what is wrong.
    const settings = fetched.settings || DEFAULT_SETTINGS;
    await this.apply(settings);
    if (this.session !== session) return;
    if (refusal) {
      this.unavailable({ cause: 'refused', code: refusal.code, message: refusal.message });
    } else if (settings.open === false) {
      this.showClosed();
    } else {
      this.enableCalls();
    }
    // A link to this page ending in #call opens the widget (and so does following one).
    if (location.hash === OPEN_HASH) this.open();
    this.onHash = () => {
      if (location.hash === OPEN_HASH) this.open();
    };
    window.addEventListener('hashchange', this.onHash);
  }

  /** The site is open: check that this browser can call, then connect. */
  enableCalls() {
    const session = this.session;
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
      if (this.mode !== 'floating' || !this.ui.panel.hidden || this.pendingCall) session.connect();
    }
  }

  /** Outside business hours: say so and when the site opens (and offer a callback); at
   * the opening, look again. */
  showClosed() {
    this.hoursShown = renderHours(this.ui.hours, this.settings.hours, this.time);
    this.show({ phase: 'closed' });
    clearTimeout(this.reopenTimer);
    const opening = Date.parse(this.settings.next_opening || '');
    const wait = opening - Date.now();
    if (wait > 0 && wait < MAX_TIMER_MS) this.reopenTimer = setTimeout(() => this.reopen(), wait + 1000);
  }

  async reopen() {
    const session = this.session;
    if (!session || this.detail.phase !== 'closed') return;
    const { settings } = await fetchSettings(BASE, session.siteId);
    if (this.session !== session || this.detail.phase !== 'closed') return;
    if (!settings) {
      this.reopenTimer = setTimeout(() => this.reopen(), 60000); // offline: try again
      return;
    }
    this.settings = settings;
    if (settings.open === false) {
      this.showClosed();
    } else {
      this.enableCalls();
    }
  }

  /** A call was refused as the site has closed since the page loaded: learn when it opens
   * again (for the callback form's "when we open"), and say it. */
  async learnClosed() {
    const session = this.session;
    const { settings } = await fetchSettings(BASE, session.siteId);
    if (this.session !== session || !settings || this.detail.phase !== 'ended') return;
    this.settings = { ...settings, open: false };
    this.baseWords = [this.baseWords[0], this.time.opensAgain(this.settings)];
    if (!this.callbackForm.shown) this.writeStatus(...this.baseWords);
    this.updateControls();
  }

  /** Show a problem that rules out calling: connection refused or a browser limit. */
  unavailable(detail) {
    this.session.emitStatus({ phase: 'unavailable', ...detail });
  }

  // ------------------------------------------------------------------ settings

  async apply(settings) {
    this.settings = settings;
    const language = pickLanguage(settings.language);
    const words = await loadWords(language);
    this.words = words;
    this.time = new TimeWords(localeFor(language), words);
    const w = words;
    const ui = this.ui;
    if (this.mode !== 'page') this.mode = settings.position === 'inline' ? 'inline' : 'floating';
    ui.root.lang = language;
    ui.root.dataset.mode = this.mode;
    ui.root.dataset.link = this.link ? 'true' : '';
    ui.root.dataset.position = settings.position;
    applyLook(this, settings);
    const label = settings.label || w.label;
    if (this.mode === 'page') {
      document.documentElement.lang = language; // the whole page speaks it
      document.title = label;
    }
    ui.title.textContent = label;
    ui.promise.textContent = settings.promise || '';
    ui.promise.hidden = !settings.promise;
    this.showLogo(settings.logo);
    ui.launcherLabel.textContent = label;
    ui.launcher.hidden = this.mode !== 'floating';
    ui.close.hidden = this.mode !== 'floating';
    ui.close.setAttribute('aria-label', w.close);
    // A call() or open() before the settings came keeps the panel open once floating.
    ui.panel.hidden = this.mode === 'floating' && !this.panelWanted;
    ui.launcher.setAttribute('aria-expanded', String(this.mode === 'floating' && !ui.panel.hidden));
    this.callPanel.label(w, settings);
    this.callbackForm.label(w, settings);
    this.checkPanel.label(w);
    this.ratingForm.label(w);
    this.voicemailPanel.label(w);
    this.chatPanel.label(w);
    this.messageForm.label(w);
    this.orderOffers(settings);
  }

  /** The fallbacks' offers in the order the site lists them. */
  orderOffers(settings) {
    const buttons = {
      voicemail: this.voicemailPanel.ui.offer,
      text: this.messageForm.ui.offer,
      callback: this.callbackForm.ui.offer,
    };
    const order = fallbacks(settings).filter((name) => buttons[name]);
    const rest = Object.keys(buttons).filter((name) => !order.includes(name));
    this.ui.offers.replaceChildren(...[...order, ...rest].map((name) => buttons[name]));
  }

  /** The site's logo (or operator's picture) in the header: decorative, the name is
   * next to it. Only https (or the gateway's own) addresses. */
  showLogo(address) {
    const ui = this.ui;
    let url = null;
    try {
      url = address ? new URL(address, BASE) : null;
    } catch {
      url = null;
    }
    const usable = url && (url.protocol === 'https:' || url.origin === BASE.origin);
    ui.logo.hidden = !usable;
    ui.avatar.hidden = Boolean(usable);
    if (usable) ui.logo.src = url.href;
    else ui.logo.removeAttribute('src');
  }

  // ------------------------------------------------------------------ the view

  /** A new state (from the session, or the widget itself). */
  show(detail) {
    this.detail = detail;
    const { phase } = detail;
    if (phase === 'ready' && this.pendingCall) queueMicrotask(() => this.startCall());
    if (phase === 'unavailable' || phase === 'closed') this.pendingCall = false;
    this.callPanel.onState(detail);
    if (phase === 'ended') this.ratingForm.offer(detail);
    if (phase === 'ended' && detail.cause === 'refused' && detail.code === 'closed') this.learnClosed();
    if (IN_CALL.has(phase) || phase === 'voicemail') {
      this.callbackForm.shown = false; // a call takes the status line over
      this.messageForm.forget();
    }
    this.refresh();
    if (phase === 'ended') this.emit('ended', { cause: detail.cause, text: this.lastStatus });
    if (phase === 'unavailable' || (phase === 'ended' && PROBLEMS.has(detail.cause))) {
      const error = { code: detail.cause, text: this.lastStatus, help: this.baseWords[1] };
      if (detail.code) error.refusal = detail.code;
      this.emit('error', error);
    }
  }

  /** The words and controls of the current state, again (after mute, a retry time). */
  refresh() {
    const detail = this.detail;
    const { phase } = detail;
    const w = this.words;
    let status;
    let help = '';
    switch (phase) {
      case 'loading':
        status = detail.step ? w[detail.step] : w.loading;
        break;
      case 'ready':
        status = w.ready;
        break;
      case 'unavailable':
        [status, help] = problemWords(w, detail, w.cannotCall);
        break;
      case 'closed':
        status = w.closed;
        help = this.time.opensAgain(this.settings);
        break;
      case 'voicemail':
        [status, help] = this.voicemailPanel.stateWords(detail);
        break;
      default:
        if (phase === 'ended' && String(detail.cause).startsWith('voicemail_')) {
          [status, help] = this.voicemailPanel.stateWords(detail);
        } else {
          [status, help] = this.callPanel.stateWords(detail);
        }
    }
    const testing = phase === 'ready' || phase === 'ended';
    const test = testing ? this.checkPanel.statusWords() : null;
    if (test) [status, help] = test; // the connection test's progress, then its verdict
    this.ui.root.dataset.precheck = testing ? this.checkPanel.verdict : '';
    this.baseWords = [status, help];
    const form = this.callbackForm;
    if (form.shown && phase !== 'loading') {
      status = form.text; // the callback's progress, until the next call
      help = '';
    } else if (this.messageForm.shown && phase !== 'loading') {
      status = this.messageForm.text; // the message left was received
      help = '';
    }
    this.writeStatus(status, help);
    this.ui.root.dataset.phase = phase;
    this.ui.root.dataset.step = detail.step || ''; // a voicemail's: recording shows red
    this.updateControls();
    // The gateway confirms some states the widget already showed: no repeated events.
    if (phase !== this.reportedPhase || status !== this.lastStatus) {
      this.emit('statechange', { state: phase, text: status });
    }
    this.reportedPhase = phase;
    this.lastStatus = status;
  }

  /** Only changed text is written, so that screen readers announce changes once. */
  writeStatus(status, help) {
    const ui = this.ui;
    if (ui.status.textContent !== status) ui.status.textContent = status;
    this.writeHelp(help);
  }

  writeHelp(help) {
    const ui = this.ui;
    if (ui.help.textContent !== help) ui.help.textContent = help;
    ui.help.hidden = !help;
  }

  inCall() {
    return IN_CALL.has(this.detail.phase);
  }

  /** Show only what can be used in this state, with one primary action. */
  updateControls() {
    const ui = this.ui;
    const { phase } = this.detail;
    const calling = IN_CALL.has(phase);
    // Call is there whenever it would start a call (at once, or once connected).
    const canCall = this.canConnect && Boolean(this.session) && ['loading', 'ready', 'ended'].includes(phase);
    const focused = this.shadowRoot.activeElement; // before its control may go away
    const target = this.callPanel.update(phase, canCall, this.settings) || this.voicemailPanel.update();
    if (phase !== 'voicemail') this.voicemailPanel.update();
    this.checkPanel.update(phase, canCall, this.settings);
    this.ratingForm.update(phase);
    this.callbackForm.update();
    this.messageForm.update();
    this.chatPanel.update(phase);
    // Without Call, the first of the site's fallbacks offered is the main action.
    const offers = [...this.ui.offers.children].filter((offer) => !offer.hidden);
    offers.forEach((offer, index) => offer.classList.toggle('primary', index === 0 && !canCall && !calling));
    ui.offers.hidden = offers.length === 0;
    ui.hours.hidden = phase !== 'closed' || !this.hoursShown;
    ui.launcher.classList.toggle('active', calling);
    // A control that just went away must not take the keyboard focus with it.
    if (focused && (focused.disabled || focused.closest('[hidden]'))) {
      (target || this.callbackForm.firstControl() || ui.panel).focus();
    }
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }

  /** Whether the floating panel is a bottom sheet now (a phone-sized screen). */
  smallScreen() {
    return window.matchMedia(SMALL_SCREEN).matches;
  }

  // ------------------------------------------------------------------ actions

  /** Open the floating panel (and connect); `focus`: move the keyboard focus into it. */
  open(focus = true) {
    if (!this.session) return;
    this.panelWanted = true;
    if (this.canConnect) this.session.connect();
    if (this.mode !== 'floating' || !this.ui.panel.hidden) return;
    this.ui.panel.hidden = false;
    this.ui.launcher.setAttribute('aria-expanded', 'true');
    if (focus) this.firstControl().focus();
  }

  closePanel() {
    if (this.mode !== 'floating') return;
    this.panelWanted = false;
    this.ui.panel.hidden = true;
    this.ui.launcher.setAttribute('aria-expanded', 'false');
    this.ui.launcher.focus();
  }

  /** Where the focus goes when the panel opens: the name to type, else the main action.
   * Never a text field on a phone: its keyboard would cover the sheet. */
  firstControl() {
    const ui = this.ui;
    const call = this.callPanel.ui;
    if (this.detail.phase === 'closed') {
      const offer = [...ui.offers.children].find((button) => !button.hidden);
      if (offer === this.callbackForm.ui.offer) return this.callbackForm.firstControl();
      return offer || (this.chatPanel.ui.toggle.hidden ? ui.panel : this.chatPanel.ui.toggle);
    }
    const typing = !this.smallScreen();
    if (typing && !call.details.hidden && !call.name.value) return call.name;
    if (!call.call.hidden && !call.call.disabled) return call.call;
    if (!call.hangup.hidden) return call.hangup;
    return ui.panel;
  }

  startCall() {
    const session = this.session;
    const { phase } = this.detail;
    if (!session || session.call || IN_CALL.has(phase) || phase === 'unavailable' || phase === 'closed') return;
    if (this.callPanel.retryAt > Date.now()) return; // the gateway would refuse it
    this.checkPanel.cancel(); // a call ends the connection test (the gateway does too)
    this.ratingForm.clear();
    const ui = this.callPanel.ui;
    const visitor = this.callPanel.visitorDetails(this.pageAddress());
    if (visitor === null) {
      if (this.pendingCall) {
        // Asked for before the settings said a name is needed: the visitor clicks again.
        this.pendingCall = false;
        ui.audio.srcObject = null;
        this.remote = null;
      }
      return;
    }
    if (!this.pendingCall) {
      // Inside the click: the AudioContext and the remote <audio> start now, so that
      // autoplay rules never silence the call when its audio arrives later.
      this.audio.unlock();
      this.remote = new MediaStream();
      ui.audio.srcObject = this.remote;
      ui.audio.play().catch(() => {});
    }
    if (!session.ready) {
      this.pendingCall = true; // started once connected, on the same <audio> stream
      if (this.canConnect) session.connect();
      return;
    }
    this.pendingCall = false;
    const source = this.sourceTag();
    if (source) visitor.source = source;
    session.start(this.remote, visitor);
  }

  /** The page the visitor is on, without query and fragment; for the full-page widget,
   * the page that frames it (the call link's page is its own). */
  pageAddress() {
    return pageAddress(this.mode === 'page' && !this.link ? document.referrer : location.href);
  }

  /** Where the visitor came from: the `?source=` of the page's address (a call link from a
   * newsletter or a post), else the element's `source` attribute; cleaned as the gateway
   * takes it (letters, digits, ` ._:/+@-`, at most 64 characters), '' for none. */
  sourceTag() {
    const tag = new URLSearchParams(location.search).get('source') || this.getAttribute('source') || '';
    const cleaned = tag.replace(SOURCE_DROPPED, '').replace(/\s+/g, ' ').trim();
    return Array.from(cleaned).slice(0, MAX_SOURCE_CHARS).join('').trim();
  }

  // ------------------------------------------------------------------ DOM

  render() {
    const root = this.attachShadow({ mode: 'open' });
    const stylesheet = h('link', { rel: 'stylesheet', href: new URL('widget/widget.css', BASE).href });
    this.callPanel = new CallPanel(this);
    this.callbackForm = new CallbackForm(this);
    this.checkPanel = new CheckPanel(this);
    this.ratingForm = new RatingForm(this);
    this.voicemailPanel = new VoicemailPanel(this);
    this.chatPanel = new ChatPanel(this);
    this.messageForm = new MessageForm(this);
    const voicemail = this.voicemailPanel.ui;
    const chat = this.chatPanel.ui;
    const message = this.messageForm.ui;
    const ui = {};
    ui.launcherLabel = h('span', { class: 'launcher-label' });
    ui.launcher = h(
      'button',
      { type: 'button', class: 'launcher', part: 'launcher', 'aria-expanded': 'false', 'aria-controls': 'panel', hidden: '' },
      icon('phone'),
      ui.launcherLabel,
    );
    ui.logo = h('img', { class: 'logo', alt: '', hidden: '', referrerpolicy: 'no-referrer' });
    ui.avatar = h('span', { class: 'avatar', 'aria-hidden': 'true' }, icon('phone')); // without a logo
    ui.title = h('p', { class: 'title', id: 'title' });
    ui.promise = h('p', { class: 'promise', hidden: '' });
    ui.close = h('button', { type: 'button', class: 'close', hidden: '' }, icon('close'));
    ui.status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' });
    ui.help = h('p', { class: 'help', 'aria-live': 'polite', hidden: '' });
    ui.hours = h('table', { class: 'hours', hidden: '' }); // filled by renderHours
    const call = this.callPanel;
    const form = this.callbackForm;
    ui.offers = h('div', { class: 'offers' }, voicemail.offer, message.offer, form.ui.offer); // orderOffers
    const check = this.checkPanel.ui;
    const rating = this.ratingForm.ui;
    ui.panel = h(
      'section',
      { class: 'panel', id: 'panel', part: 'panel', 'aria-labelledby': 'title', tabindex: '-1', hidden: '' },
      h('header', { class: 'head' }, ui.logo, ui.avatar, h('div', { class: 'brand' }, ui.title, ui.promise), ui.close),
      h(
        'div',
        { class: 'body' },
        h('div', { class: 'state' }, ui.status, ui.help),
        voicemail.timer,
        ...call.before,
        check.level,
        check.results,
        check.measured,
        ui.hours,
        h('div', { class: 'actions' }, ...call.actions, voicemail.send, check.start, ui.offers),
        ...call.after,
        chat.toggle,
        chat.view,
        rating.form,
        rating.thanks,
        form.ui.form,
        form.ui.cancel,
        message.form,
      ),
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
    ui.panel.addEventListener('keydown', (event) => this.onKey(event));
  }

  onKey(event) {
    if (event.key === 'Escape' && this.mode === 'floating') {
      event.preventDefault();
      this.closePanel();
      return;
    }
    const target = event.target;
    // Digits typed in a field (a number, a chat message) stay there: no DTMF.
    const typing =
      target instanceof HTMLTextAreaElement || (target instanceof HTMLInputElement && TYPED_INPUTS.has(target.type));
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    if (/^[0-9*#]$/.test(event.key) && TALKING.has(this.detail.phase)) {
      event.preventDefault();
      this.callPanel.pressKey(event.key);
    }
  }
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

/** The browser's own tag for `language` (en-GB for en), for dates in the visitor's format. */
function localeFor(language) {
  for (const tag of navigator.languages || []) {
    if (String(tag).toLowerCase().split('-')[0] === language) return tag;
  }
  return language;
}
