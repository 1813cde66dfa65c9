// "Call me back" in the panel (Request-a-Call): the offer, the form (country, number, name,
// when),
// its refusals next to the field they are about, and the accepted callback's progress in
// the status line until it is over. The requests and the polling are in callback.js; the
// gateway's limits (countries, how many days ahead) come from the site's settings.
import { CallbackRefused, CallbackWatch, requestCallback } from './callback.js';
import { h } from './dom.js';
import { fallbacks, nobodyAnswered } from './fallback.js';
import { callbackDaysAhead } from './settings.js';
import { fill } from './words.js';

// Refusals of a callback request that are about the number, or about the time.
const NUMBER_CODES = new Set([
  'number_missing', 'number_invalid', 'country_not_allowed', 'number_type_refused', 'number_limit',
]);
const TIME_CODES = new Set(['time_missing', 'bad_time', 'closed', 'closed_now']);
// Callback states in which the visitor may still cancel it (nobody has been called yet).
const CANCELLABLE = new Set(['scheduled', 'retrying']);

export class CallbackForm {
  /** `host`: the <click-to-call> element. */
  constructor(host) {
    this.host = host;
    this.watch = null; // the callback being followed (CallbackWatch), if any
    this.text = ''; // the words of its latest progress
    this.shown = false; // whether the status line shows the callback's progress
    this.sending = false; // a request is on its way
    this.state = ''; // the state of the followed callback (callback.js)
    this.render();
  }

  render() {
    const ui = {};
    ui.offer = h('button', {
      type: 'button', class: 'offer', 'aria-expanded': 'false', 'aria-controls': 'callback-form', hidden: '',
    });
    ui.intro = h('p', { class: 'intro', id: 'callback-intro', tabindex: '-1' });
    ui.numberLabel = h('label', { for: 'cb-number' });
    ui.number = h('input', {
      type: 'tel', id: 'cb-number', name: 'tel', autocomplete: 'tel', inputmode: 'tel', maxlength: '40',
      required: '', enterkeyhint: 'send', 'aria-describedby': 'cb-number-hint cb-number-error',
    });
    // The number's country (a flag and its calling code), among the site's; the gateway
    // reads a national number (no +) as one of it.
    ui.country = h('select', { id: 'cb-country', name: 'country', autocomplete: 'country' });
    ui.numberRow = h('div', { class: 'number-row' }, ui.country, ui.number);
    ui.numberHint = h('p', { class: 'hint', id: 'cb-number-hint' });
    ui.numberError = h('p', { class: 'error', id: 'cb-number-error', 'aria-live': 'polite' });
    ui.nameLabel = h('label', { for: 'cb-name' });
    ui.name = h('input', { type: 'text', id: 'cb-name', name: 'name', autocomplete: 'name', maxlength: '64' });
    ui.whenLegend = h('legend');
    ui.soon = h('input', { type: 'radio', name: 'when', value: 'soon', checked: '' });
    ui.soonText = h('span');
    ui.soonOption = h('label', { class: 'choice' }, ui.soon, ui.soonText);
    ui.atTime = h('input', { type: 'radio', name: 'when', value: 'at' });
    ui.atTimeLabel = h('span');
    ui.timeLabel = h('label', { for: 'cb-at' });
    ui.at = h('input', { type: 'datetime-local', id: 'cb-at', name: 'at', 'aria-describedby': 'cb-at-hint cb-at-error' });
    ui.timeHint = h('p', { class: 'hint', id: 'cb-at-hint' });
    ui.atError = h('p', { class: 'error', id: 'cb-at-error', 'aria-live': 'polite' });
    ui.atField = h('div', { class: 'field', hidden: '' }, ui.timeLabel, ui.at, ui.timeHint, ui.atError);
    ui.error = h('p', { class: 'error', id: 'cb-error', 'aria-live': 'polite' });
    ui.send = h('button', { type: 'submit', class: 'send primary' });
    ui.cancel = h('button', { type: 'button', class: 'cancel-callback', hidden: '' });
    ui.form = h(
      'form',
      { class: 'callback', id: 'callback-form', novalidate: '', 'aria-labelledby': 'callback-intro', hidden: '' },
      ui.intro,
      h('div', { class: 'field' }, ui.numberLabel, ui.numberRow, ui.numberHint, ui.numberError),
      h('div', { class: 'field' }, ui.nameLabel, ui.name),
      h('fieldset', { class: 'when' }, ui.whenLegend, ui.soonOption, h('label', { class: 'choice' }, ui.atTime, ui.atTimeLabel), ui.atField),
      ui.error,
      ui.send,
    );
    this.ui = ui;
    this.elements = [ui.offer, ui.form, ui.cancel];

    ui.offer.addEventListener('click', () => this.toggle());
    ui.cancel.addEventListener('click', () => this.cancel());
    ui.form.addEventListener('submit', (event) => {
      event.preventDefault(); // no navigation: the widget sends it
      this.submit();
    });
    for (const radio of [ui.soon, ui.atTime]) radio.addEventListener('change', () => this.showTimeField());
  }

