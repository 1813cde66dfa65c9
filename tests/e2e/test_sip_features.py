"""What real PBXs and trunks do to a call, with a visitor in Chromium: a re-INVITE that
changes the codec and a peer's packet time (checked on the RTP the gateway sends), a
transfer from one baresip operator to another (the visitor's tone heard by the target),
redirects only where the site allows, and Opus relayed to a PBX that speaks it."""

from __future__ import annotations

import asyncio
import itertools
import logging

import numpy as np

from sip_bridge.rtp.packet import parse_rtp
from tests.support.audio import alaw_decode, assert_tone, assert_wav_has_tone, ulaw_decode
from tests.support.browser import capture_remote_audio

from .conftest import MIC_HZ, open_call_page, wait_for_status
from .test_browser_call import assert_all_released


class RtpSink(asyncio.DatagramProtocol):
    """A UDP port the far end's SDP points the gateway's RTP at: what it sends, parsed."""

    def __init__(self) -> None:
        self.packets: list = []

    def datagram_received(self, data: bytes, addr) -> None:
        self.packets.append(parse_rtp(data))

    @classmethod
    async def open(cls) -> tuple[asyncio.DatagramTransport, RtpSink]:
        loop = asyncio.get_running_loop()
        return await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))


async def test_reinvite_to_pcma_switches_what_the_gateway_sends_and_ptime_is_honoured(
    gateway_factory, sipp_factory, page
):
    transport, sink = await RtpSink.open()
    try:
        port = transport.get_extra_info("sockname")[1]
        uas = sipp_factory("uas_reinvite_codec", keys={"sink_port": str(port)})
        gateway = await gateway_factory(destination=uas.uri)  # the browser speaks PCMU
        await open_call_page(page, gateway)
        await page.get_by_role("button", name="Call").click()
        await wait_for_status(page, "In call")
        await uas.assert_passed_async()  # answered PCMA to the re-INVITE, then BYE
        await wait_for_status(page, "Call ended")
    finally:
        transport.close()
    pcmu = [p for p in sink.packets if p.payload_type == 0]
    pcma = [p for p in sink.packets if p.payload_type == 8]
    assert len(pcmu) > 20 and len(pcma) > 20, [p.payload_type for p in sink.packets][:50]
    # Before: relayed PCMU re-cut to the 30 ms the phone asked for; after: PCMA at 20 ms,
    # and never PCMU again once the phone switched.
    assert {len(p.payload) for p in pcmu[1:-1]} == {240}
    steps = {(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in itertools.pairwise(pcmu)}
    assert steps <= {240}
    assert {len(p.payload) for p in pcma} == {160}
    assert sink.packets.index(pcma[0]) > sink.packets.index(pcmu[-1])
    assert pcma[0].marker and pcma[0].ssrc == pcmu[0].ssrc
    heard_before = ulaw_decode(b"".join(p.payload for p in pcmu)).astype(np.int16)
    heard_after = alaw_decode(b"".join(p.payload for p in pcma)).astype(np.int16)
    assert_tone(heard_before, 8000, MIC_HZ, skip_seconds=0.3, what="PCMU before the re-INVITE")
    assert_tone(heard_after, 8000, MIC_HZ, skip_seconds=0.2, what="PCMA after the re-INVITE")


async def test_operator_transfers_the_visitor_to_a_second_phone(
    gateway_factory, baresip_factory, page
):
    target = baresip_factory(user="sales", codecs=("PCMU",), tone_hz=700, tone_seconds=4)
    operator = baresip_factory(codecs=("PCMU",), tone_hz=440, tone_seconds=30)
    gateway = await gateway_factory(
        destination=operator.uri,
        site_extra=f'transfer_to = ["{operator.uri}", "sip:sales@127.0.0.1:{target.port}"]',
    )
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "In call")
    await asyncio.to_thread(operator.command, "transfer", target.uri)
    # The target answers (auto), hears the visitor, and hangs up when its 4 s WAV ends.
    await target.wait_for_calls_ended_async(1, timeout=15)
    await wait_for_status(page, "Call ended", timeout=10)
    assert_wav_has_tone(target.last_recording().decoded, MIC_HZ, skip_seconds=0.5)
    # The operator's phone was told how it went (RFC 3515 NOTIFYs with the target's status
    # lines), and every leg is released.
    log = operator.output()
    assert "SIP/2.0 202 Accepted" in log
    notified = log[log.index("SIP/2.0 202 Accepted") :]
    assert notified.index("SIP/2.0 180 Ringing") < notified.index(
        "Subscription-State: terminated;reason=noresource"
    )
    await assert_all_released(gateway)


