// The call part of the panel: the visitor details asked before a call, the one primary
// action of each state (Call, or Hang up during a call), Mute ⇄ Unmute, the keypad behind
// its button, the call timer, the microphone level and the volume. It says in words what a
// call state means (status and help), and after a refusal that names when calling works
// again (the gateway's `retry_after`), keeps Call disabled until then, saying so. During a
// call it watches the connection (quality.js) and says when it is weak.
import { h, icon } from './dom.js';
import { QualityWatch } from './quality.js';
import { fill } from './words.js';

// Causes shown with the SIP status that ended the call.
const WITH_STATUS = new Set(['phone_system_refused', 'no_common_codec', 'redirect_failed']);

const DIGITS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'];
const DIGIT_NAMES = { '*': 'star', '#': 'pound' };
export const IN_CALL = new Set(['microphone', 'connecting', 'ringing', 'in-call', 'on-hold']);
export const TALKING = new Set(['in-call', 'on-hold']);
// Causes of an ended call that are problems (an `error` event, and words on what to do).
export const PROBLEMS = new Set([
  'mic-denied', 'mic-blocked', 'no-mic', 'mic-busy', 'mic-failed', 'network',
  'connection_lost', 'refused', 'error',
]);
const MAX_RETRY_TIMER_MS = 24 * 3600 * 1000;

export class CallPanel {
  /** `host`: the <click-to-call> element (its session, settings, words and actions). */
  constructor(host) {
    this.host = host;
    this.timer = null;
    this.answeredAt = 0;
    this.stopMeter = () => {};
    this.retryAt = 0; // ms since the epoch before which the gateway refuses a new call
    this.retryTimer = null;
    this.quality = null; // the QualityWatch of the call going on
    this.weak = false; // whether the call's connection is weak now
    this.render();
  }

  render() {
    const ui = {};
    ui.timer = h('p', { class: 'timer', role: 'timer', hidden: '' });
    ui.qualityText = h('span');
    ui.quality = h('p', { class: 'quality', 'aria-live': 'polite', hidden: '' }, icon('warning'), ui.qualityText);
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
    ui.callText = h('span');
    ui.call = h('button', { type: 'button', class: 'call primary', hidden: '' }, icon('phone'), ui.callText);
    ui.hangupText = h('span');
    ui.hangup = h('button', { type: 'button', class: 'hangup primary', hidden: '' }, icon('phone-down'), ui.hangupText);
    ui.muteIcon = h('span', { class: 'icon-slot' }, icon('mic'));
    ui.muteText = h('span');
    ui.mute = h('button', { type: 'button', class: 'mute tool', 'aria-pressed': 'false', hidden: '' }, ui.muteIcon, ui.muteText);
    ui.keypadText = h('span');
    ui.keypadToggle = h(
      'button',
      { type: 'button', class: 'keypad-toggle tool', 'aria-expanded': 'false', 'aria-controls': 'keypad', hidden: '' },
      icon('keypad'),
      ui.keypadText,
    );
    ui.keys = DIGITS.map((digit) => h('button', { type: 'button', 'data-digit': digit }, digit));
    ui.keypad = h('div', { class: 'keypad', id: 'keypad', role: 'group', hidden: '' }, ...ui.keys);
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
    ui.tools = h('div', { class: 'tools', hidden: '' }, ui.mute, ui.keypadToggle);
    ui.audio = h('audio', { class: 'remote' });
    this.ui = ui;
    this.before = [ui.timer, ui.quality, ui.details]; // under the status line
    this.actions = [ui.call, ui.hangup]; // the primary action
    this.after = [ui.tools, ui.keypad, ui.audioControls, ui.audio];

    const host = this.host;
    ui.call.addEventListener('click', () => host.startCall());
    ui.hangup.addEventListener('click', () => host.hangup());
    ui.mute.addEventListener('click', () => this.toggleMute());
    ui.keypadToggle.addEventListener('click', () => this.toggleKeypad());
    ui.volume.addEventListener('input', () => {
      ui.audio.volume = Number(ui.volume.value) / 100;
    });
    for (const key of ui.keys) key.addEventListener('click', () => this.pressKey(key.dataset.digit));
    for (const input of [ui.name, ui.reason]) {
      input.addEventListener('keydown', (event) => {
        if (event.key !== 'Enter' || ui.call.hidden || ui.call.disabled) return;
        // Else the same Enter would press Hang up, which takes the focus as the call starts.
        event.preventDefault();
        host.startCall();
      });
    }
  }

