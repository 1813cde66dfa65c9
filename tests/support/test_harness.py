"""Self-tests of the real-peer harness: tone tools, SIPp scenarios, baresip.

Every UAS scenario in tests/sipp is run against a reference caller (tests/sipp/reference),
and, where it matters, against a misbehaving one to see it fail; baresip, a real UA, also
calls several of them. So when an interop test of the code under test fails, the scenario
is not the suspect. Run inside the loopback namespace:

    scripts/in-loopback-netns .venv/bin/python -m pytest tests/support -q
"""

from __future__ import annotations

import shutil
import socket
import struct
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support.audio import (
    ToneAnalysisError,
    WavFormatError,
    alaw_decode,
    alaw_encode,
    analyse_tone,
    assert_tone,
    assert_wav_has_tone,
    dominant_frequency,
    read_wav,
    tone,
    ulaw_decode,
    ulaw_encode,
    write_tone_alaw,
    write_tone_ulaw,
    write_tone_wav,
    write_wav,
)
from tests.support.baresip import BaresipPhone
from tests.support.digest import (
    DigestError,
    check_credentials,
    credentials_value,
    digest_response,
    parse_auth_header,
)
from tests.support.peer_process import is_port_bound
from tests.support.ports import PORT_RANGE, free_port_block, free_rtp_port_pair
from tests.support.sipp import AUTH_NONCE, AUTH_OPAQUE, Sipp

needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")
needs_baresip = pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed")

SippFactory = Callable[..., Sipp]
BaresipFactory = Callable[..., BaresipPhone]


# --- audio ------------------------------------------------------------------------------------


TONES = [
    (300.0, 8000),
    (440.0, 8000),
    (1004.3, 8000),
    (3400.0, 8000),
    (697.0, 16000),
    (7000.0, 16000),
]


@pytest.mark.parametrize(("frequency", "rate"), TONES)
def test_dominant_frequency_of_generated_tone(frequency: float, rate: int) -> None:
    samples = tone(frequency, 0.5, rate, 0.3, leading_silence=0.7)
    assert dominant_frequency(samples, rate) == pytest.approx(frequency, abs=0.2)


def test_dominant_frequency_skips_leading_part() -> None:
    first, second = tone(500.0, 1.0, 8000), tone(1500.0, 1.0, 8000)
    samples = np.concatenate([first, second])
    assert round(dominant_frequency(samples, 8000)) in (500, 1500)
    assert dominant_frequency(samples, 8000, skip_seconds=1.0) == pytest.approx(1500, abs=0.2)


def test_assert_tone_accepts_g711_coded_tone() -> None:
    coded = ulaw_decode(ulaw_encode(tone(1000.0, 1.0, 8000, 0.05)))
    analysis = assert_tone(coded, 8000, 1000.0)
    assert analysis.rms_dbfs == pytest.approx(20 * np.log10(0.05 / np.sqrt(2)), abs=0.5)
    assert analysis.tone_ratio > 0.99


def test_assert_tone_rejects_noise_silence_and_wrong_tones() -> None:
    noise = np.random.default_rng(7).normal(0, 0.3, 8000)
    with pytest.raises(AssertionError, match="noise"):
        assert_tone(noise, 8000, dominant_frequency(noise, 8000))
    with pytest.raises(AssertionError, match="silence"):
        assert_tone(np.zeros(8000, np.int16), 8000, 1000.0)
    with pytest.raises(AssertionError, match="dominant frequency"):
        assert_tone(tone(1010.0, 1.0), 8000, 1000.0)
    with pytest.raises(AssertionError, match="level"):
        assert_tone(tone(1000.0, 1.0, amplitude=0.001), 8000, 1000.0)
    with pytest.raises(AssertionError, match=r"only 0\.10 s"):
        assert_tone(tone(1000.0, 0.1), 8000, 1000.0)
    with pytest.raises(ToneAnalysisError):
        analyse_tone(np.zeros(10, np.int16), 8000)


def test_wav_round_trip_and_truncated_header(tmp_path: Path) -> None:
    path = write_tone_wav(tmp_path / "t.wav", 700.0, 0.5, 16000, 0.25)
    samples, rate = read_wav(path)
    assert rate == 16000 and samples.dtype == np.int16 and samples.size == 8000
    assert np.array_equal(samples, tone(700.0, 0.5, 16000, 0.25))
    assert_wav_has_tone(path, 700.0)
    # A recorder killed before closing its file leaves a zero data size in the header.
    raw = bytearray(path.read_bytes())
    raw[40:44] = b"\0\0\0\0"
    (tmp_path / "cut.wav").write_bytes(bytes(raw))
    assert read_wav(tmp_path / "cut.wav")[0].size == 8000
    (tmp_path / "bad.wav").write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    with pytest.raises(WavFormatError):
        read_wav(tmp_path / "bad.wav")
    write_wav(tmp_path / "empty.wav", np.zeros(0, np.int16), 8000)
    assert read_wav(tmp_path / "empty.wav")[0].size == 0


