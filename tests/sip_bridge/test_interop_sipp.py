"""The user agent against SIPp scripted as the far end: each scenario fails on misbehaviour."""

from __future__ import annotations

import asyncio

import pytest

from sip_bridge.asyncio.player import PcmRecorder
from sip_bridge.events import (
    CallAnswered,
    CallRedirected,
    CallRinging,
    EarlyMedia,
    EndReason,
    OfferReceived,
)
from tests.support.audio import assert_tone, tone

from .sip_call import answered, caller, exchange_audio


async def test_answered_call_echoes_our_tone(sipp_factory):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    async with caller(codecs=["PCMU"]) as c:
        call = await c.call(uas.uri)
        await answered(call, c.media)
        heard = await exchange_audio(c.media, tone(1000, 2.0, 8000), 2.0)
        assert_tone(heard, 8000, 1000, skip_seconds=0.3)
        call.hangup()
        ended = await asyncio.wait_for(call.ended, 5)
        assert ended.reason == EndReason.LOCAL_HANGUP
    await uas.assert_passed_async()


async def test_a_g729_call_echoes_our_tone(sipp_factory):
    # A phone system answering in G.729 with Annex B: 20 ms of G.729 each way, tone heard.
    uas = sipp_factory("uas_answer_echo_g729", rtp_echo=True)
    async with caller(codecs=["G729", "PCMU"]) as c:
        call = await c.call(uas.uri)
        await answered(call, c.media)
        assert c.media.negotiated.codec == "G729"
        heard = await exchange_audio(c.media, tone(1000, 2.0, 8000), 2.0)
        assert_tone(heard, 8000, 1000, skip_seconds=0.3)
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
    await uas.assert_passed_async()


async def test_busy(sipp_factory):
    uas = sipp_factory("uas_busy")
    async with caller() as c:
        call = await c.call(uas.uri)
        ended = await asyncio.wait_for(call.ended, 5)
        assert (ended.reason, ended.status) == (EndReason.BUSY, 486)
        assert any(isinstance(e, CallRinging) for e in call.history)
    await uas.assert_passed_async()


@pytest.mark.parametrize("scenario", ["uas_auth_401", "uas_auth_401_sha256", "uas_auth_407"])
async def test_digest_challenge_answered(sipp_factory, scenario):
    uas = sipp_factory(scenario)
    async with caller() as c:
        call = await c.call(uas.uri, credentials=("alice", "secret"))
        await call.wait_for(CallAnswered, timeout=5)
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
    await uas.assert_passed_async()


async def test_wrong_password_gives_up_after_one_retry(sipp_factory):
    uas = sipp_factory("uas_auth_reject")
    async with caller() as c:
        call = await c.call(uas.uri, credentials=("alice", "wrong"))
        ended = await asyncio.wait_for(call.ended, 5)
        assert ended.reason == EndReason.AUTH_FAILED
    await uas.assert_passed_async()


async def test_early_media_is_heard_before_the_answer(sipp_factory):
    uas = sipp_factory("uas_early_media", tone_hz=1000)
    async with caller(codecs=["PCMU"]) as c:
        call = await c.call(uas.uri)
        early = await call.wait_for(EarlyMedia, timeout=5)
        c.media.accept_answer(early.sdp)
        recorder = PcmRecorder(c.media.rtp)
        await recorder.record(1.5)
        assert not any(isinstance(e, CallAnswered) for e in call.history)
        assert_tone(recorder.samples(), 8000, 1000, skip_seconds=0.3)
        await call.wait_for(CallAnswered, timeout=5)
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
    await uas.assert_passed_async()


async def test_far_end_hangs_up(sipp_factory):
    uas = sipp_factory("uas_far_bye")
    async with caller() as c:
        call = await c.call(uas.uri)
        await call.wait_for(CallAnswered, timeout=5)
        ended = await asyncio.wait_for(call.ended, 10)
        assert ended.reason == EndReason.REMOTE_HANGUP
    await uas.assert_passed_async()