  /** Label everything in the visitor's language. */
  label(words, settings) {
    const ui = this.ui;
    ui.hangupText.textContent = words.hangup;
    ui.keypadText.textContent = words.keypad;
    ui.keypad.setAttribute('aria-label', words.keypad);
    for (const key of ui.keys) {
      const name = DIGIT_NAMES[key.dataset.digit];
      if (name) key.setAttribute('aria-label', words[name]);
    }
    ui.meterLabel.textContent = words.micLevel;
    ui.qualityText.textContent = words.weakConnection;
    ui.volumeLabel.textContent = words.volume;
    ui.timer.setAttribute('aria-label', words.callTime);
    ui.reasonLabel.textContent = `${words.reason} ${words.optional}`;
    const required = settings.visitor_details === 'required';
    ui.name.required = required;
    ui.nameLabel.textContent = required ? words.name : `${words.name} ${words.optional}`;
    this.labelToggles();
  }

  labelToggles() {
    const ui = this.ui;
    const words = this.host.words;
    const muted = Boolean(this.host.session && this.host.session.muted);
    ui.muteText.textContent = muted ? words.unmute : words.mute;
    ui.mute.setAttribute('aria-pressed', String(muted));
    ui.muteIcon.replaceChildren(icon(muted ? 'mic-off' : 'mic'));
    const waiting = this.retryAt > Date.now();
    ui.callText.textContent = waiting ? fill(words.callFrom, { time: this.retryTime() }) : words.call;
  }

  // ------------------------------------------------------------------ words

  /** [status, help] of a call state (`detail` of a session status). */
  stateWords(detail) {
    const w = this.host.words;
    switch (detail.phase) {
      case 'microphone':
        return [w.microphone, w.microphoneHelp];
      case 'connecting':
        return [w.connecting, this.mutedHelp()];
      case 'ringing':
        return [w.ringing, this.mutedHelp()];
      case 'in-call':
        return [w.inCall, this.mutedHelp()];
      case 'on-hold':
        return [w.onHold, w.onHoldHelp];
      case 'transferring':
        return [w.transferring, w.transferringHelp];
      case 'ended':
        return this.endedWords(detail);
      default:
        return [detail.phase, ''];
    }
  }

  mutedHelp() {
    return this.host.session && this.host.session.muted ? this.host.words.mutedHelp : '';
  }

  endedWords(detail) {
    const w = this.host.words;
    const { cause } = detail;
    if (cause === 'hangup') return [w.ended, ''];
    if (cause === 'refused') {
      const reason = refusalWords(w, detail.code, detail.message);
      const retry = this.retryAt > Date.now() ? fill(w.retryAt, { when: this.host.time.when(new Date(this.retryAt)) }) : '';
      return [fill(w.failed, { reason }), retry];
    }
    if (cause === 'error') return [fill(w.failed, { reason: detail.message }), ''];
    if (w.problems[cause]) return problemWords(w, detail, w.failed);
    let words = w.causes[cause] || cause;
    // The phone system's status, in standard words (never the peer's own text), where it
    // says what the cause's words cannot ("busy" needs no "486 Busy Here").
    if (detail.reason && WITH_STATUS.has(cause)) {
      words = fill(w.causeWithReason, { cause: words, reason: detail.reason });
    }
    return [fill(w.endedBecause, { cause: words }), w.causeHelp[cause] || ''];
  }

  // ------------------------------------------------------------------ state

  /** A new state from the session: timer, meter, refusal's retry time. */
  onState(detail) {
    if (detail.phase === 'in-call') {
      this.startTimer();
      this.watchQuality();
    }
    if (detail.phase === 'ended') {
      this.stop();
      const wait = Number(detail.retry_after);
      if (detail.cause === 'refused' && wait > 0) this.waitBeforeRetry(wait);
      this.ui.keypad.hidden = true;
    }
  }

  /** The gateway will refuse calls for `seconds`: Call says from when it works again. */
  waitBeforeRetry(seconds) {
    // Rounded up to the minute shown: the button never comes back before it works.
    this.retryAt = Math.ceil((Date.now() + seconds * 1000) / 60000) * 60000;
    clearTimeout(this.retryTimer);
    const wait = this.retryAt - Date.now();
    if (wait < MAX_RETRY_TIMER_MS) {
      this.retryTimer = setTimeout(() => {
        this.retryAt = 0;
        this.host.refresh();
      }, wait);
    }
  }

  retryTime() {
    return this.host.time.format(new Date(this.retryAt), { hour: '2-digit', minute: '2-digit' });
  }

