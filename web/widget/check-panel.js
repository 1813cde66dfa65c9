// "Test my microphone and connection" in the panel, for sites that offer it ([sites.widget]
// precheck): the link under Call, the microphone's level while the test runs, and the
// verdict in words (precheck.js measures). The status line says what the test is doing,
// then the verdict, until a call starts.
import { h, icon } from './dom.js';
import { ConnectionCheck } from './precheck.js';
import { refusalWords } from './call-panel.js';
import { fill } from './words.js';

export class CheckPanel {
  /** `host`: the <click-to-call> element. */
  constructor(host) {
    this.host = host;
    this.check = null; // the ConnectionCheck running, if any
    this.result = null; // the last verdict, until a call starts
    this.render();
  }

  render() {
    const ui = {};
    ui.startText = h('span');
    ui.start = h('button', { type: 'button', class: 'precheck-start', hidden: '' }, icon('mic'), ui.startText);
    ui.meterLabel = h('span');
    ui.meter = h('meter', { min: '0', max: '1', value: '0' });
    ui.level = h('label', { class: 'level precheck-level', hidden: '' }, ui.meterLabel, ui.meter);
    ui.microphone = h('li');
    ui.connection = h('li');
    ui.measured = h('p', { class: 'hint precheck-measured', hidden: '' });
    ui.results = h('ul', { class: 'precheck-results', hidden: '' }, ui.microphone, ui.connection);
    this.ui = ui;
    this.elements = [ui.start, ui.level, ui.results, ui.measured];
    ui.start.addEventListener('click', () => this.start());
  }

  label(words) {
    this.ui.startText.textContent = words.precheck.start;
    this.ui.meterLabel.textContent = words.micLevel;
  }

  get running() {
    return this.check !== null;
  }

  /** Show what can be used: the link when the site offers the test and a call could
   * start now; the verdict until a call starts. */
  update(phase, canCall, settings) {
    const ui = this.ui;
    const idle = canCall && phase !== 'loading' && !this.running;
    ui.start.hidden = !(settings.precheck && idle && this.host.session && this.host.session.ready);
    ui.level.hidden = !this.running;
    const shown = Boolean(this.result) && !this.running && canCall;
    ui.results.hidden = !shown;
    ui.measured.hidden = !shown || !ui.measured.textContent;
  }

  /** How the test is going, for the status line's dot: running | ok | problem | ''. */
  get verdict() {
    if (this.running) return 'running';
    if (!this.result) return '';
    return this.result.microphone === 'ok' && this.result.connection === 'good' ? 'ok' : 'problem';
  }

  /** [status, help] while the test runs or after it, else null. */
  statusWords() {
    const w = this.host.words.precheck;
    const verdict = this.verdict;
    if (!verdict) return null;
    if (verdict === 'running') return [w.running, w.runningHelp];
    return [verdict === 'ok' ? w.ready : w.problem, ''];
  }

  async start() {
    const host = this.host;
    if (this.running || !host.session || !host.session.ready) return;
    host.audio.unlock(); // inside the click: the level meter needs the AudioContext
    this.result = null;
    const check = new ConnectionCheck(host.session, host.audio, (level) => {
      this.ui.meter.value = level;
    });
    this.check = check;
    host.refresh();
    host.emit('precheckstatechange', { state: 'running' });
    const result = await check.run();
    if (this.check !== check) return; // cancelled: a call started
    this.check = null;
    this.result = result;
    this.show(result);
    host.refresh();
    host.emit('precheckstatechange', { state: 'done', ...result });
  }

  /** The verdict in words, one line for the microphone and one for the connection. */
  show(result) {
    const ui = this.ui;
    const words = this.host.words;
    const w = words.precheck;
    const problem = words.problems[result.microphone];
    const micOk = result.microphone === 'ok';
    const micText = micOk ? w.micOk : result.microphone === 'silent' ? w.micSilent : problem ? problem.join(' ') : w.micSilent;
    line(ui.microphone, micOk ? 'ok' : 'bad', micText);
    let netText;
    let netState = 'bad';
    switch (result.connection) {
      case 'good':
        netText = w.good;
        netState = 'ok';
        break;
      case 'weak':
        netText = w.weak;
        netState = 'warn';
        break;
      case 'unreachable':
        netText = w.unreachable;
        break;
      case 'skipped':
        netText = w.skipped;
        netState = 'warn';
        break;
      default: {
        const reason = result.connection === 'refused' ? refusalWords(words, result.code, result.message) : result.message;
        netText = fill(w.failed, { reason: reason || '' });
      }
    }
    line(ui.connection, netState, netText);
    const measured = result.connection === 'good' || result.connection === 'weak';
    ui.measured.textContent = measured
      ? fill(w.measured, {
          loss: Math.round(result.loss * 100),
          rtt: result.rtt === null ? '?' : Math.round(result.rtt * 1000),
        })
      : '';
  }

  /** A call starts (or the widget leaves): the test stops, its verdict goes. */
  cancel() {
    if (this.check) this.check.cancel();
    this.check = null;
    this.result = null;
  }
}

const MARKS = { ok: 'check', warn: 'warning', bad: 'cross' };

function line(item, state, text) {
  item.className = `result-${state}`;
  item.replaceChildren(icon(MARKS[state]), h('span', {}, text));
}
