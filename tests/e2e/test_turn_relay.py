"""TURN for visitors with short-lived credentials only (the TURN REST API of coturn).

coturn runs with `--use-auth-secret`; the gateway's `ice.servers` gives it the shared
`secret`. Chromium, forced to relay only (`iceTransportPolicy: "relay"`), calls a baresip
phone through it and hears the phone's tone; the credential the page got stops working
once its lifetime is over (a real TURN Allocate is refused), while one made now from the
same secret works.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from playwright.async_api import Page

from gateway.media.ice_servers import rest_credential
from tests.support.audio import assert_tone
from tests.support.browser import capture_remote_audio
from tests.support.coturn import allocate, start_coturn

from .conftest import open_call_page, wait_for_status
from .test_browser_call import PHONE_HZ, assert_all_released

TURN_SECRET = "Turn-Rest-Secret-5c1e9a7b3d"
LIFETIME = 15  # seconds: enough to set up the call, short enough to wait out

# The widget's RTCPeerConnection, relay only; what it was given is kept for the test.
FORCE_RELAY_JS = """
(() => {
  const Native = window.RTCPeerConnection;
  window.__iceServers = [];
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(config = {}) {
      super({...config, iceTransportPolicy: 'relay'});
      window.__iceServers.push(config.iceServers || []);
      window.__pcs.push(this);
    }
  };
})();
"""

SELECTED_LOCAL_CANDIDATE_JS = """
async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((report) => {
    if (report.type === 'transport' && report.selectedCandidatePairId) {
      pair = stats.get(report.selectedCandidatePairId);
    }
  });
  return pair ? stats.get(pair.localCandidateId).candidateType : null;
}
"""


async def test_a_relay_only_browser_calls_through_coturn_and_its_credential_expires(
    gateway_factory, baresip_factory, page: Page, tmp_path: Path
):
    turn = start_coturn(tmp_path / "coturn", secret=TURN_SECRET)
    try:
        phone = baresip_factory(codecs=("PCMU",), tone_hz=PHONE_HZ, tone_seconds=20)
        gateway = await gateway_factory(
            destination=phone.uri,
            ice_extra=f'servers = [{{urls = ["{turn.url}"], secret = "{TURN_SECRET}"}}]\n'
            f"turn_credential_lifetime = {LIFETIME}",
        )
        await page.add_init_script(FORCE_RELAY_JS)
        issued = time.time()
        await open_call_page(page, gateway)
        await page.get_by_role("button", name="Call").click()
        await wait_for_status(page, "In call", timeout=20)
        samples, rate = await capture_remote_audio(page, 2.0)
        assert_tone(samples, rate, PHONE_HZ, skip_seconds=0.2, what="audio through the relay")
        assert await page.evaluate(SELECTED_LOCAL_CANDIDATE_JS) == "relay"

        # What the page was given: a user name <expiry>:<id> and its credential, no secret.
        (servers,) = await page.evaluate("() => window.__iceServers")
        assert TURN_SECRET not in json.dumps(servers)
        (server,) = servers
        assert server["urls"] == [turn.url]
        expiry, _, user = server["username"].partition(":")
        assert user and issued + LIFETIME - 1 <= int(expiry) <= time.time() + LIFETIME
        assert (server["username"], server["credential"]) == rest_credential(
            TURN_SECRET, expires=int(expiry), user=user
        )
        await page.get_by_role("button", name="Hang up").click()
        await wait_for_status(page, "Call ended")
        await assert_all_released(gateway)

        # Once its lifetime is over, the page's credential gets no relay any more. On a
        # busy machine coturn was seen to accept it a second after the expiry and refuse
        # it later: the refusal is awaited, for at most 15 s after the expiry.
        await asyncio.sleep(max(0.0, int(expiry) + 1 - time.time()))
        while await allocate(turn, server["username"], server["credential"]):
            assert time.time() < int(expiry) + 15, "coturn still relays for the old credential"
            await asyncio.sleep(0.5)
        assert await allocate(
            turn, *rest_credential(TURN_SECRET, expires=int(time.time()) + 60, user="probe")
        )
    finally:
        turn.stop()
