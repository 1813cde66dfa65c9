"""A visitor in headless Chromium calls through the gateway to real SIP peers."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from opuslib_next.constants import BANDWIDTH_NARROWBAND

from gateway.api import CallState
from tests.support.audio import assert_tone, assert_wav_has_tone
from tests.support.browser import capture_remote_audio, states

from .conftest import MIC_HZ, open_call_page, wait_for_status

PHONE_HZ = 440


def in_order(seen: list[str], expected: list[str]) -> bool:
    """`expected` appears in `seen` in that order (other states may come between)."""
    position = 0
    for text in seen:
        if position < len(expected) and text.startswith(expected[position]):
            position += 1
    return position == len(expected)


async def assert_all_released(gateway) -> None:
    for _ in range(50):
        if not gateway.calls.calls and gateway.endpoint.ua.active_calls == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"calls left: {gateway.calls.calls}")


@pytest.mark.parametrize("codec", ["PCMU", "opus"])
async def test_call_to_a_desk_phone_carries_audio_both_ways(
    gateway_factory, baresip_factory, page, codec
):
    phone = baresip_factory(codecs=("PCMU",), tone_hz=PHONE_HZ, tone_seconds=20)
    # Narrowband phones only: Chromium's Opus is answered with maxplaybackrate=8000.
    gateway = await gateway_factory(
        destination=phone.uri, browser_codecs=[codec], media='sip_codecs = ["PCMU", "PCMA"]'
    )
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "In call")
    (call,) = gateway.calls.calls.values()
    assert call.bridge.transcoding == (codec == "opus")
    answer = call.webrtc.pc.localDescription.sdp
    assert ("maxplaybackrate=8000;sprop-maxcapturerate=8000" in answer) == (codec == "opus")
    # Chromium reached the call on the gateway's one ICE port (ice.port), no port of its own.
    connection = call.webrtc.pc.getTransceivers()[0].sender.transport.transport._connection
    assert connection._nominated[1].local_candidate.port == gateway.config.ice.port
    assert gateway.ice_mux.calls == 1
    # Steady G.711, relayed or transcoded to and from Chromium's Opus: the path runs in C
    # (gateway.media.native_relay) from here on.
    native = call.bridge.native
    for _ in range(100):
        if native is not None and native.engaged:
            break
        await asyncio.sleep(0.1)
    assert native is not None and native.engaged
    assert native._relay.transcoding == (codec == "opus")
    frames_before = native._relay.a_frames + native._relay.b_frames
    samples, rate = await capture_remote_audio(page, 2.0)
    assert_tone(samples, rate, PHONE_HZ, skip_seconds=0.2, what="audio the page received")
    # Those two seconds went through C both ways (50 frames a second each way).
    assert native._relay.a_frames + native._relay.b_frames - frames_before >= 150
    if codec == "opus":  # Chromium took the answer's maxplaybackrate: narrowband Opus
        decoder = call.bridge.a_to_b.transcoder.opus_decoder
        assert decoder is not None and decoder.bandwidth == BANDWIDTH_NARROWBAND
    await page.get_by_role("button", name="Keypad").click()
    for digit in ("1", "pound"):
        await page.get_by_role("button", name=digit, exact=True).click()
        await asyncio.sleep(0.3)
    await page.get_by_role("button", name="Hang up").click()
    await wait_for_status(page, "Call ended")
    await phone.wait_for_calls_ended_async(1, timeout=10)
    assert_wav_has_tone(phone.last_recording().decoded, MIC_HZ, skip_seconds=0.5)
    # The keypad's digits reached the phone as RFC 4733 events, once each.
    assert re.findall(r"received event: '(.)' \(end=1\)", phone.output()) == ["1", "#"]
    assert in_order(await states(page), ["Asking", "Connecting", "In call", "Call ended"])
    await assert_all_released(gateway)


async def test_operator_hanging_up_is_shown(gateway_factory, baresip_factory, page):
    phone = baresip_factory(codecs=("PCMU",), tone_seconds=2.5)  # hangs up after its WAV
    gateway = await gateway_factory(destination=phone.uri)
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "In call")
    await wait_for_status(page, "Call ended: the other side hung up", timeout=10)
    await assert_all_released(gateway)


async def test_busy_is_shown(gateway_factory, sipp_factory, page):
    uas = sipp_factory("uas_busy")
    gateway = await gateway_factory(destination=uas.uri)
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "Call ended: busy")
    await uas.assert_passed_async()
    assert in_order(await states(page), ["Asking", "Ringing", "Call ended: busy"])
    await assert_all_released(gateway)


async def test_no_answer_cancels_at_the_ring_timeout(gateway_factory, sipp_factory, page):
    uas = sipp_factory("uas_no_answer")
    gateway = await gateway_factory(destination=uas.uri, ring_timeout=2)
    await open_call_page(page, gateway)
    started = time.monotonic()
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "Ringing")
    await wait_for_status(page, "Call ended: no answer", timeout=10)
    assert time.monotonic() - started >= 2.0  # not before the ring timeout (a timer is never early)
    await uas.assert_passed_async()  # it saw the CANCEL, answered 487 and got the ACK
    await assert_all_released(gateway)


async def test_far_end_bye_is_shown(gateway_factory, sipp_factory, page):
    uas = sipp_factory("uas_far_bye")
    gateway = await gateway_factory(destination=uas.uri)
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "Call ended: the other side hung up")
    await uas.assert_passed_async()


async def test_closing_the_tab_sends_bye_within_two_seconds(gateway_factory, sipp_factory, page):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    gateway = await gateway_factory(destination=uas.uri)
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "In call")
    await page.close()
    # The scenario ends on our BYE, sent when the socket closed: long before the media
    # timeout (30 s) could have ended the call instead.
    await uas.assert_passed_async(timeout=10)
    await assert_all_released(gateway)


async def test_hanging_up_while_ringing_cancels(gateway_factory, sipp_factory, page):
    uas = sipp_factory("uas_no_answer")
    gateway = await gateway_factory(destination=uas.uri)
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "Ringing")
    (call,) = gateway.calls.calls.values()
    assert call.state == CallState.RINGING
    await page.get_by_role("button", name="Hang up").click()
    await uas.assert_passed_async()
    await assert_all_released(gateway)


async def test_local_ringback_while_the_phone_rings(gateway_factory, sipp_factory, page):
    uas = sipp_factory("uas_no_answer")  # 180 without SDP, never answers
    gateway = await gateway_factory(destination=uas.uri)  # default: 425 Hz, 1 s on
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "Ringing")
    samples, rate = await capture_remote_audio(page, 1.0)
    assert_tone(samples, rate, 425, what="ringback")
    await page.get_by_role("button", name="Hang up").click()
    await uas.assert_passed_async()


async def test_early_media_is_played_before_the_answer(gateway_factory, sipp_factory, page):
    uas = sipp_factory("uas_early_media", tone_hz=1300)  # 183 + SDP, tone, then 200
    gateway = await gateway_factory(destination=uas.uri)
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "Ringing")
    (call,) = gateway.calls.calls.values()
    # Short: SIPp answers 2 s after its 183, and all of this must happen before.
    samples, rate = await capture_remote_audio(page, 0.6)
    assert call.state == CallState.EARLY_MEDIA
    assert_tone(samples, rate, 1300, what="early media")
    await wait_for_status(page, "In call")
    await page.get_by_role("button", name="Hang up").click()
    await uas.assert_passed_async()