  label(words, settings) {
    const ui = this.ui;
    const c = words.callback;
    ui.offer.textContent = c.offer;
    ui.intro.textContent = c.intro;
    ui.numberLabel.textContent = c.number;
    ui.numberHint.textContent = settings.callback ? fill(c.countries, { countries: this.countryNames() }) : '';
    ui.country.setAttribute('aria-label', c.country);
    this.fillCountries(settings);
    ui.nameLabel.textContent = `${c.name} ${words.optional}`;
    ui.whenLegend.textContent = c.when;
    ui.atTimeLabel.textContent = c.atTime;
    ui.timeLabel.textContent = c.time;
    ui.timeHint.textContent = c.timeHint;
    ui.send.textContent = c.send;
    ui.cancel.textContent = c.cancel;
  }

  /** The choice of the number's country: one option per site country (flag, calling
   * code, name in the visitor's language), the visitor's own country first chosen when it
   * is one of them (their browser's region), else the site's first. Only shown when the
   * site calls back more than one country. */
  fillCountries(settings) {
    const select = this.ui.country;
    const codes = callbackCountries(settings);
    const calling = (settings.callback && settings.callback.calling_codes) || {};
    const names = this.regionNames(codes);
    const chosen = codes.includes(select.value) ? select.value : preferredCountry(codes);
    select.replaceChildren(
      ...codes.map((code, index) => {
        const prefix = calling[code] ? ` +${calling[code]}` : '';
        return h('option', { value: code }, `${flag(code)}${prefix} ${names[index]}`);
      }),
    );
    select.value = chosen || '';
    select.hidden = codes.length < 2;
  }

  /** `codes` named in the visitor's language (the codes in an old browser). */
  regionNames(codes) {
    try {
      const regions = new Intl.DisplayNames([this.host.time.locale], { type: 'region' });
      return codes.map((code) => regions.of(code) || code);
    } catch {
      return codes;
    }
  }

  /** The site's callback countries, named in the visitor's language ("the United
   * Kingdom and Ireland"). */
  countryNames() {
    const locale = this.host.time.locale;
    const names = this.regionNames(callbackCountries(this.host.settings));
    try {
      return new Intl.ListFormat(locale, { style: 'long', type: 'conjunction' }).format(names);
    } catch {
      return names.join(', ');
    }
  }

  /** Whether "Call me back" is offered now: the site's fallback has "callback" and it
   * takes callbacks, nobody can answer (closed, or the call ended busy / unanswered /
   * refused as closed or busy: fallback.js), and no callback of this page is on its way. */
  offered() {
    const settings = this.host.settings;
    if (!fallbacks(settings).includes('callback') || !settings.callback) return false;
    if (this.sending) return true;
    if (this.watch && !this.watch.stopped) return false;
    return nobodyAnswered(this.host.detail);
  }

