"""Real calls to baresip, an auto-answering desk phone: each side hears the other's tone."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys

import pytest

from sip_bridge.events import EndReason
from tests.support.audio import assert_tone, assert_wav_has_tone, tone, write_tone_wav

from .sip_call import answered, caller, exchange_audio

RATES = {"PCMU": 8000, "PCMA": 8000, "G722": 16000}


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722"])
def test_cli_call_plays_records_and_sends_dtmf(baresip_factory, tmp_path, codec):
    """The acceptance test of `python -m sip_bridge call`: a real call, audio both ways."""
    phone = baresip_factory(codecs=(codec,), tone_hz=440, tone_seconds=8)
    play = write_tone_wav(tmp_path / "play.wav", 1000, 3.0, 8000)
    record = tmp_path / "heard.wav"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sip_bridge",
            "call",
            phone.uri,
            "--codec",
            codec.lower(),
            "--play",
            str(play),
            "--record",
            str(record),
            "--duration",
            "3",
            "--dtmf",
            "12#",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    steps = re.findall(r"(->|<-) (\S+(?: \S+)?)", result.stdout)
    assert ("->", "INVITE sip:operator@127.0.0.1:" + str(phone.port)) in steps
    assert any(d == "<-" and s.startswith("200") for d, s in steps)
    assert [s.split()[0] for d, s in steps if d == "->"] == ["INVITE", "ACK", "BYE"]
    assert "call ended: local hangup" in result.stdout

    phone.wait_for_calls_ended(1, timeout=10)
    assert_wav_has_tone(record, 440, skip_seconds=0.3)  # we heard the phone
    heard_by_phone = phone.last_recording().decoded
    assert_wav_has_tone(heard_by_phone, 1000, skip_seconds=0.3)  # the phone heard us
    events = re.findall(r"received event: '(.)' \(end=1\)", phone.output())
    assert events == ["1", "2", "#"]


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_tones_cross_both_ways(baresip_factory, codec):
    phone = baresip_factory(codecs=(codec,), tone_hz=700, tone_seconds=6)
    async with caller(codecs=[codec]) as c:
        call = await c.call(phone.uri)
        await answered(call, c.media)
        assert c.media.negotiated.codec == codec
        heard = await exchange_audio(c.media, tone(1300, 2.5, 8000), 2.5)
        call.hangup()
        ended = await asyncio.wait_for(call.ended, 5)
        assert ended.reason == EndReason.LOCAL_HANGUP
    assert_tone(heard, RATES[codec], 700, skip_seconds=0.3)
    await asyncio.to_thread(phone.wait_for_calls_ended, 1, 10)
    assert_wav_has_tone(phone.last_recording().decoded, 1300, skip_seconds=0.3)


async def test_phone_hanging_up_ends_the_call(baresip_factory):
    phone = baresip_factory(codecs=("PCMU",), tone_seconds=1.5)  # hangs up when its WAV ends
    async with caller() as c:
        call = await c.call(phone.uri)
        await answered(call, c.media)
        ended = await asyncio.wait_for(call.ended, 10)
        assert ended.reason == EndReason.REMOTE_HANGUP
        assert c.endpoint.ua.active_calls == 0