def test_g711_tables_match_the_standard() -> None:
    codes = np.arange(256, dtype=np.uint8)
    # G.711 spot values: zero codes, and the largest magnitudes.
    assert ulaw_encode(np.array([0]))[0] == 0xFF and alaw_encode(np.array([0]))[0] == 0xD5
    assert ulaw_decode(b"\x00")[0] == -32124 and ulaw_decode(b"\x80")[0] == 32124
    assert alaw_decode(b"\xaa")[0] == 32256 and alaw_decode(b"\x2a")[0] == -32256
    # Every code decodes to a level that encodes back to it (u-law 0x7F is "-0").
    assert np.array_equal(alaw_encode(alaw_decode(codes)), codes)
    back = ulaw_encode(ulaw_decode(codes))
    assert np.array_equal(back[codes != 0x7F], codes[codes != 0x7F])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # Python <= 3.12: an independent decoder
    assert np.array_equal(ulaw_decode(codes), np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2"))
    assert np.array_equal(alaw_decode(codes), np.frombuffer(audioop.alaw2lin(codes, 2), "<i2"))


def test_g711_quantization_error_is_within_half_a_step() -> None:
    x = np.arange(-32768, 32768, 7, dtype=np.int32).astype(np.int16)
    for encode, decode in ((ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)):
        error = np.abs(decode(encode(x)).astype(np.int32) - x)
        # Steps double per segment: the error stays under 1/16 of the value, or small.
        assert np.all(error <= np.maximum(np.abs(x.astype(np.int32)) / 16, 16) + 1)


def test_raw_g711_tone_files(tmp_path: Path) -> None:
    ulaw = write_tone_ulaw(tmp_path / "t.ulaw", 1000.0, 2.0).read_bytes()
    alaw = write_tone_alaw(tmp_path / "t.alaw", 1000.0, 2.0).read_bytes()
    assert len(ulaw) == len(alaw) == 16000  # one byte per sample, no header
    assert_tone(ulaw_decode(ulaw), 8000, 1000.0)
    assert_tone(alaw_decode(alaw), 8000, 1000.0)


# --- digest and ports ---------------------------------------------------------------------------

RFC7616_EXAMPLE = {
    "username": "Mufasa",
    "realm": "http-auth@example.org",
    "password": "Circle of Life",
    "method": "GET",
    "uri": "/dir/index.html",
    "nonce": "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
    "qop": "auth",
    "nc": "00000001",
    "cnonce": "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
}


def test_digest_matches_rfc_vectors() -> None:
    # RFC 7616 section 3.9.1, and RFC 2617 section 3.5.
    assert digest_response(algorithm="MD5", **RFC7616_EXAMPLE) == (
        "8ca523f5e9506fed4657c9700eebdbec"
    )
    assert digest_response(algorithm="SHA-256", **RFC7616_EXAMPLE) == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )
    rfc2617_example = {
        **RFC7616_EXAMPLE,
        "realm": "testrealm@host.com",
        "password": "Circle Of Life",
        "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "cnonce": "0a4f113b",
    }
    assert digest_response(**rfc2617_example) == "6629fae49393a05397450978507c4ef1"
    with pytest.raises(DigestError):
        digest_response(algorithm="SHA-1", **RFC7616_EXAMPLE)


def test_digest_check_finds_each_mistake() -> None:
    challenge = 'Digest realm="r", nonce="n1", opaque="o", qop="auth", algorithm=SHA-256'
    good = credentials_value(
        challenge, username="alice", password="pw", method="INVITE", uri="sip:b@h"
    )
    assert parse_auth_header(good)[1]["algorithm"] == "SHA-256"

    def check(credentials: str, uri: str = "sip:b@h") -> list[str]:
        return check_credentials(
            credentials,
            challenge,
            method="INVITE",
            request_uri=uri,
            username="alice",
            password="pw",
        )

    wrong_password = credentials_value(
        challenge, username="alice", password="bad", method="INVITE", uri="sip:b@h"
    )

    assert check(good) == []
    assert any("uri" in p for p in check(good, "sip:other@h"))
    assert any("username" in p for p in check(good.replace('"alice"', '"bob"')))
    assert any("response" in p and "is wrong" in p for p in check(wrong_password))
    assert any("nonce" in p for p in check(good.replace('"n1"', '"n2"')))
    assert any("opaque" in p for p in check(good.replace(', opaque="o"', "")))
    assert any("algorithm" in p for p in check(good.replace("SHA-256", "MD5")))
    assert check("Basic abc") != []
    with pytest.raises(DigestError):
        parse_auth_header('Digest realm="unterminated')