  /** Show what can be used in `phase`; `canCall`: Call would start a call now or once
   * connected. Returns the control that should get the focus if it was lost. */
  update(phase, canCall, settings) {
    const ui = this.ui;
    const session = this.host.session;
    const calling = IN_CALL.has(phase);
    const talking = TALKING.has(phase);
    const waiting = this.retryAt > Date.now();
    ui.call.hidden = !canCall && !waiting;
    ui.call.disabled = waiting;
    ui.hangup.hidden = !calling;
    ui.tools.hidden = !calling || phase === 'microphone';
    ui.mute.hidden = ui.tools.hidden;
    ui.keypadToggle.hidden = !talking;
    if (!talking) ui.keypad.hidden = true;
    ui.keypadToggle.setAttribute('aria-expanded', String(!ui.keypad.hidden));
    // While a voicemail is left too: the level shows the microphone works, the volume is
    // the greeting's.
    const leaving = phase === 'voicemail' && this.host.detail.step !== 'microphone';
    ui.audioControls.hidden = !(calling || leaving) || phase === 'microphone';
    ui.timer.hidden = !talking;
    ui.quality.hidden = !talking || !this.weak;
    ui.details.hidden = settings.visitor_details === 'off' || !canCall;
    this.labelToggles();
    if (calling) return ui.hangup;
    return canCall && !waiting ? ui.call : null;
  }

  startTimer() {
    if (this.timer !== null) return; // on-hold and back: the call goes on
    this.answeredAt = Date.now();
    const tick = () => {
      const seconds = Math.max(0, Math.floor((Date.now() - this.answeredAt) / 1000));
      this.ui.timer.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, '0')}`;
    };
    tick();
    this.timer = setInterval(tick, 1000);
  }

  /** The microphone's level on the meter while the call has it. */
  meter(audio, stream) {
    this.stopMeter = audio.meter(stream, (level) => {
      this.ui.meter.value = level;
    });
  }

  /** Once answered: warn in words while the call's connection is weak (with hysteresis,
   * quality.js), and tell the page (`quality` events). */
  watchQuality() {
    const pc = this.host.session && this.host.session.peerConnection;
    if (this.quality || !pc) return;
    this.quality = new QualityWatch(pc);
    this.quality.addEventListener('change', (event) => {
      this.weak = event.detail.weak;
      this.ui.quality.hidden = !this.weak;
      this.host.ui.root.dataset.quality = this.weak ? 'weak' : '';
      this.host.emit('quality', event.detail);
    });
  }

  stop() {
    if (this.quality) this.quality.stop();
    this.quality = null;
    this.weak = false;
    this.ui.quality.hidden = true;
    if (this.host.ui) this.host.ui.root.dataset.quality = '';
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.stopMeter();
    this.stopMeter = () => {};
    this.ui.audio.srcObject = null;
  }

  dispose() {
    this.stop();
    clearTimeout(this.retryTimer);
  }

  // ------------------------------------------------------------------ actions

  /** {name, reason, page}, or null when the site needs a name that is missing (the
   * visitor is told, and the name field gets the focus). */
  visitorDetails(page) {
    const ui = this.ui;
    const visitor = { page };
    if (this.host.settings.visitor_details === 'off') return visitor;
    visitor.name = ui.name.value.trim();
    visitor.reason = ui.reason.value.trim();
    if (ui.name.required && !visitor.name) {
      ui.name.setAttribute('aria-invalid', 'true');
      this.host.writeHelp(this.host.words.nameNeeded);
      ui.name.focus();
      return null;
    }
    ui.name.removeAttribute('aria-invalid');
    return visitor;
  }

  pressKey(digit) {
    const host = this.host;
    if (!host.session || !host.session.sendDigits(digit)) return;
    host.audio.keyTone(digit);
    const key = this.ui.keys.find((button) => button.dataset.digit === digit);
    if (key) {
      key.classList.add('pressed');
      setTimeout(() => key.classList.remove('pressed'), 150);
    }
  }

  toggleMute() {
    const session = this.host.session;
    if (!session || !session.call) return;
    session.setMuted(!session.muted);
    this.host.refresh();
  }

  toggleKeypad() {
    this.ui.keypad.hidden = !this.ui.keypad.hidden;
    this.ui.keypadToggle.setAttribute('aria-expanded', String(!this.ui.keypad.hidden));
  }
}

/** The words for a refusal code of the gateway, else the gateway's own message. */
export function refusalWords(words, code, message) {
  return (code && words.refusals[code]) || message || code || '';
}

/** [status, help] of a problem (microphone, browser) or a refusal. */
export function problemWords(words, detail, template) {
  const problem = words.problems[detail.cause];
  if (problem) return problem.map((text) => fill(text, { reason: detail.message || '' }));
  const reason = detail.cause === 'refused' ? refusalWords(words, detail.code, detail.message) : detail.message;
  return [fill(template, { reason: reason || '' }), ''];
}
