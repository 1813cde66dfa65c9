// "Leave a message" (voicemail) in the panel, for sites whose `fallback` offers it: the
// offer when nobody can answer (closed, busy, no answer, every line down), then while the
// message is recorded a timer against the longest message and **Send**. The recording is
// the gateway's, from the connection's own audio (session.js: startVoicemail); nothing is
// uploaded by the page. Hanging up (the JS API's hangup(), or leaving the page) sends too.
import { h, icon } from './dom.js';
import { nobodyAnswered } from './fallback.js';
import { fill } from './words.js';

export class VoicemailPanel {
  /** `host`: the <click-to-call> element. */
  constructor(host) {
    this.host = host;
    this.timer = null;
    this.startedAt = 0;
    this.maxSeconds = 0;
    this.render();
  }

  render() {
    const ui = {};
    ui.offerText = h('span');
    ui.offer = h('button', { type: 'button', class: 'offer voicemail-offer', hidden: '' }, icon('mic'), ui.offerText);
    ui.timer = h('p', { class: 'timer voicemail-timer', role: 'timer', hidden: '' });
    ui.sendText = h('span');
    ui.send = h('button', { type: 'button', class: 'send send-voicemail primary', hidden: '' }, icon('check'), ui.sendText);
    this.ui = ui;
    ui.offer.addEventListener('click', () => this.start());
    ui.send.addEventListener('click', () => this.send());
  }

  label(words) {
    const v = words.voicemail;
    this.ui.offerText.textContent = v.offer;
    this.ui.sendText.textContent = v.send;
    this.ui.timer.setAttribute('aria-label', v.time);
  }

  /** Whether "Leave a message" is offered now. */
  offered() {
    const { settings, detail, session } = this.host;
    const fallback = Array.isArray(settings.fallback) ? settings.fallback : [];
    if (!fallback.includes('voicemail') || !settings.voicemail) return false;
    if (session && session.call) return false;
    return nobodyAnswered(detail);
  }

  /** Show what can be used in the current state; returns the control for the focus. */
  update() {
    const ui = this.ui;
    const { detail } = this.host;
    const leaving = detail.phase === 'voicemail';
    ui.offer.hidden = !this.offered();
    const recording = leaving && detail.step === 'recording';
    ui.send.hidden = !leaving || detail.step === 'sending' || detail.step === 'microphone';
    ui.send.disabled = !recording && detail.step !== 'greeting';
    ui.timer.hidden = !recording;
    if (recording) this.startTimer(detail.maxSeconds);
    else this.stopTimer();
    if (leaving) return ui.send.hidden ? null : ui.send;
    return null;
  }

  /** [status, help] of a voicemail step, or of how one ended. */
  stateWords(detail) {
    const v = this.host.words.voicemail;
    if (detail.phase === 'voicemail') {
      switch (detail.step) {
        case 'microphone':
          return [this.host.words.microphone, this.host.words.microphoneHelp];
        case 'connecting':
          return [v.connecting, ''];
        case 'greeting':
          return [v.greeting, v.greetingHelp];
        case 'recording':
          return [v.recording, v.recordingHelp];
        case 'sending':
          return [v.sending, ''];
        default:
          return [v.connecting, ''];
      }
    }
    if (detail.cause === 'voicemail_sent') return [v.sent, ''];
    return [fill(v.failed, { reason: v.reasons[detail.reason] || v.reasons.error }), ''];
  }

  start() {
    const host = this.host;
    const session = host.session;
    if (!session || session.call || !this.offered()) return;
    host.checkPanel.cancel();
    host.ratingForm.clear();
    // Inside the click: the greeting plays through the widget's <audio>, unlocked now.
    host.audio.unlock();
    const remote = new MediaStream();
    const audio = host.callPanel.ui.audio;
    audio.srcObject = remote;
    audio.play().catch(() => {});
    const visitor = { page: host.pageAddress() };
    const name = host.callPanel.ui.name.value.trim();
    if (host.settings.visitor_details !== 'off' && name) visitor.name = name;
    const source = host.sourceTag();
    if (source) visitor.source = source;
    session.startVoicemail(remote, visitor);
  }

  send() {
    const session = this.host.session;
    if (session) session.sendVoicemail();
  }

  startTimer(maxSeconds) {
    if (this.timer !== null) return;
    this.startedAt = Date.now();
    this.maxSeconds = Number(maxSeconds) || 0;
    const total = clock(this.maxSeconds);
    const tick = () => {
      const seconds = Math.min(this.maxSeconds || Infinity, Math.floor((Date.now() - this.startedAt) / 1000));
      this.ui.timer.textContent = this.maxSeconds ? `${clock(seconds)} / ${total}` : clock(seconds);
    };
    tick();
    this.timer = setInterval(tick, 1000);
  }

  stopTimer() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  dispose() {
    this.stopTimer();
  }
}

function clock(seconds) {
  return `${Math.floor(seconds / 60)}:${String(Math.floor(seconds % 60)).padStart(2, '0')}`;
}