def test_port_blocks_are_free_distinct_and_aligned() -> None:
    blocks = [free_port_block(6, align=2) for _ in range(20)]
    ports = [port for start in blocks for port in range(start, start + 6)]
    assert len(set(ports)) == len(ports)
    assert all(start % 2 == 0 and start in PORT_RANGE for start in blocks)
    rtp = free_rtp_port_pair()
    assert rtp % 2 == 0 and not is_port_bound(rtp) and not is_port_bound(rtp + 1)


# --- SIPp against SIPp ------------------------------------------------------------------------


def _run_pair(
    sipp_factory: SippFactory,
    uas_scenario: str,
    reference: str,
    *,
    uas_options: dict[str, object] | None = None,
    uac_options: dict[str, object] | None = None,
) -> tuple[Sipp, Sipp]:
    uas = sipp_factory(uas_scenario, timeout=15.0, **(uas_options or {}))
    uac = sipp_factory(
        f"reference/{reference}", remote=uas.address, timeout=15.0, **(uac_options or {})
    )
    return uas, uac


CREDENTIALS = ["-au", "alice", "-ap", "secret"]

# UAS scenario: (reference caller, its options, the messages the UAS sees and sends).
PAIRS = {
    "uas_answer_echo": ("call_and_hang_up", {}, ["INVITE", 100, 180, 200, "ACK", "BYE", 200]),
    "uas_busy": ("call_busy", {}, ["INVITE", 100, 180, 486, "ACK"]),
    "uas_no_answer": ("call_and_cancel", {}, ["INVITE", 100, 180, "CANCEL", 200, 487, "ACK"]),
    "uas_cancel_race": (
        "call_cancel_crosses_answer",
        {},
        ["INVITE", 100, 180, "CANCEL", 200, 200, "ACK", "BYE", 200],
    ),
    "uas_early_media": ("call_and_hang_up", {}, ["INVITE", 100, 183, 200, "ACK", "BYE", 200]),
    "uas_far_bye": ("call_and_get_hung_up", {}, ["INVITE", 100, 180, 200, "ACK", "BYE", 200]),
    "uas_reinvite_hold": (
        "call_held_and_resumed",
        {},
        ["INVITE", 100, 180, 200, "ACK", "INVITE", 200, "ACK", "INVITE", 200, "ACK", "BYE", 200],
    ),
    "uas_auth_401": (
        "auth_call",
        {"extra_args": CREDENTIALS},
        ["INVITE", 401, "ACK", "INVITE", 100, 200, "ACK", "BYE", 200],
    ),
    "uas_auth_407": (
        "auth_call",
        {"extra_args": CREDENTIALS},
        ["INVITE", 407, "ACK", "INVITE", 100, 200, "ACK", "BYE", 200],
    ),
    "uas_auth_reject": (
        "auth_call_rejected",
        {"extra_args": CREDENTIALS},
        ["INVITE", 401, "ACK", "INVITE", 401, "ACK"],
    ),
}


def _flow(sipp: Sipp) -> list[str | int | None]:
    return [m.method or m.status for m in sipp.trace()]


@needs_sipp
@pytest.mark.parametrize("scenario", sorted(PAIRS))
def test_uas_scenario_passes_with_reference_caller(
    sipp_factory: SippFactory, scenario: str
) -> None:
    reference, uac_options, flow = PAIRS[scenario]
    uas, uac = _run_pair(sipp_factory, scenario, f"{reference}.xml", uac_options=uac_options)
    uac.assert_passed()
    uas.assert_passed()
    assert _flow(uas) == flow


@needs_sipp
@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
@pytest.mark.parametrize("password", ["secret", "wrong"])
def test_digest_checked_by_harness(
    sipp_factory: SippFactory, algorithm: str, password: str
) -> None:
    scenario = "uas_auth_401_sha256" if algorithm == "SHA-256" else "uas_auth_407"
    header = "Authorization" if algorithm == "SHA-256" else "Proxy-Authorization"
    uas = sipp_factory(scenario, timeout=15.0)
    challenge = (
        f'Digest realm="sipp.test", nonce="{AUTH_NONCE}", opaque="{AUTH_OPAQUE}", '
        f'qop="auth", algorithm={algorithm}'
    )
    credentials = credentials_value(
        challenge, username="alice", password=password, method="INVITE", uri=uas.uri
    )
    keys = {"auth_header_name": header, "auth_credentials": credentials}
    uac = sipp_factory("reference/auth_call_literal", remote=uas.address, keys=keys)
    uac.assert_passed()
    status = uas.wait()
    if password == "secret":
        assert status == 0
    else:
        assert status == 1 and "response" in status.report and "is wrong" in status.report