  /** Show what can be used now. */
  update() {
    const ui = this.ui;
    const offered = this.offered();
    ui.offer.hidden = !offered;
    ui.cancel.hidden = !(this.watch && !this.watch.stopped && CANCELLABLE.has(this.state));
    if (!offered) ui.form.hidden = true;
    ui.offer.setAttribute('aria-expanded', String(!ui.form.hidden));
  }

  /** The control to focus when the panel opens on a closed site. */
  firstControl() {
    const ui = this.ui;
    if (ui.offer.hidden) return null;
    return ui.form.hidden ? ui.offer : ui.number;
  }

  /** "Call me back": show the form (focusing its number field, except on a phone, where
   * the keyboard would cover the form) or hide it. */
  toggle() {
    const ui = this.ui;
    if (ui.form.hidden) {
      this.prepare();
      ui.form.hidden = false;
      if (this.host.smallScreen()) ui.intro.focus();
      else ui.number.focus();
    } else {
      ui.form.hidden = true;
    }
    ui.offer.setAttribute('aria-expanded', String(!ui.form.hidden));
  }

  /** The form's choices as of now: "Now" while open, "When we open (<time>)" when closed,
   * or a time of the visitor's choosing (in their time zone, within the gateway's limit of
   * days ahead; the gateway checks it is within business hours). The name comes from the
   * visitor details, if typed there. */
  prepare() {
    const ui = this.ui;
    const host = this.host;
    const c = host.words.callback;
    const settings = host.settings;
    const typedName = host.callPanel.ui.name.value.trim();
    if (!ui.name.value && typedName) ui.name.value = typedName;
    const closed = settings.open === false || host.detail.phase === 'closed';
    const opening = closed && settings.next_opening ? new Date(settings.next_opening) : null;
    ui.soonText.textContent = !closed
      ? c.now
      : opening
        ? fill(c.atOpening, { when: host.time.opening(settings.next_opening, settings.hours) })
        : '';
    ui.soonOption.hidden = closed && !opening;
    if (ui.soonOption.hidden) ui.atTime.checked = true;
    const now = new Date();
    ui.at.min = inputTime(now);
    const days = callbackDaysAhead(settings);
    if (days) ui.at.max = inputTime(new Date(now.getTime() + days * 86400e3));
    else ui.at.removeAttribute('max');
    if (!ui.at.value) {
      // The opening, else the next quarter hour an hour from now.
      ui.at.value = inputTime(opening || new Date(Math.ceil((now.getTime() + 3600e3) / 900e3) * 900e3));
    }
    this.showTimeField();
  }

  showTimeField() {
    this.ui.atField.hidden = !this.ui.atTime.checked;
  }

  async submit() {
    const ui = this.ui;
    const host = this.host;
    if (this.sending || !host.session) return;
    this.clearErrors();
    const number = ui.number.value.trim();
    if (!number) {
      this.refused('number_missing', '');
      return;
    }
    const fields = { site: host.session.siteId, number };
    if (ui.country.value) fields.country = ui.country.value;
    const name = ui.name.value.trim();
    if (name) fields.name = name;
    const page = host.pageAddress();
    if (page) fields.page = page;
    const reason = host.settings.visitor_details === 'off' ? '' : host.callPanel.ui.reason.value.trim();
    if (reason) fields.reason = reason;
    if (ui.atTime.checked) {
      const at = new Date(ui.at.value);
      if (!ui.at.value || Number.isNaN(at.getTime())) {
        this.refused('time_missing', '');
        return;
      }
      fields.at = isoWithOffset(at);
    } else if (host.settings.open === false && host.settings.next_opening) {
      fields.at = host.settings.next_opening;
    }
    this.sending = true;
    this.shown = true;
    this.progress({ state: 'sending' }, host.words.callback.sending);
    try {
      const created = await requestCallback(host.base, fields, () => host.writeStatus(host.words.checking, ''));
      this.sending = false;
      this.follow(created);
    } catch (err) {
      this.sending = false;
      let code = 'offline';
      if (err instanceof CallbackRefused) code = err.code === 'closed' && !fields.at ? 'closed_now' : err.code;
      this.refused(code, err.message);
    }
  }

