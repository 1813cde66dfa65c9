"""What the widget's browser tests share: host pages served from another origin than the
gateway, a browser without automatic microphone permission, screenshots, axe-core.

The host pages are a site's pages as a site owner would write them: the script-tag snippet,
the iframe snippet, or the widget driven by the site's own button through its JS API.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.e2e.conftest import gateway_toml
from tests.support.browser import CHROMIUM, chromium_args
from tests.support.ports import free_udp_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "widget"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
INSECURE_HOST = "insecure.test"  # resolved to 127.0.0.1 by the browser; http: not secure
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}


def widget_browser_args(fake_audio: Path | None) -> list[str]:
    """Chromium with a fake microphone but no automatic permission: a context grants it
    (or not, to see a refusal), as a visitor would."""
    args = [a for a in chromium_args(fake_audio) if a != "--use-fake-ui-for-media-stream"]
    return [*args, f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"]


@contextlib.asynccontextmanager
async def launch(args: list[str], env: dict[str, str] | None = None) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=args, env=env
        )
        try:
            yield browser
        finally:
            await browser.close()


async def new_context(
    browser: Browser, *, microphone: bool = True, **options: object
) -> BrowserContext:
    options.setdefault("viewport", DESKTOP)
    context = await browser.new_context(**options)  # type: ignore[arg-type]
    if microphone:
        await context.grant_permissions(["microphone"])
    return context


# --------------------------------------------------------------------------- host pages


class HostPages:
    """A site's own web server: `/script`, `/iframe` and `/button` pages embedding the
    widget of `gw` (the gateway's URL) for `site`, all given in the query string."""

    def __init__(self) -> None:
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> HostPages:
        app = web.Application()
        app.router.add_get("/script", self._script)
        app.router.add_get("/iframe", self._iframe)
        app.router.add_get("/button", self._button)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_udp_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def origin(self) -> str:
        """The site's origin (secure: 127.0.0.1 is potentially trustworthy)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_origin(self) -> str:
        """An origin the site does not list (localhost is another host than 127.0.0.1)."""
        return f"http://localhost:{self.port}"

    @property
    def insecure_origin(self) -> str:
        return f"http://{INSECURE_HOST}:{self.port}"

    def url(self, kind: str, gateway_url: str, *, origin: str | None = None, **extra: str) -> str:
        query = "&".join(
            f"{k}={v}" for k, v in {"gw": gateway_url, "site": "shop", **extra}.items()
        )
        return f"{origin or self.origin}/{kind}?{query}"

    @staticmethod
    def _page(title: str, head: str, body: str) -> web.Response:
        text = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title>{head}</head><body><main><h1>{title}</h1>"
            "<p>A page of the site, on the site's own server.</p>"
            f"{body}</main></body></html>"
        )
        return web.Response(text=text, content_type="text/html")

    async def _script(self, request: web.Request) -> web.Response:
        gw, site = _attr(request, "gw"), _attr(request, "site")
        return self._page(
            "Script tag",
            f'<script type="module" src="{gw}/widget.js"></script>',
            f'<click-to-call site="{site}"></click-to-call>',
        )

    async def _iframe(self, request: web.Request) -> web.Response:
        gw, site = _attr(request, "gw"), _attr(request, "site")
        allow = ' allow="microphone; autoplay"' if request.query.get("allow") != "no" else ""
        return self._page(
            "Iframe",
            "",
            f'<iframe src="{gw}/embed/{site}"{allow} width="360" height="540" '
            'title="Call us"></iframe>',
        )

    async def _button(self, request: web.Request) -> web.Response:
        gw, site = _attr(request, "gw"), _attr(request, "site")
        script = """
          const widget = document.querySelector('click-to-call');
          window.widgetEvents = [];
          for (const name of ['statechange', 'ended', 'error']) {
            widget.addEventListener(name, (e) => window.widgetEvents.push([name, e.detail]));
          }
          document.getElementById('mine').addEventListener('click', () => widget.call());
          document.getElementById('theirs').addEventListener('click', () => widget.hangup());
        """
        return self._page(
            "Own button",
            f'<script type="module" src="{gw}/widget.js"></script>',
            f'<click-to-call site="{site}"></click-to-call>'
            '<button type="button" id="mine">Talk to us</button>'
            '<button type="button" id="theirs">Stop talking</button>'
            f"<script type=module>{script}</script>",
        )


def _attr(request: web.Request, name: str) -> str:
    return html.escape(request.query.get(name, ""), quote=True)


NOBODY = "sip:nobody@127.0.0.1:9"  # a destination for tests whose calls reach no phone


def widget_toml(*, destination: str, host: HostPages, widget: str = "", **options: object) -> str:
    """A gateway whose site `shop` may be used by the host pages (secure and insecure
    origins, not `host.other_origin`), with `widget` as its [sites.widget] table."""
    origins = json.dumps([host.origin, host.insecure_origin])
    site_extra = f"origins = {origins}\n[sites.widget]\n{widget}\n{options.pop('site_extra', '')}"
    return gateway_toml(destination=destination, site_extra=site_extra, **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- page shims

# getUserMedia waits until the test calls window.releaseMicrophone(): the widget's
# "asking for the microphone" state, as while a visitor reads the browser's prompt.
HOLD_MICROPHONE_JS = """
if (navigator.mediaDevices) {
  const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (constraints) => new Promise((resolve, reject) => {
    window.releaseMicrophone = () => original(constraints).then(resolve, reject);
  });
}
"""

# A browser without WebRTC.
NO_WEBRTC_JS = "Object.defineProperty(window, 'RTCPeerConnection', {value: undefined});"

# ICE fails right after the answer, as behind a firewall that drops UDP (the loopback-only
# test network cannot block one path of a call and not the other).
ICE_FAILS_JS = """
{
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends Native {
    async setRemoteDescription(description) {
      await super.setRemoteDescription(description);
      setTimeout(() => {
        Object.defineProperty(this, 'connectionState', {get: () => 'failed'});
        this.dispatchEvent(new Event('connectionstatechange'));
      }, 300);
    }
  };
}
"""

# The element that has the keyboard focus, looking into shadow roots.
FOCUSED_JS = """
() => {
  let element = document.activeElement;
  while (element && element.shadowRoot && element.shadowRoot.activeElement) {
    element = element.shadowRoot.activeElement;
  }
  if (!element) return null;
  const style = getComputedStyle(element);
  return {
    name: element.getAttribute('aria-label') || element.textContent.trim(),
    outline: style.outlineStyle === 'none' ? 0 : parseFloat(style.outlineWidth),
  };
}
"""


async def focused(page: Page) -> dict[str, object] | None:
    return await page.evaluate(FOCUSED_JS)


# --------------------------------------------------------------------------- artifacts


async def snap(page: Page, name: str) -> None:
    """Screenshots of the page as it is now, at desktop width and at 375 px, saved as
    tests/artifacts/widget/<name>-desktop.png and <name>-375.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or DESKTOP
    await page.screenshot(path=ARTIFACTS / f"{name}-desktop.png")
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=ARTIFACTS / f"{name}-375.png")
    await page.set_viewport_size(size)


async def axe_violations(page: Page) -> list[dict[str, object]]:
    """axe-core's serious and critical violations on the page (into open shadow roots)."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.add_script_tag(path=AXE)
    found = await page.evaluate(
        """async () => {
          const results = await axe.run(document, {resultTypes: ['violations']});
          return results.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => n.target.join(' ')),
          }));
        }"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


async def overflow(page: Page) -> dict[str, float]:
    """How far the page and the widget's panel reach past the viewport's width, in px."""
    return await page.evaluate(
        """() => {
          const width = window.innerWidth;
          const widget = document.querySelector('click-to-call');
          const panel = widget && widget.shadowRoot.querySelector('.panel');
          const rect = panel && !panel.hidden ? panel.getBoundingClientRect() : null;
          return {
            page: document.documentElement.scrollWidth - width,
            panelLeft: rect ? -rect.left : 0,
            panelRight: rect ? rect.right - width : 0,
          };
        }"""
    )