@needs_sipp
def test_wrong_md5_digest_fails_verifyauth(sipp_factory: SippFactory) -> None:
    wrong_password = {"extra_args": ["-au", "alice", "-ap", "wrong"]}
    uas, uac = _run_pair(sipp_factory, "uas_auth_401", "auth_call.xml", uac_options=wrong_password)
    assert uas.wait() == 255
    assert "does not verify" in uas.errors()
    uac.assert_passed()  # it ACKed the 403


@needs_sipp
def test_third_invite_fails_auth_reject(sipp_factory: SippFactory) -> None:
    misbehaving = {"extra_args": CREDENTIALS, "keys": {"retry_again": "yes"}}
    uas, uac = _run_pair(
        sipp_factory, "uas_auth_reject", "auth_call_rejected.xml", uac_options=misbehaving
    )
    assert uas.wait() == 255
    assert "third INVITE" in uas.errors()
    uac.assert_passed()  # it ACKed the 403


@needs_sipp
def test_wrong_hold_answer_fails_reinvite_hold(sipp_factory: SippFactory) -> None:
    wrong_answer = {"keys": {"hold_answer_direction": "sendrecv"}}
    uas, _ = _run_pair(
        sipp_factory, "uas_reinvite_hold", "call_held_and_resumed.xml", uac_options=wrong_answer
    )
    status = uas.wait()
    assert status == 1
    with pytest.raises(AssertionError, match=r"(?s)uas_reinvite_hold.*a=sendrecv"):
        uas.assert_passed()


@needs_sipp
def test_unexpected_message_fails_scenario(sipp_factory: SippFactory) -> None:
    # A caller expecting 486 gets a 200 and aborts with BYE instead of ACK.
    uas, _ = _run_pair(sipp_factory, "uas_answer_echo", "call_busy.xml")
    assert uas.wait() == 1


@needs_sipp
def test_options_scenario_passes_with_reference_responder(sipp_factory: SippFactory) -> None:
    responder = sipp_factory("reference/options_responder.xml", timeout=10.0)
    options = sipp_factory("uac_options", remote=responder.address, timeout=10.0)
    options.assert_passed()
    responder.assert_passed()
    assert [m.method or m.status for m in options.trace()] == ["OPTIONS", 200]


@needs_sipp
def test_rtp_echo_returns_the_tone(sipp_factory: SippFactory) -> None:
    uas = sipp_factory("uas_answer_echo", rtp_echo=True, timeout=10.0)
    payload = ulaw_encode(tone(1000.0, 1.0, 8000, 0.3)).tobytes()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
        rtp.bind(("127.0.0.1", 0))
        rtp.settimeout(2.0)
        for seq in range(50):
            header = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x1234)
            packet = header + payload[seq * 160 : (seq + 1) * 160]
            rtp.sendto(packet, ("127.0.0.1", uas.media_port))
        echoed = [rtp.recv(2048)[12:] for _ in range(50)]
    assert_tone(ulaw_decode(b"".join(echoed)), 8000, 1000.0, what="SIPp's echo")
    uas.stop()


@needs_sipp
def test_failure_report_carries_the_trace(sipp_factory: SippFactory) -> None:
    uas = sipp_factory("uas_busy", timeout=1.0)
    status = uas.wait()
    assert status != 0  # -timeout_error: nobody called
    assert "uas_busy.xml" in repr(status)


@needs_sipp
@pytest.mark.sipp_scenario("uas_busy", timeout=10.0)
def test_sipp_uas_fixture_from_marker(sipp_uas: Sipp, sipp_factory: SippFactory) -> None:
    assert sipp_uas.scenario.name == "uas_busy.xml" and is_port_bound(sipp_uas.port)
    assert sipp_uas.uri == f"sip:operator@127.0.0.1:{sipp_uas.port}"
    sipp_factory("reference/call_busy", remote=sipp_uas.address).assert_passed()
    assert sipp_uas.wait() == 0
    assert "486 Busy Here" in sipp_uas.messages()


@needs_sipp
@pytest.mark.parametrize("sipp_uas", [("uas_far_bye", {"timeout": 10.0})], indirect=True)
async def test_sipp_uas_fixture_from_param_and_async_wait(
    sipp_uas: Sipp, sipp_factory: SippFactory
) -> None:
    caller = sipp_factory("reference/call_and_get_hung_up", remote=sipp_uas.address)
    await sipp_uas.assert_passed_async()
    assert await caller.wait_async() == 0


