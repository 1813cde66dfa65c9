// The widget's own audio: key tones for the keypad and the microphone level meter, on one
// AudioContext that is created (or resumed) inside the Call click, so that autoplay rules
// never keep it silent.

// ITU-T Q.23 keypad frequencies: [row, column] in Hz.
const KEY_TONES = {
  1: [697, 1209], 2: [697, 1336], 3: [697, 1477], A: [697, 1633],
  4: [770, 1209], 5: [770, 1336], 6: [770, 1477], B: [770, 1633],
  7: [852, 1209], 8: [852, 1336], 9: [852, 1477], C: [852, 1633],
  '*': [941, 1209], 0: [941, 1336], '#': [941, 1477], D: [941, 1633],
};
const KEY_TONE_SECONDS = 0.12;
const KEY_TONE_GAIN = 0.08;
const METER_INTERVAL_MS = 60;

export class WidgetAudio {
  constructor() {
    this.context = null;
  }

  /** Call from a user gesture (the Call click): creates or resumes the AudioContext. */
  unlock() {
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (!this.context && AudioContextClass) this.context = new AudioContextClass();
    if (this.context && this.context.state === 'suspended') this.context.resume().catch(() => {});
  }

  /** Play a keypad digit's two tones locally (the far end gets RFC 4733 events). */
  keyTone(digit) {
    const pair = KEY_TONES[digit];
    const context = this.context;
    if (!pair || !context) return;
    const start = context.currentTime;
    const gain = context.createGain();
    gain.gain.setValueAtTime(KEY_TONE_GAIN, start);
    gain.gain.setTargetAtTime(0, start + KEY_TONE_SECONDS, 0.01);
    gain.connect(context.destination);
    for (const frequency of pair) {
      const oscillator = context.createOscillator();
      oscillator.frequency.value = frequency;
      oscillator.connect(gain);
      oscillator.start(start);
      oscillator.stop(start + KEY_TONE_SECONDS + 0.05);
    }
  }

  /**
   * Report the level (0..1, RMS scaled so that speech reaches the upper half) of `stream`
   * to `onLevel` a few times a second; returns a function that stops it.
   */
  meter(stream, onLevel) {
    const context = this.context;
    if (!context) return () => {};
    const source = context.createMediaStreamSource(stream);
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const sample of samples) sum += sample * sample;
      onLevel(Math.min(1, Math.sqrt(sum / samples.length) * 4));
    }, METER_INTERVAL_MS);
    return () => {
      clearInterval(timer);
      source.disconnect();
      onLevel(0);
    };
  }
}