async def test_cancel_when_not_answered(sipp_factory):
    uas = sipp_factory("uas_no_answer")
    async with caller() as c:
        call = await c.call(uas.uri)
        await call.wait_for(CallRinging, timeout=5)
        call.hangup()
        ended = await asyncio.wait_for(call.ended, 5)
        assert (ended.reason, ended.status) == (EndReason.CANCELLED, 487)
    await uas.assert_passed_async()


async def test_answer_crossing_cancel_is_acked_then_hung_up(sipp_factory):
    uas = sipp_factory("uas_cancel_race")
    async with caller() as c:
        call = await c.call(uas.uri)
        await call.wait_for(CallRinging, timeout=5)
        call.hangup()
        ended = await asyncio.wait_for(call.ended, 5)
        assert ended.reason == EndReason.CANCELLED
        assert not any(isinstance(e, CallAnswered) for e in call.history)
    await uas.assert_passed_async()


async def test_hold_and_resume_from_the_far_end(sipp_factory):
    uas = sipp_factory("uas_reinvite_hold")
    async with caller(codecs=["PCMU"]) as c:
        call = await c.call(uas.uri)
        await answered(call, c.media)
        directions = []
        for _ in range(2):
            offer = await call.wait_for(OfferReceived, timeout=5)
            call.answer_offer(c.media.answer(offer.sdp))
            directions.append(c.media.negotiated.direction)
        assert directions == ["recvonly", "sendrecv"]
        call.hangup()
        ended = await asyncio.wait_for(call.ended, 5)
        assert ended.reason == EndReason.LOCAL_HANGUP
    await uas.assert_passed_async()


async def test_options_answered(sipp_factory):
    async with caller() as c:
        uac = sipp_factory("uac_options", remote=c.endpoint.local_address)
        await uac.assert_passed_async()
        assert c.endpoint.ua.active_calls == 0


async def test_session_timer_422_then_refreshes_at_half_the_interval(sipp_factory):
    uas = sipp_factory("uas_session_timer", timeout=15)
    async with caller(session_expires=90) as c:
        call = await c.call(uas.uri)
        await answered(call, c.media)
        ended = await asyncio.wait_for(call.ended, 12)  # SIPp hangs up after two refreshes
        assert ended.reason == EndReason.REMOTE_HANGUP
    await uas.assert_passed_async()


async def test_a_peer_that_stops_refreshing_gets_our_bye_in_time(sipp_factory):
    uas = sipp_factory("uas_session_timer_quiet", timeout=15)
    async with caller() as c:
        call = await c.call(uas.uri)
        await answered(call, c.media)
        ended = await asyncio.wait_for(call.ended, 12)
        assert ended.reason == EndReason.SESSION_EXPIRED
    await uas.assert_passed_async()


async def test_reliable_183_is_pracked_and_its_early_media_heard(sipp_factory):
    uas = sipp_factory("uas_100rel", tone_hz=1000)
    async with caller(codecs=["PCMU"]) as c:
        call = await c.call(uas.uri)
        early = await call.wait_for(EarlyMedia, timeout=5)
        c.media.accept_answer(early.sdp)
        recorder = PcmRecorder(c.media.rtp)
        await recorder.record(1.0)
        assert_tone(recorder.samples(), 8000, 1000, skip_seconds=0.3)
        answer = await call.wait_for(CallAnswered, timeout=5)
        assert answer.sdp == early.sdp  # the 200 had none: the reliable 183's stands
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
    await uas.assert_passed_async()


async def test_302_is_followed_to_a_target_the_policy_allows(sipp_factory):
    target = sipp_factory("uas_answer_echo", rtp_echo=True)
    uas = sipp_factory("uas_redirect", keys={"redirect_to": target.uri})
    async with caller(codecs=["PCMU"]) as c:
        call = await c.call(uas.uri, redirect_policy=lambda uri: uri.port == target.port)
        await answered(call, c.media)
        (redirected,) = [e for e in call.history if isinstance(e, CallRedirected)]
        assert (redirected.status, redirected.target) == (302, target.uri)
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
    await uas.assert_passed_async()
    await target.assert_passed_async()