# --- baresip ------------------------------------------------------------------------------------


@needs_sipp
@needs_baresip
def test_baresip_answers_records_and_plays_its_tone(
    sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    phone = baresip_factory(codecs=("PCMU",), tone_hz=440.0)
    caller = sipp_factory(
        "reference/call_and_hang_up", remote=phone.address, service=phone.user, tone_hz=1000.0
    )
    caller.assert_passed()
    phone.wait_for_calls_ended(1)
    recording = phone.last_recording()
    assert phone.encoders() == [("PCMU", 8000)]
    assert_wav_has_tone(recording.decoded, 1000.0, skip_seconds=0.1)
    assert_wav_has_tone(recording.encoded, 440.0)


def test_baresip_refuses_codecs_of_two_rates(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one clock rate"):
        BaresipPhone(tmp_path, codecs=("G722", "PCMU"))


@needs_baresip
def test_baresip_phones_talk_g722(baresip_factory: BaresipFactory) -> None:
    callee = baresip_factory(codecs=("G722",), tone_hz=5000.0)
    caller = baresip_factory(codecs=("G722",), tone_hz=300.0, tone_seconds=1.5)
    caller.dial(callee.uri)
    callee.wait_for_calls_ended(1)
    caller.wait_for_calls_ended(1)
    assert callee.encoders() == caller.encoders() == [("G722", 16000)]
    heard, rate = read_wav(callee.last_recording().decoded)
    assert rate == 16000  # a 300 Hz tone fits G.711 too; 5000 Hz needs the wideband
    assert_tone(heard, rate, 300.0, skip_seconds=0.1, what="callee heard")
    assert_wav_has_tone(caller.last_recording().decoded, 5000.0, skip_seconds=0.1)


@needs_sipp
@needs_baresip
@pytest.mark.parametrize(
    ("scenario", "options", "heard_hz"),
    [
        ("uas_answer_echo", {"rtp_echo": True}, 440.0),  # its own tone, echoed
        ("uas_far_bye", {}, None),
        ("uas_reinvite_hold", {}, None),
        ("uas_auth_401", {}, None),
        ("uas_auth_407", {}, None),
    ],
)
def test_baresip_as_caller_passes_uas_scenario(
    sipp_factory: SippFactory,
    baresip_factory: BaresipFactory,
    scenario: str,
    options: dict[str, object],
    heard_hz: float | None,
) -> None:
    uas = sipp_factory(scenario, timeout=15.0, **options)
    phone = baresip_factory(tone_hz=440.0, tone_seconds=2.0, auth=("alice", "secret"))
    phone.dial(uas.uri)
    uas.assert_passed()
    phone.wait_for_calls_ended(1)
    if heard_hz is not None:
        assert_wav_has_tone(phone.last_recording().decoded, heard_hz, skip_seconds=0.2)


@needs_sipp
@needs_baresip
def test_baresip_hears_early_media(
    sipp_factory: SippFactory, baresip_factory: BaresipFactory
) -> None:
    uas = sipp_factory("uas_early_media", timeout=15.0, tone_hz=1000.0)
    # Its media, and so its recording and its tone, start with the 183's SDP; the tone
    # (hence the call) outlasts the 2 s before the 200.
    phone = baresip_factory(tone_hz=440.0, tone_seconds=3.0)
    phone.dial(uas.uri)
    uas.assert_passed()
    phone.wait_for_calls_ended(1)
    heard, rate = read_wav(phone.last_recording().decoded)
    assert heard.size / rate > 2.5
    assert_tone(heard[: int(1.5 * rate)], rate, 1000.0, skip_seconds=0.2, what="early media")


@needs_sipp
@needs_baresip
@pytest.mark.parametrize("scenario", ["uas_busy", "uas_no_answer", "uas_cancel_race"])
def test_baresip_as_caller_gives_up(
    sipp_factory: SippFactory, baresip_factory: BaresipFactory, scenario: str
) -> None:
    uas = sipp_factory(scenario, timeout=10.0)
    phone = baresip_factory()
    phone.dial(uas.uri)
    if scenario != "uas_busy":
        _wait_for_trace(uas, 180)
        phone.hangup()
    uas.assert_passed()


def _wait_for_trace(sipp: Sipp, status: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(m.sent and m.status == status for m in sipp.trace()):
        assert time.monotonic() < deadline, f"SIPp sent no {status}\n{sipp.report()}"
        time.sleep(0.02)
