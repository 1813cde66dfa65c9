// <click-to-call site="shop">: the visitor's call button and call panel, in a shadow root.
// The site's look (label, colours, position, language, visitor details) comes from the
// gateway (GET /api/widget/<site>), never from the page, and so does whether the site is
// open and takes callbacks (Request-a-Call, callback.js). The JavaScript API (call(),
// hangup(), state, and the statechange / ended / error / callbackstatechange events) is in
// docs/embedding.md.
import { CallbackRefused, CallbackWatch, requestCallback } from './callback.js';
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
// With `fallback = "callback"`, the ends of a call after which a callback is offered.
const CALLBACK_CAUSES = new Set(['busy', 'no_answer', 'declined']);
const CALLBACK_REFUSALS = new Set(['closed', 'busy', 'site_busy', 'nobody_available']);
// Refusals of a callback request that are about the number, or about the time.
const NUMBER_CODES = new Set([
  'number_missing', 'number_invalid', 'country_not_allowed', 'number_type_refused', 'number_limit',
]);
const TIME_CODES = new Set(['time_missing', 'bad_time', 'closed', 'closed_now']);
const MAX_TIMER_MS = 24 * 3600 * 1000; // a closed widget reopens itself within a day
const MAX_DAYS_AHEAD = 14;
const WEEK = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']; // as in the settings' `hours` // how far ahead the gateway schedules a callback
// Callback states in which the visitor may still cancel it (nobody has been called yet).
const CANCELLABLE = new Set(['scheduled', 'retrying']);
const TYPED_INPUTS = new Set(['text', 'tel', 'datetime-local']); // digits typed there stay there
const DEFAULT_SETTINGS = {
  label: '',
  colour: '#0a7d32',
  text_colour: '#ffffff',
  position: 'bottom-right',
  language: 'auto',
  visitor_details: 'off',
  open: true,
  next_opening: null,
  hours: null,
  fallback: 'message',
  callback: null,
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
    this.panelWanted = false; // opened (or asked to call) before the settings said floating
    this.canConnect = false; // until the browser and the page are known to be able to call
    this.stopMeter = () => {};
    this.timer = null;
    this.answeredAt = 0;
    this.ui = null;
    this.locale = 'en';
    this.baseWords = ['', '']; // [status, help] of the widget's state, without a callback
    this.watch = null; // the callback being followed (CallbackWatch), if any
    this.callbackText = ''; // the words of its latest progress
    this.callbackShown = false; // whether the status line shows the callback's progress
    this.sending = false; // a callback request is on its way
    this.callbackState = ''; // the state of the followed callback (callback.js)
    this.reopenTimer = null;
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

  /** What the widget is doing: loading, ready, closed, unavailable, microphone,
   * connecting, ringing, in-call, on-hold or ended. */
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
      if (this.watch) this.watch.stop();
      clearTimeout(this.reopenTimer);
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
    const fetched = await fetchSettings(siteId);
    if (this.session !== session) return; // removed from the page meanwhile
    const { refusal } = fetched;
    // Unreachable for now: the defaults, and the connection says what is wrong.
    const settings = fetched.settings || DEFAULT_SETTINGS;
    this.apply(settings);
    if (refusal) {
      this.unavailable({ cause: 'refused', message: refusal });
    } else if (settings.open === false) {
      this.showClosed();
    } else {
      this.enableCalls();
    }
  }

  /** The site is open: check that this browser can call, then connect. */
  enableCalls() {
    const ui = this.ui;
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
      if (this.mode !== 'floating' || !ui.panel.hidden || this.pendingCall) session.connect();
    }
  }

  /** Outside business hours: say so and when the site opens (and offer a callback, see
   * updateControls); at the opening, look again. */
  showClosed() {
    this.renderHours();
    this.show({ phase: 'closed' });
    clearTimeout(this.reopenTimer);
    const opening = Date.parse(this.settings.next_opening || '');
    const wait = opening - Date.now();
    if (wait > 0 && wait < MAX_TIMER_MS) this.reopenTimer = setTimeout(() => this.reopen(), wait + 1000);
  }

  async reopen() {
    const session = this.session;
    if (!session || this.detail.phase !== 'closed') return;
    const { settings } = await fetchSettings(session.siteId);
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
    const { settings } = await fetchSettings(session.siteId);
    if (this.session !== session || !settings || this.detail.phase !== 'ended') return;
    this.settings = { ...settings, open: false };
    this.baseWords = [this.baseWords[0], this.opensAgainWords()];
    if (!this.callbackShown) this.writeStatus(...this.baseWords);
    this.updateControls();
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
    this.locale = localeFor(language);
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
    // A call() or open() before the settings came keeps the panel open once floating.
    ui.panel.hidden = this.mode === 'floating' && !this.panelWanted;
    ui.launcher.setAttribute('aria-expanded', String(this.mode === 'floating' && !ui.panel.hidden));
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
    const c = w.callback;
    ui.offer.textContent = c.offer;
    ui.cbIntro.textContent = c.intro;
    ui.cbNumberLabel.textContent = c.number;
    ui.cbNumberHint.textContent = settings.callback
      ? fill(c.countries, { countries: this.countryNames() })
      : '';
    ui.cbNameLabel.textContent = `${c.name} ${w.optional}`;
    ui.cbWhenLegend.textContent = c.when;
    ui.cbAtTimeLabel.textContent = c.atTime;
    ui.cbTimeLabel.textContent = c.time;
    ui.cbTimeHint.textContent = c.timeHint;
    ui.cbSend.textContent = c.send;
    ui.cbCancel.textContent = c.cancel;
  }

  /** The site's callback countries, named in the visitor's language ("the United
   * Kingdom and Ireland"). */
  countryNames() {
    const codes = (this.settings.callback && this.settings.callback.countries) || [];
    let names = codes;
    try {
      const regions = new Intl.DisplayNames([this.locale], { type: 'region' });
      names = codes.map((code) => regions.of(code) || code);
    } catch {
      // An old browser: the codes.
    }
    try {
      return new Intl.ListFormat(this.locale, { style: 'long', type: 'conjunction' }).format(names);
    } catch {
      return names.join(', ');
    }
  }

  /** A time for the visitor, in their language and time zone: "today at 14:05", or the
   * day and time ("Monday, March 2 at 9:00 AM"). */
  when(value) {
    const date = value instanceof Date ? value : new Date(value);
    const time = new Intl.DateTimeFormat(this.locale, { hour: 'numeric', minute: '2-digit' }).format(date);
    if (date.toDateString() === new Date().toDateString()) return fill(this.words.today, { time });
    return new Intl.DateTimeFormat(this.locale, {
      weekday: 'long',
      day: 'numeric',
      month: 'long',
      hour: 'numeric',
      minute: '2-digit',
    }).format(date);
  }

  /** The site's weekly opening hours (settings `hours`, in the site's time zone) as a
   * table: a caption naming the zone, one row per day, "Closed" for a day without shifts. */
  renderHours() {
    const ui = this.ui;
    const hours = this.settings.hours;
    const valid = hours && hours.week && typeof hours.timezone === 'string';
    ui.hours.replaceChildren();
    this.hoursShown = Boolean(valid);
    if (!valid) return;
    const w = this.words;
    const zone = hours.timezone.split('/').pop().replace(/_/g, ' ');
    let dayName;
    try {
      const format = new Intl.DateTimeFormat(this.locale, { weekday: 'long', timeZone: 'UTC' });
      dayName = (index) => format.format(Date.UTC(2024, 0, 1 + index)); // 1 January 2024: a Monday
    } catch {
      dayName = (index) => WEEK[index];
    }
    const rows = WEEK.map((day, index) => {
      const shifts = Array.isArray(hours.week[day]) ? hours.week[day] : [];
      const times = [];
      for (const [start, end] of shifts) {
        if (times.length) times.push(', ');
        times.push(h('span', { class: 'shift' }, `${start}–${end}`)); // a shift never wraps
      }
      if (!times.length) times.push(w.closedDay);
      return h('tr', {}, h('th', { scope: 'row' }, dayName(index)), h('td', {}, ...times));
    });
    ui.hours.append(h('caption', {}, fill(w.openingHours, { zone })), h('tbody', {}, ...rows));
  }

  opensAgainWords() {
    const next = this.settings.next_opening;
    return next ? fill(this.words.opensAgain, { when: this.when(next) }) : '';
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
      case 'closed':
        this.pendingCall = false;
        status = w.closed;
        help = this.opensAgainWords();
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
        if (detail.cause === 'refused' && detail.code === 'closed') this.learnClosed();
        break;
      default:
        status = phase;
    }
    const ui = this.ui;
    this.baseWords = [status, help];
    if (IN_CALL.has(phase)) this.callbackShown = false; // a call takes the status line over
    if (this.callbackShown && phase !== 'loading') {
      status = this.callbackText; // the callback's progress, until the next call
      help = '';
    }
    this.writeStatus(status, help);
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

  /** Only changed text is written, so that screen readers announce changes once. */
  writeStatus(status, help) {
    const ui = this.ui;
    if (ui.status.textContent !== status) ui.status.textContent = status;
    if (ui.help.textContent !== help) ui.help.textContent = help;
    ui.help.hidden = !help;
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
    ui.details.hidden =
      this.settings.visitor_details === 'off' || calling || phase === 'unavailable' || phase === 'closed';
    ui.controls.hidden = phase === 'closed'; // no dead Call button: the callback, if any
    ui.hours.hidden = phase !== 'closed' || !this.hoursShown;
    const offered = this.callbackOffered();
    ui.offer.hidden = !offered;
    const waiting = this.watch && !this.watch.stopped && CANCELLABLE.has(this.callbackState);
    ui.cbCancel.hidden = !waiting;
    if (!offered) ui.form.hidden = true;
    ui.offer.setAttribute('aria-expanded', String(!ui.form.hidden));
    ui.launcher.classList.toggle('active', calling);
    // A control that just went away must not take the keyboard focus with it.
    const focused = this.shadowRoot.activeElement;
    if (focused && (focused.disabled || focused.closest('[hidden]'))) {
      (calling ? ui.hangup : canCall ? ui.call : ui.panel).focus();
    } else if (this.focusCallWhenReady && canCall && (focused === ui.close || focused === ui.panel)) {
      ui.call.focus();
    }
    if (canCall || phase === 'unavailable' || phase === 'closed') this.focusCallWhenReady = false;
  }

  /** Whether the panel offers "Call me back" now: the site's fallback is "callback" and it
   * takes callbacks, it is closed or the call ended busy / unanswered / refused as closed or
   * busy, and no callback of this page is on its way. */
  callbackOffered() {
    const settings = this.settings;
    if (settings.fallback !== 'callback' || !settings.callback) return false;
    if (this.sending) return true;
    if (this.watch && !this.watch.stopped) return false;
    const detail = this.detail;
    if (detail.phase === 'closed') return true;
    if (detail.phase !== 'ended') return false;
    return CALLBACK_CAUSES.has(detail.cause) || (detail.cause === 'refused' && CALLBACK_REFUSALS.has(detail.code));
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
    this.panelWanted = true;
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
    this.panelWanted = false;
    this.ui.panel.hidden = true;
    this.ui.launcher.setAttribute('aria-expanded', 'false');
    this.ui.launcher.focus();
  }

  firstControl() {
    const ui = this.ui;
    if (this.detail.phase === 'closed' && !ui.offer.hidden) return ui.form.hidden ? ui.offer : ui.cbNumber;
    if (!ui.details.hidden && !ui.name.value) return ui.name;
    if (!ui.call.disabled) return ui.call;
    if (!ui.hangup.disabled) return ui.hangup;
    return ui.close;
  }

  startCall() {
    const session = this.session;
    const { phase } = this.detail;
    if (!session || session.call || IN_CALL.has(phase) || phase === 'unavailable' || phase === 'closed') return;
    const visitor = this.visitorDetails();
    if (visitor === null) {
      if (this.pendingCall) {
        // Asked for before the settings said a name is needed: the visitor clicks again.
        this.pendingCall = false;
        this.ui.audio.srcObject = null;
        this.remote = null;
      }
      return;
    }
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

  // ------------------------------------------------------------------ callbacks

  /** The "Call me back" button: show (and focus) or hide the callback form. */
  toggleForm() {
    const ui = this.ui;
    if (ui.form.hidden) {
      this.prepareForm();
      ui.form.hidden = false;
      ui.cbNumber.focus();
    } else {
      ui.form.hidden = true;
    }
    ui.offer.setAttribute('aria-expanded', String(!ui.form.hidden));
  }

  /** The form's choices as of now: "Now" while open, "When we open (<time>)" when closed,
   * or a time of the visitor's choosing (in their time zone; the gateway checks it is
   * within business hours). The name comes from the visitor details, if typed there. */
  prepareForm() {
    const ui = this.ui;
    const c = this.words.callback;
    const settings = this.settings;
    if (!ui.cbName.value && ui.name.value.trim()) ui.cbName.value = ui.name.value.trim();
    const closed = settings.open === false || this.detail.phase === 'closed';
    const opening = closed && settings.next_opening ? new Date(settings.next_opening) : null;
    ui.cbSoonText.textContent = !closed ? c.now : opening ? fill(c.atOpening, { when: this.when(opening) }) : '';
    ui.cbSoonOption.hidden = closed && !opening;
    if (ui.cbSoonOption.hidden) ui.cbAtTime.checked = true;
    const now = new Date();
    ui.cbAt.min = inputTime(now);
    ui.cbAt.max = inputTime(new Date(now.getTime() + MAX_DAYS_AHEAD * 86400e3));
    if (!ui.cbAt.value) {
      // The opening, else the next quarter hour an hour from now.
      ui.cbAt.value = inputTime(opening || new Date(Math.ceil((now.getTime() + 3600e3) / 900e3) * 900e3));
    }
    this.showTimeField();
  }

  showTimeField() {
    this.ui.cbAtField.hidden = !this.ui.cbAtTime.checked;
  }

  async submitCallback() {
    const ui = this.ui;
    if (this.sending || !this.session) return;
    this.clearFormErrors();
    const number = ui.cbNumber.value.trim();
    if (!number) {
      this.callbackRefused('number_missing', '');
      return;
    }
    const fields = { site: this.session.siteId, number };
    const name = ui.cbName.value.trim();
    if (name) fields.name = name;
    const page = pageAddress(this.mode === 'page' ? document.referrer : location.href);
    if (page) fields.page = page;
    const reason = this.settings.visitor_details === 'off' ? '' : ui.reason.value.trim();
    if (reason) fields.reason = reason;
    if (ui.cbAtTime.checked) {
      const at = new Date(ui.cbAt.value);
      if (!ui.cbAt.value || Number.isNaN(at.getTime())) {
        this.callbackRefused('time_missing', '');
        return;
      }
      fields.at = isoWithOffset(at);
    } else if (this.settings.open === false && this.settings.next_opening) {
      fields.at = this.settings.next_opening;
    }
    this.sending = true;
    this.callbackShown = true;
    this.showCallback({ state: 'sending' }, this.words.callback.sending);
    try {
      const created = await requestCallback(BASE, fields, () => this.writeStatus(this.words.checking, ''));
      this.sending = false;
      this.follow(created);
    } catch (err) {
      this.sending = false;
      let code = 'offline';
      if (err instanceof CallbackRefused) code = err.code === 'closed' && !fields.at ? 'closed_now' : err.code;
      this.callbackRefused(code, err.message);
    }
  }

  /** A refused request: the reason in words next to the field it is about (which gets
   * aria-invalid and the focus), or above the send button. */
  callbackRefused(code, message) {
    const ui = this.ui;
    const c = this.words.callback;
    const words = code === 'offline' ? c.offline : c.refusals[code];
    const text = words ? fill(words, { countries: this.countryNames() }) : fill(c.failed, { reason: message });
    let input = null;
    let error = ui.cbError;
    if (NUMBER_CODES.has(code)) {
      input = ui.cbNumber;
      error = ui.cbNumberError;
    } else if (TIME_CODES.has(code)) {
      ui.cbAtTime.checked = true;
      this.showTimeField();
      input = ui.cbAt;
      error = ui.cbAtError;
    }
    error.textContent = text;
    this.callbackShown = false; // the status line says again what it said before
    this.writeStatus(...this.baseWords);
    this.emit('callbackstatechange', { state: 'refused', code, text });
    this.updateControls();
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } else {
      ui.cbSend.focus();
    }
  }

  clearFormErrors() {
    const ui = this.ui;
    for (const error of [ui.cbNumberError, ui.cbAtError, ui.cbError]) error.textContent = '';
    for (const input of [ui.cbNumber, ui.cbAt]) input.removeAttribute('aria-invalid');
  }

  /** Follow the accepted callback's progress (polling the gateway) in the status line. */
  follow(created) {
    if (this.watch) this.watch.stop();
    const watch = new CallbackWatch(BASE, created);
    this.watch = watch;
    watch.addEventListener('progress', (event) => this.onCallbackProgress(event.detail));
    this.ui.form.hidden = true;
    watch.start();
  }

  onCallbackProgress(detail) {
    const c = this.words.callback;
    const when = detail.due_at ? this.when(new Date(detail.due_at * 1000)) : '';
    let text;
    switch (detail.state) {
      case 'scheduled':
        text = detail.due_at * 1000 - Date.now() < 60000 ? c.soon : fill(c.scheduled, { when });
        break;
      case 'calling-operator':
        text = c.callingOperator;
        break;
      case 'calling-you':
        text = c.callingYou;
        break;
      case 'retrying':
        text = fill(detail.missed === 'you' ? c.retryYou : c.retryUs, { when });
        break;
      case 'failed':
        text = detail.missed === 'you' ? c.failedYou : c.failedUs;
        break;
      default:
        text = c[detail.state] || detail.state; // connected, done, interrupted, cancelled
    }
    this.showCallback(detail, text);
    this.updateControls();
  }

  /** The visitor no longer wants the callback they are waiting for. */
  async cancelCallback() {
    const watch = this.watch;
    if (!watch || watch.stopped) return;
    this.ui.cbCancel.disabled = true;
    try {
      await watch.cancel();
    } catch (err) {
      const reason = err instanceof CallbackRefused ? err.message : this.words.callback.offline;
      this.writeStatus(this.callbackText, fill(this.words.callback.cancelFailed, { reason }));
    } finally {
      this.ui.cbCancel.disabled = false;
    }
  }

  showCallback(detail, text) {
    this.callbackState = detail.state;
    this.callbackText = text;
    if (this.callbackShown && !IN_CALL.has(this.detail.phase)) this.writeStatus(text, '');
    this.emit('callbackstatechange', { ...detail, text });
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
    ui.hours = h('table', { class: 'hours', hidden: '' }); // filled by renderHours
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
    // Request-a-Call: "Call me back" and its form (shown by updateControls / toggleForm).
    ui.offer = h('button', {
      type: 'button', class: 'offer', 'aria-expanded': 'false', 'aria-controls': 'callback-form', hidden: '',
    });
    ui.cbIntro = h('p', { class: 'intro', id: 'callback-intro' });
    ui.cbNumberLabel = h('label', { for: 'cb-number' });
    ui.cbNumber = h('input', {
      type: 'tel', id: 'cb-number', name: 'tel', autocomplete: 'tel', inputmode: 'tel', maxlength: '40',
      required: '', enterkeyhint: 'send', 'aria-describedby': 'cb-number-hint cb-number-error',
    });
    ui.cbNumberHint = h('p', { class: 'hint', id: 'cb-number-hint' });
    ui.cbNumberError = h('p', { class: 'error', id: 'cb-number-error', 'aria-live': 'polite' });
    ui.cbNameLabel = h('label', { for: 'cb-name' });
    ui.cbName = h('input', { type: 'text', id: 'cb-name', name: 'name', autocomplete: 'name', maxlength: '64' });
    ui.cbWhenLegend = h('legend');
    ui.cbSoon = h('input', { type: 'radio', name: 'when', value: 'soon', checked: '' });
    ui.cbSoonText = h('span');
    ui.cbSoonOption = h('label', { class: 'choice' }, ui.cbSoon, ui.cbSoonText);
    ui.cbAtTime = h('input', { type: 'radio', name: 'when', value: 'at' });
    ui.cbAtTimeLabel = h('span');
    ui.cbTimeLabel = h('label', { for: 'cb-at' });
    ui.cbAt = h('input', {
      type: 'datetime-local', id: 'cb-at', name: 'at', 'aria-describedby': 'cb-at-hint cb-at-error',
    });
    ui.cbTimeHint = h('p', { class: 'hint', id: 'cb-at-hint' });
    ui.cbAtError = h('p', { class: 'error', id: 'cb-at-error', 'aria-live': 'polite' });
    ui.cbAtField = h('div', { class: 'field', hidden: '' }, ui.cbTimeLabel, ui.cbAt, ui.cbTimeHint, ui.cbAtError);
    ui.cbError = h('p', { class: 'error', id: 'cb-error', 'aria-live': 'polite' });
    ui.cbSend = h('button', { type: 'submit', class: 'send' });
    ui.cbCancel = h('button', { type: 'button', class: 'cancel-callback', hidden: '' });
    ui.form = h(
      'form',
      { class: 'callback', id: 'callback-form', novalidate: '', 'aria-labelledby': 'callback-intro', hidden: '' },
      ui.cbIntro,
      h('div', { class: 'field' }, ui.cbNumberLabel, ui.cbNumber, ui.cbNumberHint, ui.cbNumberError),
      h('div', { class: 'field' }, ui.cbNameLabel, ui.cbName),
      h(
        'fieldset',
        { class: 'when' },
        ui.cbWhenLegend,
        ui.cbSoonOption,
        h('label', { class: 'choice' }, ui.cbAtTime, ui.cbAtTimeLabel),
        ui.cbAtField,
      ),
      ui.cbError,
      ui.cbSend,
    );
    ui.controls = h('div', { class: 'controls' }, ui.call, ui.hangup, ui.mute);
    ui.panel = h(
      'section',
      { class: 'panel', id: 'panel', part: 'panel', 'aria-labelledby': 'title', tabindex: '-1', hidden: '' },
      h('div', { class: 'head' }, ui.title, ui.close),
      ui.status,
      ui.help,
      ui.hours,
      ui.timer,
      ui.details,
      ui.controls,
      ui.offer,
      ui.form,
      ui.cbCancel,
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
    ui.offer.addEventListener('click', () => this.toggleForm());
    ui.cbCancel.addEventListener('click', () => this.cancelCallback());
    ui.form.addEventListener('submit', (event) => {
      event.preventDefault(); // no navigation: the widget sends it
      this.submitCallback();
    });
    for (const radio of [ui.cbSoon, ui.cbAtTime]) radio.addEventListener('change', () => this.showTimeField());
    ui.panel.addEventListener('keydown', (event) => this.onKey(event));
  }

  onKey(event) {
    if (event.key === 'Escape' && this.mode === 'floating') {
      event.preventDefault();
      this.closePanel();
      return;
    }
    const typing = event.target instanceof HTMLInputElement && TYPED_INPUTS.has(event.target.type);
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

/** `{settings, refusal}` of a site from the gateway: settings null when it cannot be
 * reached, refusal the words of a 404 (unknown site). Not cached: whether the site is open
 * changes with the time. */
async function fetchSettings(siteId) {
  try {
    const response = await fetch(new URL(`api/widget/${siteId}`, BASE), { credentials: 'omit', cache: 'no-store' });
    const reply = await response.json();
    if (response.ok) return { settings: { ...DEFAULT_SETTINGS, ...reply }, refusal: null };
    if (response.status === 404) return { settings: DEFAULT_SETTINGS, refusal: reply.error.message };
  } catch {
    // Offline, or not the gateway.
  }
  return { settings: null, refusal: null };
}

/** The browser's own tag for `language` (en-GB for en), for dates in the visitor's format. */
function localeFor(language) {
  for (const tag of navigator.languages || []) {
    if (String(tag).toLowerCase().split('-')[0] === language) return tag;
  }
  return language;
}

function pad(n) {
  return String(Math.abs(n)).padStart(2, '0');
}

/** A datetime-local input's value for `date`, in the visitor's time zone. */
function inputTime(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** ISO 8601 with the visitor's UTC offset, as the gateway wants `at`. */
function isoWithOffset(date) {
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  return `${inputTime(date)}:00${sign}${pad(Math.trunc(offset / 60))}:${pad(offset % 60)}`;
}
