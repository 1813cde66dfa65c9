"""Debian's chromium driven by Playwright, with a fake microphone playing a WAV file.

Facts (see /work/shared/peers.md): never `playwright install`; launch /usr/bin/chromium;
`--allow-loopback-in-peer-connection` or there is no 127.0.0.1 candidate; mDNS names off;
remote audio reaches WebAudio only when the stream is also attached to a media element (the
call page does that); Chrome's audio processing pulls a steady tone down by ~20 dB but keeps
its frequency exact, so tests assert on frequency.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = "/usr/bin/chromium"


def chromium_args(fake_audio: Path | None) -> list[str]:
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ]
    if fake_audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={fake_audio}")
    return args


@contextlib.asynccontextmanager
async def chromium(fake_audio: Path | None = None) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=chromium_args(fake_audio)
        )
        try:
            yield browser
        finally:
            await browser.close()


# The first element matching a selector in the page or in any open shadow root (the
# widget renders inside one), depth first.
DEEP_QUERY_JS = """
function deepQuery(selector, root = document) {
  const found = root.querySelector(selector);
  if (found) return found;
  for (const element of root.querySelectorAll('*')) {
    if (element.shadowRoot) {
      const inner = deepQuery(selector, element.shadowRoot);
      if (inner) return inner;
    }
  }
  return null;
}
"""

RECORD_STATES_JS = (
    """
() => {
  """
    + DEEP_QUERY_JS
    + """
  window.__states = [];
  const status = deepQuery('[role=status]');
  const note = () => {
    const text = status.textContent.trim();
    if (window.__states[window.__states.length - 1] !== text) window.__states.push(text);
  };
  note();
  new MutationObserver(note).observe(status, {childList: true, subtree: true, characterData: true});
}
"""
)

CAPTURE_REMOTE_AUDIO_JS = (
    """
async (seconds) => {
  """
    + DEEP_QUERY_JS
    + """
  const element = deepQuery('audio');
  const stream = element.srcObject;
  // "In call" can show a moment before the remote description's track event: wait for it.
  for (let i = 0; i < 100 && !(stream && stream.getAudioTracks().length); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const context = new AudioContext();
  await context.resume();
  const source = context.createMediaStreamSource(stream);
  const size = Math.round(context.sampleRate * seconds);
  const samples = new Float32Array(size);
  let filled = 0;
  const processor = context.createScriptProcessor(4096, 1, 1);
  source.connect(processor);
  processor.connect(context.destination);
  await new Promise((resolve) => {
    processor.onaudioprocess = (event) => {
      const input = event.inputBuffer.getChannelData(0);
      const n = Math.min(input.length, size - filled);
      samples.set(input.subarray(0, n), filled);
      filled += n;
      if (filled >= size) resolve();
    };
  });
  processor.disconnect();
  source.disconnect();
  await context.close();
  return {rate: context.sampleRate, samples: Array.from(samples)};
}
"""
)


async def record_states(page: Page) -> None:
    """Start noting every text the page's role=status element shows."""
    await page.evaluate(RECORD_STATES_JS)


async def states(page: Page) -> list[str]:
    return await page.evaluate("() => window.__states")


async def capture_remote_audio(page: Page, seconds: float) -> tuple[np.ndarray, int]:
    """What the page receives from the gateway, as int16 samples and their rate."""
    result = await page.evaluate(CAPTURE_REMOTE_AUDIO_JS, seconds)
    samples = np.asarray(result["samples"], dtype=np.float32)
    return (np.clip(samples, -1, 1) * 32767).astype(np.int16), int(result["rate"])