async def test_redirects_are_followed_only_where_the_site_allows(
    gateway_factory, sipp_factory, page, caplog
):
    caplog.set_level(logging.INFO)
    refused = sipp_factory("uas_redirect", keys={"redirect_to": "sip:premium@127.0.0.1:9"})
    gateway = await gateway_factory(destination=refused.uri)  # transfer_to: its destination
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    # The page says why, with the phone system's status in standard words.
    await wait_for_status(
        page, "Call ended: the call was redirected and could not follow (302 Moved Temporarily)"
    )
    await refused.assert_passed_async()
    assert "redirect_failed (302 Moved Temporarily: no target we may call)" in caplog.text
    target = sipp_factory("uas_answer_echo", rtp_echo=True)
    followed = sipp_factory("uas_redirect", keys={"redirect_to": target.uri})
    gateway = await gateway_factory(
        destination=followed.uri, site_extra=f'transfer_to = ["{target.uri}"]'
    )
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "In call")
    await page.get_by_role("button", name="Hang up").click()
    await target.assert_passed_async()
    await followed.assert_passed_async()


async def test_opus_from_the_browser_is_relayed_to_a_pbx_that_speaks_opus(
    gateway_factory, sipp_factory, page
):
    uas = sipp_factory("uas_answer_opus_echo", rtp_echo=True)
    gateway = await gateway_factory(destination=uas.uri, browser_codecs=["opus"])
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "In call")
    (call,) = gateway.calls.calls.values()
    assert call.media.negotiated.codec == "opus"
    assert not call.bridge.transcoding  # Opus end to end: nothing decoded
    samples, rate = await capture_remote_audio(page, 1.5)
    assert_tone(samples, rate, MIC_HZ, skip_seconds=0.3, what="the visitor's Opus, echoed")
    await page.get_by_role("button", name="Hang up").click()
    await uas.assert_passed_async()


async def test_a_transfer_elsewhere_is_refused_and_a_failed_one_goes_back_to_the_operator(
    gateway_factory, sipp_factory, page
):
    busy = sipp_factory("uas_busy")  # 180, then 486
    operator = sipp_factory("uas_refer", rtp_echo=True, keys={"refer_to": busy.uri}, timeout=20)
    gateway = await gateway_factory(
        destination=operator.uri, site_extra=f'transfer_to = ["{operator.uri}", "{busy.uri}"]'
    )
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "In call")
    # The operator's BYE ends the call: it was never handed anywhere, nor dropped.
    await wait_for_status(page, "Call ended: the other side hung up", timeout=15)
    await operator.assert_passed_async()
    await busy.assert_passed_async()


async def test_a_blind_transfer_whose_operator_left_ends_when_the_target_does_not_answer(
    gateway_factory, sipp_factory, page, caplog
):
    caplog.set_level(logging.INFO)
    target = sipp_factory("uas_ring_later")  # rings after 1 s, never answers: CANCEL at 2 s
    operator = sipp_factory("uas_refer_and_leave", rtp_echo=True, keys={"refer_to": target.uri})
    gateway = await gateway_factory(
        destination=operator.uri,
        ring_timeout=2,
        site_extra=f'transfer_to = ["{operator.uri}", "{target.uri}"]',
    )
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "Call ended", timeout=15)
    await operator.assert_passed_async()  # it left right after the 202: the call went on
    await target.assert_passed_async()  # CANCELled at the ring timeout
    assert ", transfer_failed (" in caplog.text


async def test_a_blind_transfer_whose_operator_left_hands_the_visitor_to_the_target(
    gateway_factory, sipp_factory, page
):
    target = sipp_factory("uas_answer_echo", rtp_echo=True)
    operator = sipp_factory("uas_refer_and_leave", rtp_echo=True, keys={"refer_to": target.uri})
    gateway = await gateway_factory(
        destination=operator.uri, site_extra=f'transfer_to = ["{operator.uri}", "{target.uri}"]'
    )
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await operator.assert_passed_async()
    (call,) = gateway.calls.calls.values()
    for _ in range(100):  # the target answers as soon as it is called
        if call.winner is not None and call.winner is not call.attempts[0]:
            break
        await asyncio.sleep(0.05)
    assert call.winner is not call.attempts[0], "the visitor was not handed to the target"
    samples, rate = await capture_remote_audio(page, 1.0)
    assert_tone(samples, rate, MIC_HZ, skip_seconds=0.2, what="the visitor echoed by the target")
    await page.get_by_role("button", name="Hang up").click()
    await target.assert_passed_async()  # our BYE ended it