  /** The words of a refused request, by its code, in the visitor's language. */
  refusalText(code, message) {
    const words = this.host.words;
    const c = words.callback;
    const text = code === 'offline' ? c.offline : c.refusals[code] || words.refusals[code];
    if (!text) return fill(c.failed, { reason: message });
    const days = callbackDaysAhead(this.host.settings);
    if (code === 'bad_time' && !days) return fill(c.failed, { reason: message });
    return fill(text, { countries: this.countryNames(), days });
  }

  /** A refused request: the reason in words next to the field it is about (which gets
   * aria-invalid and the focus), or above the send button. */
  refused(code, message) {
    const ui = this.ui;
    const host = this.host;
    const text = this.refusalText(code, message);
    let input = null;
    let error = ui.error;
    if (NUMBER_CODES.has(code)) {
      input = ui.number;
      error = ui.numberError;
    } else if (TIME_CODES.has(code)) {
      ui.atTime.checked = true;
      this.showTimeField();
      input = ui.at;
      error = ui.atError;
    }
    error.textContent = text;
    this.shown = false; // the status line says again what it said before
    host.writeStatus(...host.baseWords);
    host.emit('callbackstatechange', { state: 'refused', code, text });
    host.updateControls();
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } else {
      ui.send.focus();
    }
  }

  clearErrors() {
    const ui = this.ui;
    for (const error of [ui.numberError, ui.atError, ui.error]) error.textContent = '';
    for (const input of [ui.number, ui.at]) input.removeAttribute('aria-invalid');
  }

  /** Follow the accepted callback's progress (polling the gateway) in the status line. */
  follow(created) {
    if (this.watch) this.watch.stop();
    const watch = new CallbackWatch(this.host.base, created);
    this.watch = watch;
    watch.addEventListener('progress', (event) => this.onProgress(event.detail));
    this.ui.form.hidden = true;
    watch.start();
  }

  onProgress(detail) {
    const host = this.host;
    const c = host.words.callback;
    // The visitor's phone rings then: in their own time zone.
    const when = detail.due_at ? host.time.when(new Date(detail.due_at * 1000)) : '';
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
    this.progress(detail, text);
    host.updateControls();
  }

  /** The visitor no longer wants the callback they are waiting for. */
  async cancel() {
    const watch = this.watch;
    if (!watch || watch.stopped) return;
    const host = this.host;
    this.ui.cancel.disabled = true;
    try {
      await watch.cancel();
    } catch (err) {
      const reason = err instanceof CallbackRefused ? this.refusalText(err.code, err.message) : host.words.callback.offline;
      host.writeStatus(this.text, fill(host.words.callback.cancelFailed, { reason }));
    } finally {
      this.ui.cancel.disabled = false;
    }
  }

  progress(detail, text) {
    const host = this.host;
    this.state = detail.state;
    this.text = text;
    if (this.shown && !host.inCall()) host.writeStatus(text, '');
    host.emit('callbackstatechange', { ...detail, text });
  }

  dispose() {
    if (this.watch) this.watch.stop();
  }
}

/** The ISO 3166 codes of the countries the site calls back. */
function callbackCountries(settings) {
  const codes = (settings.callback && settings.callback.countries) || [];
  return codes.filter((code) => /^[A-Z]{2}$/.test(code));
}

/** The country of `codes` the visitor's browser says they are in (the region of its
 * language, en-IE: IE), else the first of `codes`. */
function preferredCountry(codes, languages = [navigator.language, ...(navigator.languages || [])]) {
  for (const tag of languages) {
    let region = '';
    try {
      region = new Intl.Locale(String(tag)).region || ''; // only one the tag names: en-IE
    } catch {
      region = '';
    }
    if (codes.includes(region)) return region;
  }
  return codes[0] || '';
}

/** The flag emoji of a country code: its two regional indicator symbols. */
function flag(code) {
  return String.fromCodePoint(...[...code].map((letter) => 0x1f1e6 + letter.charCodeAt(0) - 65));
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
