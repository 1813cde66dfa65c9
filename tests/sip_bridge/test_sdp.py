"""SDP parsing, serialization and offer/answer (`sip_bridge.sdp`).

The sample descriptions below are written for these tests in the style of what each kind of
peer sends (same line order, attributes and quirks); the baresip one was captured from the
baresip 1.0.0 installed here. Addresses are documentation ranges (RFC 5737, RFC 3849): the
module never opens a socket, and the real-peer tests at the end only use 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import shutil
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sip_bridge.sdp import (
    DIRECTIONS,
    MAX_FORMATS,
    MAX_LINES,
    MAX_MEDIA,
    MAX_SDP_BYTES,
    STATIC_PAYLOAD_TYPES,
    MediaDescription,
    NegotiatedAudio,
    NoCommonCodec,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    build_answer,
    build_offer,
    build_reoffer,
    intersect_directions,
    is_same_version,
    mirror_direction,
    negotiate_answer,
    parse_sdp,
)
from tests.support.audio import alaw_decode, assert_tone, ulaw_decode
from tests.support.baresip import BaresipPhone
from tests.support.ports import free_rtp_port_pair


def crlf(text: str) -> bytes:
    """A description written with LF in this file, as a peer sends it: CRLF line ends."""
    return text.replace("\n", "\r\n").encode()


ASTERISK_OFFER = crlf("""\
v=0
o=- 1718101011 1718101011 IN IP4 192.0.2.10
s=Asterisk
c=IN IP4 192.0.2.10
t=0 0
m=audio 17046 RTP/AVP 0 8 9 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:9 G722/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")

FREESWITCH_OFFER = crlf("""\
v=0
o=FreeSWITCH 1718090000 1718090001 IN IP4 198.51.100.7
s=FreeSWITCH
c=IN IP4 198.51.100.7
t=0 0
m=audio 24680 RTP/AVP 9 0 8 101 13
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:13 CN/8000
a=ptime:20
a=rtcp:24681 IN IP4 198.51.100.7
""")

# Cisco phones put c= in the media section and send no ptime.
CISCO_OFFER = crlf("""\
v=0
o=Cisco-SIPUA 22931 0 IN IP4 192.0.2.55
s=SIP Call
t=0 0
m=audio 28414 RTP/AVP 0 8 18 101
c=IN IP4 192.0.2.55
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
""")

# Polycom: session-level direction, G.722.1 first, telephone-event at 127 without fmtp.
POLYCOM_OFFER = crlf("""\
v=0
o=- 1718000000 1718000000 IN IP4 192.0.2.77
s=Polycom IP Phone
c=IN IP4 192.0.2.77
t=0 0
a=sendrecv
m=audio 2222 RTP/AVP 102 9 0 8 18 127
a=rtpmap:102 G7221/16000
a=fmtp:102 bitrate=32000
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:127 telephone-event/8000
""")

# Captured from baresip 1.0.0 here (its INVITE to SIPp).
BARESIP_OFFER = crlf("""\
v=0
o=- 3243373275 159782435 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
a=tool:baresip 1.0.0
m=audio 20002 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:2243637082 cname:sip:operator@127.0.0.1
a=minptime:20
a=ptime:20
""")

# SIPp's built-in uac scenario, with its keywords filled in.
SIPP_OFFER = crlf("""\
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")

# A softphone offering many codecs over plain RTP, telephone-event at three rates.
SOFTPHONE_OFFER = crlf("""\
v=0
o=alice 2890 1203 IN IP4 192.0.2.30
s=Talk
c=IN IP4 192.0.2.30
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 0 8 3 9 99 100 101 18
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 SPEEX/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=rtpmap:99 telephone-event/48000
a=rtpmap:100 telephone-event/16000
a=rtpmap:101 telephone-event/8000
a=fmtp:18 annexb=no
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
""")

# A browser's offer: many codecs, but DTLS-SRTP only, which the SIP leg does not speak.
CHROME_OFFER = crlf("""\
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS 7d1c0f5e
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:Hk3u
a=ice-pwd:sd8fK3jdP0x9M2mz5Qw1rT7y
a=ice-options:trickle
a=fingerprint:sha-1 5B:1F:9C:44:0A:6D:2E:88:31:7B:C2:0F:A9:13:5E:77:D4:60:28:BE
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=sendrecv
a=msid:7d1c0f5e 5a2c
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:1001 cname:abc
m=video 9 UDP/TLS/RTP/SAVPF 96 97
c=IN IP4 0.0.0.0
a=mid:1
a=rtpmap:96 VP8/90000
a=rtpmap:97 rtx/90000
a=fmtp:97 apt=96
""")

IPV6_OFFER = crlf("""\
v=0
o=- 1 1 IN IP6 2001:db8::10
s=-
c=IN IP6 2001:db8::10
t=0 0
m=audio 49170 RTP/AVP 8 0
""")

# Rejected and non-audio streams around the one audio stream we can take.
MULTI_STREAM_OFFER = crlf("""\
v=0
o=- 5 5 IN IP4 192.0.2.40
s=conference
c=IN IP4 192.0.2.40
t=0 0
m=audio 5000 RTP/AVP 18
a=rtpmap:18 G729/8000
m=video 5002 RTP/AVP 31 34 96
a=rtpmap:96 H264/90000
m=image 5004 udptl t38
a=T38FaxVersion:0
a=T38FaxRateManagement:transferredTCF
m=audio 0 RTP/AVP 0
m=audio 5006 RTP/AVP 8 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
m=application 5008 TCP/BFCP *
a=floorctrl:c-only
""")

REAL_WORLD = {
    "asterisk": ASTERISK_OFFER,
    "freeswitch": FREESWITCH_OFFER,
    "cisco": CISCO_OFFER,
    "polycom": POLYCOM_OFFER,
    "baresip": BARESIP_OFFER,
    "sipp": SIPP_OFFER,
    "softphone": SOFTPHONE_OFFER,
    "chrome": CHROME_OFFER,
    "ipv6": IPV6_OFFER,
    "multi-stream": MULTI_STREAM_OFFER,
}

LOCAL = {"address": "127.0.0.1", "port": 30000, "session_id": 42, "session_version": 1}


def offer_with(media_lines: str, *, session_lines: str = "") -> bytes:
    """A minimal offer from 192.0.2.1 with the given session-level and media lines."""
    return crlf(
        "v=0\no=- 7 7 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"
        + session_lines
        + media_lines
    )


def answer_to(
    offer: bytes | SessionDescription, **overrides: object
) -> tuple[SessionDescription, NegotiatedAudio]:
    parsed = parse_sdp(offer) if isinstance(offer, bytes) else offer
    arguments: dict = {**LOCAL, "codecs": ["PCMU", "PCMA", "G722"], **overrides}
    return build_answer(parsed, **arguments)


# --- parsing real-world descriptions ------------------------------------------------------


def test_asterisk_offer_parses_into_the_model():
    sdp = parse_sdp(ASTERISK_OFFER)
    assert sdp.origin == Origin("-", 1718101011, 1718101011, "IN", "IP4", "192.0.2.10")
    assert sdp.session_name == "Asterisk"
    assert sdp.connection == "192.0.2.10"
    assert sdp.timing == (0, 0)
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.proto) == ("audio", 17046, "RTP/AVP")
    assert audio.formats == ["0", "8", "9", "101"]
    assert audio.payload_types == [0, 8, 9, 101]
    assert audio.rtpmaps[101] == RtpMap(101, "telephone-event", 8000, 1, "0-16")
    assert audio.rtpmaps[9] == RtpMap(9, "G722", 8000)
    assert audio.ptime == 20
    assert audio.direction == "sendrecv"
    assert audio.attributes == [("maxptime", "150")]
    assert audio.connection is None
    assert sdp.effective_connection(audio) == "192.0.2.10"


def test_cisco_offer_has_its_connection_in_the_media_section():
    sdp = parse_sdp(CISCO_OFFER)
    assert sdp.connection is None
    audio = sdp.media[0]
    assert audio.connection == "192.0.2.55"
    assert sdp.effective_connection(audio) == "192.0.2.55"
    assert audio.rtpmaps[18].fmtp == "annexb=no"
    assert audio.ptime is None


def test_polycom_session_level_direction_applies_to_the_media():
    sdp = parse_sdp(POLYCOM_OFFER)
    assert sdp.direction == "sendrecv"
    assert sdp.media[0].direction is None
    assert sdp.effective_direction(sdp.media[0]) == "sendrecv"
    assert sdp.media[0].rtpmaps[127] == RtpMap(127, "telephone-event", 8000)
    assert sdp.media[0].rtpmaps[102].fmtp == "bitrate=32000"


def test_baresip_offer_keeps_its_unknown_attributes_in_order():
    sdp = parse_sdp(BARESIP_OFFER)
    assert sdp.attributes == [("tool", "baresip 1.0.0")]
    assert sdp.media[0].attributes == [
        ("label", "1"),
        ("rtcp-rsize", None),
        ("ssrc", "2243637082 cname:sip:operator@127.0.0.1"),
        ("minptime", "20"),
    ]
    text = sdp.serialize().decode()
    for line in (
        "a=tool:baresip 1.0.0",
        "a=label:1",
        "a=rtcp-rsize",
        "a=ssrc:2243637082 cname:sip:operator@127.0.0.1",
        "a=minptime:20",
    ):
        assert line + "\r\n" in text
    assert text.index("a=label:1") < text.index("a=rtcp-rsize") < text.index("a=ssrc:")


def test_chrome_offer_parses_with_its_webrtc_attributes():
    sdp = parse_sdp(CHROME_OFFER)
    audio, video = sdp.media
    assert audio.proto == "UDP/TLS/RTP/SAVPF"
    assert audio.rtpmaps[111] == RtpMap(111, "opus", 48000, 2, "minptime=10;useinbandfec=1")
    assert audio.rtpmaps[63].fmtp == "111/111"
    assert audio.attribute("ice-ufrag") == "Hk3u"
    assert audio.attribute("rtcp-mux") == ""
    assert audio.attribute("RTCP-FB") == "111 transport-cc"
    assert sdp.attribute("msid-semantic") == " WMS 7d1c0f5e"
    assert video.rtpmaps[97].fmtp == "apt=96"
    assert sdp.effective_connection(video) == "0.0.0.0"


def test_ipv6_connection_addresses():
    sdp = parse_sdp(IPV6_OFFER)
    assert sdp.connection == "2001:db8::10"
    assert sdp.origin.addrtype == "IP6"
    assert b"c=IN IP6 2001:db8::10\r\n" in sdp.serialize()


def test_static_payload_types_without_rtpmap_are_filled_in():
    sdp = parse_sdp(offer_with("m=audio 5000 RTP/AVP 0 8 9 18 3 13 10\n"))
    rtpmaps = sdp.media[0].rtpmaps
    assert {pt: (r.encoding, r.clock_rate, r.channels) for pt, r in rtpmaps.items()} == {
        0: ("PCMU", 8000, 1),
        8: ("PCMA", 8000, 1),
        9: ("G722", 8000, 1),
        18: ("G729", 8000, 1),
        3: ("GSM", 8000, 1),
        13: ("CN", 8000, 1),
        10: ("L16", 44100, 2),
    }


def test_fmtp_for_a_static_type_without_rtpmap_attaches_to_it():
    sdp = parse_sdp(offer_with("m=audio 5000 RTP/AVP 18\na=fmtp:18 annexb=no\n"))
    assert sdp.media[0].rtpmaps[18] == RtpMap(18, "G729", 8000, 1, "annexb=no")


def test_fmtp_before_its_rtpmap_is_accepted():
    sdp = parse_sdp(
        offer_with("m=audio 5000 RTP/AVP 101\na=fmtp:101 0-15\na=rtpmap:101 telephone-event/8000\n")
    )
    assert sdp.media[0].rtpmaps[101] == RtpMap(101, "telephone-event", 8000, 1, "0-15")


def test_fmtp_for_an_unlisted_payload_type_is_kept_as_an_attribute():
    sdp = parse_sdp(offer_with("m=audio 5000 RTP/AVP 0\na=fmtp:101 0-15\n"))
    assert sdp.media[0].attributes == [("fmtp", "101 0-15")]
    assert b"a=fmtp:101 0-15\r\n" in sdp.serialize()


def test_lf_crlf_and_mixed_line_ends_parse_the_same():
    lf = ASTERISK_OFFER.replace(b"\r\n", b"\n")
    mixed = lf.replace(b"s=Asterisk\n", b"s=Asterisk\r\n")
    assert parse_sdp(lf) == parse_sdp(ASTERISK_OFFER) == parse_sdp(mixed)
    assert parse_sdp(lf.decode()) == parse_sdp(ASTERISK_OFFER)


def test_trailing_blanks_and_blank_lines_at_the_end_are_tolerated():
    text = ASTERISK_OFFER.replace(b"a=ptime:20\r\n", b"a=ptime:20 \t\r\n") + b"\r\n\r\n"
    assert parse_sdp(text) == parse_sdp(ASTERISK_OFFER)


def test_lines_out_of_order_are_accepted_and_written_back_in_rfc_order():
    sdp = parse_sdp(
        crlf(
            "v=0\ns=-\na=tool:x\nt=0 0\nc=IN IP4 192.0.2.1\no=- 1 2 IN IP4 192.0.2.1\n"
            "m=audio 5000 RTP/AVP 0\na=sendonly\nc=IN IP4 192.0.2.2\nb=AS:64\n"
        )
    )
    assert sdp.serialize() == crlf(
        "v=0\no=- 1 2 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\na=tool:x\n"
        "m=audio 5000 RTP/AVP 0\nc=IN IP4 192.0.2.2\nb=AS:64\na=rtpmap:0 PCMU/8000\n"
        "a=sendonly\n"
    )


def test_optional_lines_are_preserved():
    text = crlf(
        "v=0\no=jdoe 2890844526 2890842807 IN IP4 192.0.2.4\ns=SDP Seminar\n"
        "i=A Seminar on the session description protocol\nu=http://www.example.com/seminars\n"
        "e=j.doe@example.com (Jane Doe)\np=+1 617 555-6011\nc=IN IP4 192.0.2.4\nb=CT:128\n"
        "t=2873397496 2873404696\nr=604800 3600 0 90000\nz=2882844526 -1h\nk=prompt\n"
        "a=recvonly\nm=audio 49170 RTP/AVP 0\ni=voice\nb=AS:64\nk=prompt\n"
        "m=video 51372 RTP/AVP 99\na=rtpmap:99 h263-1998/90000\n"
    )
    sdp = parse_sdp(text)
    assert sdp.timing == (2873397496, 2873404696)
    assert sdp.bandwidths == ["CT:128"]
    assert [kind for kind, _ in sdp.extra_lines] == ["i", "u", "e", "p", "r", "z", "k"]
    assert sdp.media[0].extra_lines == [("i", "voice"), ("k", "prompt")]
    assert sdp.media[0].bandwidths == ["AS:64"]
    # RFC 4566 section 5 order, and rtpmaps written for static types, otherwise identical.
    assert sdp.serialize() == text.replace(
        b"k=prompt\r\nm=video", b"k=prompt\r\na=rtpmap:0 PCMU/8000\r\nm=video"
    )


def test_serialize_writes_crlf_line_ends_only():
    data = parse_sdp(ASTERISK_OFFER.replace(b"\r\n", b"\n")).serialize()
    assert data.endswith(b"\r\n")
    assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")


@pytest.mark.parametrize("name", sorted(REAL_WORLD))
def test_real_world_descriptions_survive_serialization(name):
    sdp = parse_sdp(REAL_WORLD[name])
    assert parse_sdp(sdp.serialize()) == sdp


def test_serialize_refuses_values_that_would_inject_lines():
    sdp = parse_sdp(SIPP_OFFER)
    sdp.session_name = "x\r\nm=video 1 RTP/AVP 31"
    with pytest.raises(ValueError, match="control character"):
        sdp.serialize()
    sdp = parse_sdp(SIPP_OFFER)
    sdp.media[0].attributes.append(("x", "1\nb=AS:1"))
    with pytest.raises(ValueError, match="control character"):
        sdp.serialize()


# --- malformed input --------------------------------------------------------------------------

_HEAD = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n"


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("", "empty SDP body", None),
        ("\r\n\r\n", "empty SDP body", None),
        ("v=1\n", "first line must be v=0", 1),
        ("o=- 1 1 IN IP4 h\nv=0\n", "first line must be v=0", 1),
        ("v=0\ns=-\nt=0 0\n", "no o= line", None),
        ("v=0\no=- 1 1 IN IP4 h\nt=0 0\n", "no s= line", None),
        (_HEAD + "v=0\n", "may only be the first line", 6),
        (_HEAD + "x=unknown\n", "unknown line type 'x'", 6),
        (_HEAD + "garbage\n", "expected <type>=<value>", 6),
        (_HEAD + "a\n", "expected <type>=<value>", 6),
        (_HEAD + " a=sendrecv\n", "expected <type>=<value>", 6),
        ("v=0\n\no=- 1 1 IN IP4 h\ns=-\n", "empty line", 2),
        ("v=0\no=- 1 1 IN IP4\ns=-\n", "o= needs 6 fields", 2),
        ("v=0\no=- one 1 IN IP4 h\ns=-\n", "bad session id 'one'", 2),
        ("v=0\no=- 1 -1 IN IP4 h\ns=-\n", "bad session version", 2),
        ("v=0\no=- 1 1 IN IP4 h\no=- 1 1 IN IP4 h\ns=-\n", "second o= line", 3),
        ("v=0\no=- 1 1 IN IP4 h\ns=-\ns=-\n", "second s= line", 4),
        (_HEAD + "c=IN IP4 192.0.2.2\n", "second c= line", 6),
        ("v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 300.1.2.3\n", "bad IPv4 connection", 4),
        ("v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 ::1\n", "neither an IPv4 address", 4),
        ("v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP6 192.0.2.1\n", "not an IPv6 address", 4),
        ("v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4 224.2.1.1/127\n", "multicast", 4),
        ("v=0\no=- 1 1 IN IP4 h\ns=-\nc=ATM NSAP 47.0005\n", "unsupported network type", 4),
        ("v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN X25 123\n", "unsupported address type", 4),
        ("v=0\no=- 1 1 IN IP4 h\ns=-\nc=IN IP4\n", "c= needs", 4),
        (_HEAD.replace("t=0 0", "t=0"), "t= needs <start> <stop>", 5),
        (_HEAD + "b=AS\n", "b= needs <bwtype>:<bandwidth>", 6),
        (_HEAD + "a=:x\n", "bad attribute name ''", 6),
        (_HEAD + "a=bad name\n", "bad attribute name", 6),
        (_HEAD + "m=audio 5000\n", "m= needs <media> <port> <proto> <formats>", 6),
        (_HEAD + "m=audio 70000 RTP/AVP 0\n", "bad port '70000'", 6),
        (_HEAD + "m=audio x RTP/AVP 0\n", "bad port 'x'", 6),
        (_HEAD + "m=audio 5000/0 RTP/AVP 0\n", "bad port count", 6),
        (_HEAD + "m=audio 5000 RTP/AVP 128\n", "bad RTP payload type '128'", 6),
        (_HEAD + "m=audio 5000 RTP/AVP PCMU\n", "bad RTP payload type 'PCMU'", 6),
        (_HEAD + "m=audio 5000 RTP/AVP\n", "lists no formats", 6),
        (_HEAD + "m=image 5000 udptl t(38)\n", "bad format", 6),
        (_HEAD + "m=audio 5000 RTP/AVP 96\na=rtpmap:96 opus\n", "bad rtpmap", 7),
        (_HEAD + "m=audio 5000 RTP/AVP 96\na=rtpmap:96 opus/0\n", "out of range", 7),
        (_HEAD + "m=audio 5000 RTP/AVP 96\na=rtpmap:200 opus/48000\n", "out of range", 7),
        (
            _HEAD + "m=audio 5000 RTP/AVP 96\na=rtpmap:96 opus/48000\na=rtpmap:96 PCMU/8000\n",
            "second, different rtpmap for payload type 96",
            8,
        ),
        (
            _HEAD + "m=audio 5000 RTP/AVP 0\na=fmtp:0 a=1\na=fmtp:0 a=2\n",
            "second, different fmtp for payload type 0",
            8,
        ),
        (_HEAD + "m=audio 5000 RTP/AVP 0\na=ptime:abc\n", "bad ptime 'abc'", 7),
        (_HEAD + "m=audio 5000 RTP/AVP 0\na=ptime:0\n", "bad ptime", 7),
        (_HEAD + "m=audio 5000 RTP/AVP 0\na=ptime:20\na=ptime:30\n", "different ptime", 8),
        (
            _HEAD + "m=audio 5000 RTP/AVP 0\na=sendonly\na=recvonly\n",
            "conflicting direction attributes a=sendonly and a=recvonly",
            8,
        ),
        (_HEAD + "a=inactive\na=sendrecv\n", "conflicting direction", 7),
        (
            "v=0\no=- 1 1 IN IP4 h\ns=-\nt=0 0\nm=audio 5000 RTP/AVP 0\n",
            "media section has no c= line and the session has none",
            5,
        ),
        (_HEAD + "m=audio 5000 RTP/AVP 0\ns=-\n", "s= is not allowed in a media section", 7),
        (_HEAD + "m=audio 5000 RTP/AVP 0\nt=0 0\n", "t= is not allowed in a media section", 7),
        (_HEAD + "s=a\x00b\n", "control character U+0000", 6),
        (_HEAD + "a=x:1\rb=AS:1\n", "control character U+000D", 6),
        (_HEAD + "a=x:\udcff\n", "control character U+DCFF", 6),
    ],
)
def test_malformed_input_raises_a_precise_sdp_error(text, message, line):
    with pytest.raises(SdpError) as caught:
        parse_sdp(text)
    assert message in str(caught.value)
    assert caught.value.line == line
    if line is not None:
        assert str(caught.value).startswith(f"line {line}: ")
    with pytest.raises(SdpError):  # the same as bytes, when it encodes
        parse_sdp(text.encode("utf-8", "surrogateescape"))


def test_bytes_that_are_not_utf8_are_rejected():
    with pytest.raises(SdpError, match="not UTF-8: bad byte at offset 6"):
        parse_sdp(b"v=0\ns=\xff\xfe")


def test_size_limits():
    too_big = SIPP_OFFER + b"a=x:" + b"y" * MAX_SDP_BYTES + b"\r\n"
    with pytest.raises(SdpError, match=f"larger than {MAX_SDP_BYTES} bytes"):
        parse_sdp(too_big)
    with pytest.raises(SdpError, match=f"longer than {MAX_SDP_BYTES} characters"):
        parse_sdp(too_big.decode())
    many_lines = SIPP_OFFER + b"a=x\r\n" * (MAX_LINES - 7 + 1)
    with pytest.raises(SdpError, match=f"more than {MAX_LINES} lines"):
        parse_sdp(many_lines)
    parse_sdp(SIPP_OFFER + b"a=x\r\n" * (MAX_LINES - 7))  # exactly at the limit
    many_media = offer_with("m=audio 0 RTP/AVP 0\n" * (MAX_MEDIA + 1))
    with pytest.raises(SdpError, match=f"more than {MAX_MEDIA} m= lines") as caught:
        parse_sdp(many_media)
    assert caught.value.line == 6 + MAX_MEDIA
    assert len(parse_sdp(offer_with("m=audio 0 RTP/AVP 0\n" * MAX_MEDIA)).media) == MAX_MEDIA
    many_formats = offer_with("m=image 5000 udptl" + " t38" * (MAX_FORMATS + 1) + "\n")
    with pytest.raises(SdpError, match=f"more than {MAX_FORMATS} formats"):
        parse_sdp(many_formats)


def test_a_huge_number_is_refused_before_it_is_converted():
    with pytest.raises(SdpError, match="bad session id"):
        parse_sdp("v=0\no=- " + "9" * 5000 + " 1 IN IP4 h\ns=-\n")
    with pytest.raises(SdpError, match="t= needs"):
        parse_sdp(_HEAD.replace("t=0 0", "t=" + "1" * 5000 + " 0"))


def test_non_ascii_digits_are_not_numbers():
    with pytest.raises(SdpError, match="bad port"):
        parse_sdp(_HEAD + "m=audio \u0665\u0660\u0660\u0660 RTP/AVP 0\n")
    with pytest.raises(SdpError, match="bad RTP payload type"):
        parse_sdp(_HEAD + "m=audio 5000 RTP/AVP \u00b2\n")


# --- answering offers -------------------------------------------------------------------------


def test_answer_to_asterisk_with_our_preference():
    answer, audio = answer_to(ASTERISK_OFFER, codecs=["PCMA", "PCMU"])
    assert audio == NegotiatedAudio(
        codec="PCMA",
        clock_rate=8000,
        send_payload_type=8,
        recv_payload_type=8,
        dtmf_send_payload_type=101,
        dtmf_recv_payload_type=101,
        remote_address=("192.0.2.10", 17046),
        direction="sendrecv",
        ptime=20,
    )
    assert answer.serialize() == crlf(
        "v=0\no=- 42 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
        "m=audio 30000 RTP/AVP 8 101\na=rtpmap:8 PCMA/8000\n"
        "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\na=ptime:20\na=sendrecv\n"
    )
    assert parse_sdp(answer.serialize()) == answer


def test_our_preference_wins_over_the_offer_order():
    # FreeSWITCH lists G722 first; we prefer PCMU.
    _, audio = answer_to(FREESWITCH_OFFER, codecs=["PCMU", "G722"])
    assert audio.codec == "PCMU"
    _, audio = answer_to(FREESWITCH_OFFER, codecs=["g722", "pcmu"])
    assert (audio.codec, audio.send_payload_type) == ("G722", 9)


def test_the_answer_lists_one_codec_and_telephone_event_with_the_offer_payload_type():
    answer, audio = answer_to(POLYCOM_OFFER, codecs=["G722"])
    (media,) = answer.media
    assert media.formats == ["9", "127"]
    assert media.rtpmaps[127] == RtpMap(127, "telephone-event", 8000, 1, "0-15")
    assert (audio.dtmf_send_payload_type, audio.dtmf_recv_payload_type) == (127, 127)


def test_cisco_answer_takes_the_media_level_connection_and_default_ptime():
    _, audio = answer_to(CISCO_OFFER)
    assert audio.remote_address == ("192.0.2.55", 28414)
    assert audio.ptime == 20


def test_remote_ptime_is_reported_and_ours_is_in_the_answer():
    answer, audio = answer_to(offer_with("m=audio 5000 RTP/AVP 0\na=ptime:30\n"), ptime=40)
    assert audio.ptime == 30
    assert answer.media[0].ptime == 40
    # Some peers put ptime at session level.
    _, audio = answer_to(offer_with("m=audio 5000 RTP/AVP 0\n", session_lines="a=ptime:10\n"))
    assert audio.ptime == 10


def test_softphone_with_many_codecs():
    answer, audio = answer_to(SOFTPHONE_OFFER, codecs=["G722", "PCMU"])
    assert (audio.codec, audio.send_payload_type) == ("G722", 9)
    # telephone-event at 48000 and 16000 do not fit an 8000 Hz codec.
    assert audio.dtmf_send_payload_type == 101
    assert answer.media[0].formats == ["9", "101"]
    assert answer.media[0].rtpmaps[101].fmtp == "0-15"  # the RFC 4733 default


def test_encoding_names_match_in_any_case_and_dynamic_payload_types_are_kept():
    offer = offer_with(
        "m=audio 5004 RTP/AVP 100 101\na=rtpmap:100 pcma/8000\n"
        "a=rtpmap:101 Telephone-Event/8000\na=fmtp:101 0-11,16\n"
    )
    answer, audio = answer_to(offer)
    assert (audio.codec, audio.send_payload_type, audio.recv_payload_type) == ("PCMA", 100, 100)
    assert answer.media[0].rtpmaps[100] == RtpMap(100, "PCMA", 8000)
    assert answer.media[0].rtpmaps[101].fmtp == "0-11,16"


def test_g722_needs_the_8000_hz_rtp_clock():
    offer = offer_with("m=audio 5000 RTP/AVP 96 0\na=rtpmap:96 G722/16000\n")
    _, audio = answer_to(offer, codecs=["G722", "PCMU"])
    assert audio.codec == "PCMU"
    with pytest.raises(NoCommonCodec):
        answer_to(offer, codecs=["G722"])


def test_stereo_pcmu_is_not_our_codec():
    offer = offer_with("m=audio 5000 RTP/AVP 96\na=rtpmap:96 PCMU/8000/2\n")
    with pytest.raises(NoCommonCodec):
        answer_to(offer)


@pytest.mark.parametrize(
    ("fmtp", "answered"),
    [
        (None, "0-15"),
        ("0-15", "0-15"),
        ("0-16", "0-16"),
        ("0-15,66", "0-15"),
        ("0-11", "0-11"),
        (" 0-9 , 10,11 ", "0-11"),
    ],
)
def test_telephone_event_fmtp(fmtp, answered):
    fmtp_line = f"a=fmtp:101 {fmtp}\n" if fmtp is not None else ""
    offer = offer_with(
        "m=audio 5000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n" + fmtp_line
    )
    answer, audio = answer_to(offer)
    assert audio.dtmf_send_payload_type == 101
    assert answer.media[0].rtpmaps[101].fmtp == answered


@pytest.mark.parametrize("fmtp", ["0-9", "16", "x", "15-0", "0-300", "0-15;x"])
def test_telephone_event_without_the_digits_we_send_is_not_used(fmtp):
    offer = offer_with(
        f"m=audio 5000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\na=fmtp:101 {fmtp}\n"
    )
    answer, audio = answer_to(offer)
    assert audio.dtmf_send_payload_type is None and audio.dtmf_recv_payload_type is None
    assert answer.media[0].formats == ["0"]


def test_no_dtmf_when_we_do_not_want_it():
    answer, audio = answer_to(ASTERISK_OFFER, dtmf=False)
    assert answer.media[0].formats == ["0"]
    assert audio.dtmf_send_payload_type is None


def test_no_dtmf_when_the_offer_has_none():
    answer, audio = answer_to(SIPP_OFFER)
    assert answer.media[0].formats == ["0"]
    assert audio.dtmf_send_payload_type is None and audio.dtmf_recv_payload_type is None


def test_ipv6_offer_and_answer():
    answer, audio = answer_to(IPV6_OFFER, address="::1")
    assert audio.remote_address == ("2001:db8::10", 49170)
    assert answer.origin.addrtype == "IP6"
    assert b"c=IN IP6 ::1\r\n" in answer.serialize()


def test_streams_we_cannot_take_are_rejected_in_place():
    answer, audio = answer_to(MULTI_STREAM_OFFER, codecs=["PCMA"])
    assert [(m.media, m.port, m.proto) for m in answer.media] == [
        ("audio", 0, "RTP/AVP"),  # G.729 only
        ("video", 0, "RTP/AVP"),
        ("image", 0, "udptl"),
        ("audio", 0, "RTP/AVP"),  # rejected in the offer already
        ("audio", 30000, "RTP/AVP"),
        ("application", 0, "TCP/BFCP"),
    ]
    assert answer.media[2].formats == ["t38"]
    assert answer.media[5].formats == ["*"]
    assert audio.remote_address == ("192.0.2.40", 5006)
    assert (audio.codec, audio.dtmf_send_payload_type) == ("PCMA", 101)
    assert parse_sdp(answer.serialize()) == answer


def test_the_first_acceptable_audio_stream_wins_and_later_ones_are_rejected():
    offer = offer_with("m=audio 5000 RTP/AVP 0\nm=audio 5002 RTP/AVP 8\n")
    answer, audio = answer_to(offer, codecs=["PCMA", "PCMU"])
    assert [m.port for m in answer.media] == [30000, 0]
    assert audio.codec == "PCMU"  # the first stream's codec, though we prefer PCMA


def test_audio_over_srtp_or_avpf_is_not_taken():
    offer = offer_with("m=audio 5000 RTP/SAVP 0\nm=audio 5002 RTP/AVPF 0\nm=audio 5004 RTP/AVP 8\n")
    answer, audio = answer_to(offer)
    assert [m.port for m in answer.media] == [0, 0, 30000]
    assert audio.codec == "PCMA"


def test_no_common_codec():
    offer = offer_with("m=audio 5000 RTP/AVP 18 96\na=rtpmap:96 opus/48000/2\n")
    with pytest.raises(NoCommonCodec) as caught:
        answer_to(offer)
    assert isinstance(caught.value, SdpError)
    message = str(caught.value)
    assert "PCMU, PCMA, G722" in message
    assert "audio 5000 RTP/AVP G729/8000 opus/48000" in message


def test_browser_offer_has_no_codec_for_plain_rtp():
    with pytest.raises(NoCommonCodec, match="UDP/TLS/RTP/SAVPF"):
        answer_to(CHROME_OFFER)


def test_offer_with_only_rejected_or_no_streams():
    with pytest.raises(NoCommonCodec):
        answer_to(offer_with("m=audio 0 RTP/AVP 0\n"))
    with pytest.raises(NoCommonCodec, match="no streams"):
        answer_to(offer_with(""))
    with pytest.raises(NoCommonCodec):
        answer_to(offer_with("m=video 5000 RTP/AVP 31\n"))


def test_codec_names_are_checked():
    with pytest.raises(ValueError, match="unknown codec 'speex'") as caught:
        answer_to(ASTERISK_OFFER, codecs=["PCMU", "speex"])
    assert not isinstance(caught.value, SdpError)
    with pytest.raises(ValueError, match="not the string"):
        answer_to(ASTERISK_OFFER, codecs="PCMU")
    with pytest.raises(ValueError, match="no codecs"):
        answer_to(ASTERISK_OFFER, codecs=[])
    _, audio = answer_to(ASTERISK_OFFER, codecs=["pcma", "PcMu"])
    assert audio.codec == "PCMA"


def test_local_parameters_are_checked():
    for bad in (
        {"direction": "both"},
        {"port": 0},
        {"port": 70000},
        {"ptime": 0},
        {"address": "not an address"},
        {"session_version": -1},
    ):
        with pytest.raises(ValueError):
            answer_to(ASTERISK_OFFER, **bad)
    with pytest.raises(ValueError, match="username"):
        build_offer(**LOCAL, codecs=["PCMU"], username="two words")


# --- directions and hold ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "mirrored"),
    [
        ("sendrecv", "sendrecv"),
        ("sendonly", "recvonly"),
        ("recvonly", "sendonly"),
        ("inactive", "inactive"),
    ],
)
def test_mirror_direction(direction, mirrored):
    assert mirror_direction(direction) == mirrored
    assert mirror_direction(mirrored) == direction


def test_mirror_direction_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown direction"):
        mirror_direction("SENDRECV")


def test_intersect_directions_is_a_meet():
    for first in DIRECTIONS:
        assert intersect_directions(first, "sendrecv") == first
        assert intersect_directions(first, "inactive") == "inactive"
        for second in DIRECTIONS:
            assert intersect_directions(first, second) == intersect_directions(second, first)
    assert intersect_directions("sendonly", "recvonly") == "inactive"


@pytest.mark.parametrize(
    ("offered", "ours", "answered"),
    [
        ("a=sendrecv\n", "sendrecv", "sendrecv"),
        ("", "sendrecv", "sendrecv"),
        ("a=sendonly\n", "sendrecv", "recvonly"),  # the remote puts us on hold
        ("a=recvonly\n", "sendrecv", "sendonly"),
        ("a=inactive\n", "sendrecv", "inactive"),
        ("a=sendrecv\n", "sendonly", "sendonly"),  # we put the remote on hold
        ("a=sendonly\n", "sendonly", "inactive"),
        ("a=recvonly\n", "recvonly", "inactive"),
        ("a=sendrecv\n", "inactive", "inactive"),
    ],
)
def test_answered_direction_is_the_mirrored_offer_within_ours(offered, ours, answered):
    answer, audio = answer_to(offer_with("m=audio 5000 RTP/AVP 0\n" + offered), direction=ours)
    assert audio.direction == answered
    assert answer.media[0].direction == answered
    assert f"a={answered}\r\n".encode() in answer.serialize()


def test_media_direction_wins_over_the_session_direction():
    offer = offer_with("m=audio 5000 RTP/AVP 0\na=sendrecv\n", session_lines="a=sendonly\n")
    assert answer_to(offer)[1].direction == "sendrecv"
    offer = offer_with("m=audio 5000 RTP/AVP 0\n", session_lines="a=sendonly\n")
    assert answer_to(offer)[1].direction == "recvonly"


def test_old_style_hold_with_connection_0000():
    offer = crlf(
        "v=0\no=- 7 8 IN IP4 192.0.2.1\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 5000 RTP/AVP 0\n"
    )
    answer, audio = answer_to(offer)
    assert audio.remote_address is None
    assert audio.direction == "recvonly"  # nothing may be sent to 0.0.0.0
    assert not audio.sends and audio.receives
    assert answer.connection == "127.0.0.1"  # never 0.0.0.0 in the answer


def test_connection_in_the_media_section_wins_over_the_session():
    held = offer_with("m=audio 5000 RTP/AVP 0\nc=IN IP4 0.0.0.0\n")
    assert answer_to(held)[1].remote_address is None
    resumed = crlf(
        "v=0\no=- 7 8 IN IP4 192.0.2.1\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\n"
        "m=audio 5000 RTP/AVP 0\nc=IN IP4 192.0.2.9\n"
    )
    assert answer_to(resumed)[1].remote_address == ("192.0.2.9", 5000)


def test_ipv6_unspecified_address_is_hold_too():
    offer = crlf("v=0\no=- 7 8 IN IP6 ::1\ns=-\nc=IN IP6 ::\nt=0 0\nm=audio 5000 RTP/AVP 0\n")
    assert answer_to(offer)[1].remote_address is None


# --- our offers and their answers ---------------------------------------------------------------


def our_offer(**overrides: object) -> SessionDescription:
    arguments: dict = {**LOCAL, "codecs": ["PCMA", "PCMU", "G722"], **overrides}
    return build_offer(**arguments)


def remote_answer(media_lines: str, *, session_lines: str = "") -> SessionDescription:
    return parse_sdp(
        crlf(
            "v=0\no=pbx 900 900 IN IP4 192.0.2.20\ns=-\nc=IN IP4 192.0.2.20\nt=0 0\n"
            + session_lines
            + media_lines
        )
    )


def test_build_offer():
    offer = our_offer(ptime=30, username="gateway")
    assert offer.serialize() == crlf(
        "v=0\no=gateway 42 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\n"
        "m=audio 30000 RTP/AVP 8 0 9 101\na=rtpmap:8 PCMA/8000\na=rtpmap:0 PCMU/8000\n"
        "a=rtpmap:9 G722/8000\na=rtpmap:101 telephone-event/8000\na=fmtp:101 0-16\n"
        "a=ptime:30\na=sendrecv\n"
    )
    assert parse_sdp(offer.serialize()) == offer


def test_build_offer_without_dtmf_and_on_hold():
    offer = our_offer(codecs=["pcmu"], dtmf=False, direction="sendonly")
    assert offer.media[0].formats == ["0"]
    assert offer.media[0].direction == "sendonly"


def test_negotiate_a_typical_answer():
    answer = remote_answer(
        "m=audio 40000 RTP/AVP 0 96\na=rtpmap:0 PCMU/8000\n"
        "a=rtpmap:96 telephone-event/8000\na=fmtp:96 0-15\na=ptime:30\n"
    )
    assert negotiate_answer(our_offer(), answer) == NegotiatedAudio(
        codec="PCMU",
        clock_rate=8000,
        send_payload_type=0,
        recv_payload_type=0,
        dtmf_send_payload_type=96,  # the answer's number for telephone-event
        dtmf_recv_payload_type=101,  # ours
        remote_address=("192.0.2.20", 40000),
        direction="sendrecv",
        ptime=30,
    )


def test_negotiate_takes_the_first_answered_codec_that_we_offered():
    answer = remote_answer("m=audio 40000 RTP/AVP 18 9 8\n")
    audio = negotiate_answer(our_offer(), answer)
    assert (audio.codec, audio.send_payload_type) == ("G722", 9)
    assert audio.dtmf_send_payload_type is None and audio.dtmf_recv_payload_type is None
    assert audio.ptime == 20


def test_negotiate_with_a_dynamic_payload_type_in_the_answer():
    answer = remote_answer("m=audio 40000 RTP/AVP 97\na=rtpmap:97 pcma/8000\n")
    audio = negotiate_answer(our_offer(), answer)
    assert (audio.codec, audio.send_payload_type, audio.recv_payload_type) == ("PCMA", 97, 8)


def test_negotiate_ignores_dtmf_when_we_did_not_offer_it():
    answer = remote_answer("m=audio 40000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n")
    audio = negotiate_answer(our_offer(dtmf=False), answer)
    assert audio.dtmf_send_payload_type is None and audio.dtmf_recv_payload_type is None


@pytest.mark.parametrize(
    ("ours", "answered", "expected"),
    [
        ("sendrecv", "a=sendrecv\n", "sendrecv"),
        ("sendrecv", "a=recvonly\n", "sendonly"),
        ("sendrecv", "a=sendonly\n", "recvonly"),
        ("sendonly", "a=recvonly\n", "sendonly"),
        ("sendonly", "a=inactive\n", "inactive"),
        ("inactive", "a=inactive\n", "inactive"),
    ],
)
def test_negotiated_direction(ours, answered, expected):
    answer = remote_answer("m=audio 40000 RTP/AVP 8\n" + answered)
    assert negotiate_answer(our_offer(direction=ours), answer).direction == expected


def test_negotiate_an_answer_with_connection_0000():
    answer = remote_answer("m=audio 40000 RTP/AVP 8\nc=IN IP4 0.0.0.0\n")
    audio = negotiate_answer(our_offer(), answer)
    assert audio.remote_address is None
    assert audio.direction == "recvonly"


def test_a_rejected_audio_stream_is_no_common_codec():
    with pytest.raises(NoCommonCodec, match=r"rejected the audio stream \(port 0\)"):
        negotiate_answer(our_offer(), remote_answer("m=audio 0 RTP/AVP 8\n"))


def test_an_answer_with_none_of_our_codecs_is_no_common_codec():
    answer = remote_answer("m=audio 40000 RTP/AVP 18 96\na=rtpmap:96 PCMU/16000\n")
    with pytest.raises(NoCommonCodec, match="none of the codecs we offered: audio 40000"):
        negotiate_answer(our_offer(), answer)
    answer = remote_answer("m=audio 40000 RTP/AVP 9\n")
    with pytest.raises(NoCommonCodec):
        negotiate_answer(our_offer(codecs=["PCMU"]), answer)


def test_an_answer_that_does_not_match_the_offer_is_an_sdp_error():
    two = remote_answer("m=audio 40000 RTP/AVP 8\nm=video 0 RTP/AVP 31\n")
    with pytest.raises(SdpError, match="the answer has 2 m= lines, the offer has 1") as caught:
        negotiate_answer(our_offer(), two)
    assert not isinstance(caught.value, NoCommonCodec)
    none = remote_answer("")
    with pytest.raises(SdpError, match="0 m= lines"):
        negotiate_answer(our_offer(), none)
    video = remote_answer("m=video 40000 RTP/AVP 31\n")
    with pytest.raises(SdpError, match="m= line 1 of the answer is 'video'"):
        negotiate_answer(our_offer(), video)
    srtp = remote_answer("m=audio 40000 RTP/SAVP 8\n")
    with pytest.raises(SdpError, match="uses 'RTP/SAVP'"):
        negotiate_answer(our_offer(), srtp)


def test_negotiating_against_our_own_answer_agrees_with_the_answerer():
    offer = parse_sdp(MULTI_STREAM_OFFER)
    answer, answered = answer_to(offer, codecs=["PCMA"])
    offered = negotiate_answer(offer, answer)
    assert offered.codec == answered.codec
    assert offered.send_payload_type == answered.recv_payload_type
    assert offered.dtmf_send_payload_type == answered.dtmf_recv_payload_type
    assert offered.remote_address == ("127.0.0.1", 30000)
    assert offered.direction == mirror_direction(answered.direction)


# --- re-INVITEs ---------------------------------------------------------------------------------


def test_answering_hold_and_resume_re_offers_in_the_same_session():
    first, audio = answer_to(ASTERISK_OFFER, session_version=1)
    assert audio.direction == "sendrecv"
    hold = ASTERISK_OFFER.replace(b"1718101011 1718101011", b"1718101011 1718101012")
    hold = hold.replace(b"a=sendrecv", b"a=sendonly")
    held, audio = answer_to(hold, session_version=first.origin.version + 1)
    assert held.origin == dataclasses.replace(first.origin, version=2)
    assert audio.direction == "recvonly"
    assert audio.codec == "PCMU" and audio.remote_address == ("192.0.2.10", 17046)
    resume = hold.replace(b"1718101012", b"1718101013").replace(b"a=sendonly", b"a=sendrecv")
    resumed, audio = answer_to(resume, session_version=held.origin.version + 1)
    assert resumed.origin.session_id == first.origin.session_id
    assert resumed.origin.version == 3
    assert audio.direction == "sendrecv"
    assert not is_same_version(parse_sdp(hold), parse_sdp(resume))
    assert is_same_version(parse_sdp(resume), parse_sdp(resume))


def test_build_reoffer_for_hold_keeps_every_stream_and_bumps_the_version():
    answer, _ = answer_to(MULTI_STREAM_OFFER, codecs=["PCMA"])
    hold = build_reoffer(answer, direction="sendonly")
    assert hold.origin == dataclasses.replace(answer.origin, version=answer.origin.version + 1)
    assert [m.port for m in hold.media] == [m.port for m in answer.media]
    assert hold.media[4].direction == "sendonly"
    assert answer.media[4].direction == "sendrecv"  # the previous one is left alone
    remote = parse_sdp(
        MULTI_STREAM_OFFER.replace(b"5 5 IN", b"5 6 IN").replace(
            b"a=fmtp:101 0-15\r\n", b"a=fmtp:101 0-15\r\na=recvonly\r\n"
        )
    )
    audio = negotiate_answer(hold, remote)
    assert audio.direction == "sendonly"
    resume = build_reoffer(hold, direction="sendrecv")
    assert resume.origin.version == answer.origin.version + 2
    assert resume.media[4].direction == "sendrecv"


def test_build_reoffer_needs_an_active_audio_stream():
    offer = parse_sdp(offer_with("m=audio 0 RTP/AVP 0\n"))
    with pytest.raises(ValueError, match="no active RTP/AVP audio stream"):
        build_reoffer(offer, direction="sendonly")
    with pytest.raises(ValueError, match="unknown direction"):
        build_reoffer(our_offer(), direction="hold")


# --- property tests: round trip ---------------------------------------------------------------

_TOKEN_CHARS = "!#$%&'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcdefghijklmnopqrstuvwxyz{|}~"
_RESERVED_ATTRIBUTES = {"rtpmap", "fmtp", "ptime", *DIRECTIONS}

tokens = st.text(_TOKEN_CHARS, min_size=1, max_size=10)
attribute_names = tokens.filter(lambda name: name.lower() not in _RESERVED_ATTRIBUTES)
# Any text but controls and surrogates; no trailing blanks (a peer's trailing blanks are
# dropped on parsing, so they are not part of a valid description's value).
free_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=24).map(
    lambda text: text.rstrip(" \t")
)
nonempty_trimmed_text = free_text.map(lambda text: text.strip(" \t")).filter(bool)
addresses = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
    st.sampled_from(["pbx.example.com", "localhost", "a-b.c"]),
)
attributes = st.lists(st.tuples(attribute_names, st.none() | free_text), max_size=4)
bandwidths = st.lists(st.builds("{}:{}".format, tokens, st.integers(0, 10**12)), max_size=2)
directions = st.none() | st.sampled_from(DIRECTIONS)


@st.composite
def rtp_maps(draw, payload_type: int) -> RtpMap:
    return RtpMap(
        payload_type,
        draw(tokens),
        draw(st.integers(1, 10**9)),
        draw(st.integers(1, 255)),
        draw(st.none() | nonempty_trimmed_text),
    )


@st.composite
def media_descriptions(draw, session_has_connection: bool) -> MediaDescription:
    port = draw(st.integers(0, 65535))
    min_formats = 0 if port == 0 else 1
    if draw(st.booleans()):
        proto = draw(st.sampled_from(["RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", "RTP/AVPF"]))
        payload_types = draw(st.lists(st.integers(0, 127), min_size=min_formats, max_size=6))
        formats = [str(pt) for pt in payload_types]
        unlisted = draw(st.lists(st.integers(0, 127), max_size=2))
        rtpmaps = {}
        for pt in [*payload_types, *unlisted]:
            static = STATIC_PAYLOAD_TYPES.get(pt) if pt in payload_types else None
            if static is not None and draw(st.booleans()):
                rtpmaps[pt] = RtpMap(pt, *static, fmtp=draw(st.none() | nonempty_trimmed_text))
            elif static is not None or draw(st.booleans()):
                rtpmaps[pt] = draw(rtp_maps(pt))
    else:
        proto = draw(st.sampled_from(["udptl", "TCP/BFCP", "UDP/DTLS/SCTP"]))
        formats = draw(st.lists(tokens, min_size=min_formats, max_size=4))
        rtpmaps = {}
    needs_connection = port != 0 and not session_has_connection
    connection = draw(addresses if needs_connection else st.none() | addresses)
    extra_i = draw(st.lists(st.tuples(st.just("i"), free_text), max_size=1))
    extra_k = draw(st.lists(st.tuples(st.just("k"), free_text), max_size=1))
    return MediaDescription(
        media=draw(tokens),
        port=port,
        proto=proto,
        formats=formats,
        connection=connection,
        rtpmaps=rtpmaps,
        direction=draw(directions),
        ptime=draw(st.none() | st.integers(1, 1000)),
        attributes=draw(attributes),
        port_count=draw(st.none() | st.integers(1, 99999)),
        bandwidths=draw(bandwidths),
        extra_lines=extra_i + extra_k,
    )


@st.composite
def session_descriptions(draw) -> SessionDescription:
    connection = draw(st.none() | addresses)
    timing = st.tuples(st.integers(0, 2**40), st.integers(0, 2**40))
    before_connection = draw(st.lists(st.tuples(st.sampled_from("iuep"), free_text), max_size=3))
    after_timing = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("t"), timing.map(lambda t: f"{t[0]} {t[1]}")),
                st.tuples(st.sampled_from("rz"), free_text),
            ),
            max_size=2,
        )
    )
    key = draw(st.lists(st.tuples(st.just("k"), free_text), max_size=1))
    visible = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)
    return SessionDescription(
        origin=Origin(
            draw(visible),
            draw(st.integers(0, 2**64)),
            draw(st.integers(0, 2**64)),
            draw(tokens),
            draw(tokens),
            draw(visible),
        ),
        session_name=draw(free_text),
        connection=connection,
        timing=draw(timing),
        attributes=draw(attributes),
        media=draw(st.lists(media_descriptions(connection is not None), max_size=4)),
        direction=draw(directions),
        bandwidths=draw(bandwidths),
        extra_lines=before_connection + after_timing + key,
    )


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(session_descriptions())
def test_round_trip_of_random_valid_descriptions(sdp):
    data = sdp.serialize()
    assert parse_sdp(data) == sdp
    assert parse_sdp(data.replace(b"\r\n", b"\n")) == sdp


@settings(max_examples=200)
@given(
    session_id=st.integers(0, 2**63),
    version=st.integers(0, 2**63),
    codecs=st.lists(st.sampled_from(["PCMU", "pcma", "G722"]), min_size=1, unique=True),
    dtmf=st.booleans(),
    direction=st.sampled_from(DIRECTIONS),
    address=st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str)),
    port=st.integers(1, 65535),
    ptime=st.integers(1, 1000),
)
def test_offer_answer_round_trip(
    session_id, version, codecs, dtmf, direction, address, port, ptime
):
    """Our offer answered by ourselves agrees on both sides, whatever the parameters."""
    offer = build_offer(
        address=address,
        port=port,
        codecs=codecs,
        dtmf=dtmf,
        ptime=ptime,
        direction=direction,
        session_id=session_id,
        session_version=version,
    )
    assert parse_sdp(offer.serialize()) == offer
    answer, answered = build_answer(
        parse_sdp(offer.serialize()),
        address="127.0.0.1",
        port=4000,
        codecs=list(reversed(codecs)),
        session_id=1,
        session_version=1,
    )
    assert parse_sdp(answer.serialize()) == answer
    offered = negotiate_answer(offer, parse_sdp(answer.serialize()))
    assert answered.codec == offered.codec == codecs[-1].upper()
    assert offered.direction == mirror_direction(answered.direction)
    assert intersect_directions(offered.direction, direction) == offered.direction
    assert (offered.dtmf_send_payload_type is not None) == dtmf
    assert answered.remote_address == (
        None if ipaddress.ip_address(address).is_unspecified else (address, port)
    )
    assert (answered.ptime, offered.ptime) == (ptime, 20)  # each side reports the other's


# --- fuzzing: nothing but SdpError escapes ------------------------------------------------------


def check_only_sdp_errors(data: bytes | str) -> None:
    """Parse `data`; if it parses, it must serialize, re-parse equal, and negotiate cleanly."""
    try:
        sdp = parse_sdp(data)
    except SdpError:
        return
    assert parse_sdp(sdp.serialize()) == sdp
    try:
        answer, _ = build_answer(sdp, **LOCAL, codecs=["PCMU", "PCMA", "G722"])
    except NoCommonCodec:
        pass
    else:
        assert len(answer.media) == len(sdp.media)
        assert parse_sdp(answer.serialize()) == answer
    with contextlib.suppress(SdpError):
        negotiate_answer(our_offer(), sdp)


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_sdp_error(data):
    check_only_sdp_errors(data)
    check_only_sdp_errors(b"v=0\r\n" + data)


@settings(max_examples=300)
@given(st.text(max_size=300))
def test_random_text_raises_only_sdp_error(text):
    check_only_sdp_errors(text)


line_types = st.sampled_from("vosiuepcbtrzkamx")
line_values = st.one_of(
    st.text(max_size=40),
    st.text(" 0123456789./:-IPNAVTRmaudioptime", max_size=30),
    st.sampled_from(
        [
            "audio 0 RTP/AVP 0",
            "audio 5000 RTP/AVP 0 8 101",
            "IN IP4 0.0.0.0",
            "IN IP6 ::",
            "rtpmap:101 telephone-event/8000",
            "fmtp:101 0-15",
            "ptime:20",
            "sendonly",
            "inactive",
            "- 1 1 IN IP4 h",
            "0 0",
            "image 1 udptl t38",
        ]
    ),
)


@settings(max_examples=500)
@given(st.lists(st.tuples(line_types, line_values), max_size=20), st.booleans())
def test_random_lines_raise_only_sdp_error(lines, lf):
    body = "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 192.0.2.1\r\n" + "".join(
        f"{kind}={value}\r\n" for kind, value in lines
    )
    check_only_sdp_errors(body.replace("\r\n", "\n") if lf else body)


@st.composite
def mutated_real_sdps(draw) -> bytes:
    data = bytearray(REAL_WORLD[draw(st.sampled_from(sorted(REAL_WORLD)))])
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        operation = draw(st.sampled_from(["insert", "delete", "replace", "line", "truncate"]))
        if operation == "insert":
            data[position:position] = draw(
                st.one_of(
                    st.binary(min_size=1, max_size=8),
                    st.sampled_from(
                        [b"\r\n", b" ", b"/", b":", b"0", b"99999", b"a=", b"m=", b"c=", b"\x00"]
                    ),
                )
            )
        elif operation == "delete":
            del data[position : position + draw(st.integers(1, 20))]
        elif operation == "replace":
            data[position] = draw(st.integers(0, 255))
        elif operation == "line":
            lines = bytes(data).split(b"\r\n")
            index = position % len(lines)
            if draw(st.booleans()):
                lines.insert(draw(st.integers(0, len(lines))), lines[index])
            else:
                del lines[index]
            data = bytearray(b"\r\n".join(lines))
        else:
            del data[position:]
    return bytes(data)


@settings(max_examples=1000)
@given(mutated_real_sdps())
def test_mutated_real_sdps_raise_only_sdp_error(data):
    check_only_sdp_errors(data)


# --- real peers: baresip answers our offer and accepts our answer -------------------------------

needs_baresip = pytest.mark.skipif(shutil.which("baresip") is None, reason="baresip not installed")


@pytest.fixture
def udp_sockets():
    opened: list[socket.socket] = []

    def open_socket(port: int = 0) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", port))
        sock.settimeout(0.2)
        opened.append(sock)
        return sock

    yield open_socket
    for sock in opened:
        sock.close()


def sip_message(start: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [start, *(f"{name}: {value}" for name, value in headers)]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def receive_sip(sock: socket.socket, wanted: str, seconds: float = 5.0):
    """The next SIP message whose start line begins with `wanted`: (start, headers, body, addr)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, address = sock.recvfrom(65535)
        except TimeoutError:
            continue
        head, _, body = data.partition(b"\r\n\r\n")
        start, *lines = head.decode().split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), value.strip())
        if start.startswith(wanted):
            return start, headers, body, address
    raise AssertionError(f"no {wanted!r} within {seconds} s")


def receive_rtp(sock: socket.socket, seconds: float, count: int) -> list[tuple[int, bytes]]:
    """(payload type, payload) of up to `count` RTP packets."""
    packets = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(packets) < count:
        try:
            data = sock.recv(2048)
        except TimeoutError:
            continue
        if len(data) >= 12 and data[0] >> 6 == 2:
            header = 12 + 4 * (data[0] & 0x0F)
            packets.append((data[1] & 0x7F, data[header:]))
    return packets


def assert_heard_tone(packets: list[tuple[int, bytes]], audio: NegotiatedAudio) -> None:
    voice = [
        payload for payload_type, payload in packets if payload_type != audio.dtmf_recv_payload_type
    ]
    assert len(voice) >= 40, f"only {len(voice)} RTP packets"
    assert {pt for pt, _ in packets} <= {audio.recv_payload_type, audio.dtmf_recv_payload_type}
    decode = {"PCMU": ulaw_decode, "PCMA": alaw_decode}[audio.codec]
    assert_tone(decode(b"".join(voice)), 8000, 440.0, what=f"{audio.codec} from baresip")


def phone(tmp_path) -> BaresipPhone:
    """A desk phone that takes PCMU and PCMA (no G.722) and plays 440 Hz for 3 s."""
    return BaresipPhone(
        tmp_path / "phone", codecs=("PCMU", "PCMA"), tone_seconds=3.0, sip_trace=False
    )


@needs_baresip
def test_baresip_answers_our_offer(tmp_path, udp_sockets):
    with phone(tmp_path) as peer:
        sip, rtp = udp_sockets(), udp_sockets(free_rtp_port_pair())
        sip_port, rtp_port = sip.getsockname()[1], rtp.getsockname()[1]
        offer = build_offer(
            address="127.0.0.1",
            port=rtp_port,
            codecs=["G722", "PCMA", "PCMU"],
            session_id=int(time.time()),
            session_version=1,
        )
        via = f"SIP/2.0/UDP 127.0.0.1:{sip_port};branch=z9hG4bKsdp"
        dialog = [
            ("From", f"<sip:gateway@127.0.0.1:{sip_port}>;tag=gw1"),
            ("To", f"<{peer.uri}>"),
            ("Call-ID", f"sdp-test-{sip_port}"),
        ]
        invite = sip_message(
            f"INVITE {peer.uri} SIP/2.0",
            [
                ("Via", via + "1"),
                ("Max-Forwards", "70"),
                *dialog,
                ("CSeq", "1 INVITE"),
                ("Contact", f"<sip:gateway@127.0.0.1:{sip_port}>"),
            ],
            offer.serialize(),
        )
        sip.sendto(invite, peer.address)
        _, headers, body, _ = receive_sip(sip, "SIP/2.0 200")
        audio = negotiate_answer(offer, parse_sdp(body))
        # baresip has no G.722 here: it answers with the first of ours that it has.
        assert (audio.codec, audio.send_payload_type, audio.recv_payload_type) == ("PCMA", 8, 8)
        assert audio.dtmf_send_payload_type == 101 and audio.dtmf_recv_payload_type == 101
        assert audio.direction == "sendrecv"
        assert audio.remote_address is not None
        assert audio.remote_address[0] == "127.0.0.1"
        assert audio.remote_address[1] in peer.rtp_ports
        dialog[1] = ("To", headers["to"])
        remote_target = headers["contact"].strip("<>")

        def in_dialog(method: str, branch: str, cseq: str) -> bytes:
            return sip_message(
                f"{method} {remote_target} SIP/2.0",
                [("Via", via + branch), ("Max-Forwards", "70"), *dialog, ("CSeq", cseq)],
            )

        sip.sendto(in_dialog("ACK", "2", "1 ACK"), peer.address)
        # baresip sends what it plays with the payload type of its answer.
        assert_heard_tone(receive_rtp(rtp, 3.0, 75), audio)
        sip.sendto(in_dialog("BYE", "3", "2 BYE"), peer.address)
        receive_sip(sip, "SIP/2.0 200")


@needs_baresip
def test_baresip_accepts_our_answer(tmp_path, udp_sockets):
    sip, rtp = udp_sockets(), udp_sockets(free_rtp_port_pair())
    sip_port, rtp_port = sip.getsockname()[1], rtp.getsockname()[1]
    with phone(tmp_path) as peer:
        peer.dial(f"sip:gateway@127.0.0.1:{sip_port}")
        _, headers, body, address = receive_sip(sip, "INVITE ")
        offer = parse_sdp(body)
        assert offer.media[0].formats == ["0", "8", "101"]  # baresip prefers PCMU
        answer, audio = build_answer(
            offer,
            address="127.0.0.1",
            port=rtp_port,
            codecs=["PCMA", "PCMU"],
            session_id=4242,
            session_version=1,
        )
        assert (audio.codec, audio.recv_payload_type) == ("PCMA", 8)
        assert audio.remote_address == ("127.0.0.1", offer.media[0].port)
        our_tag = headers["to"] + ";tag=gw2"
        ok = sip_message(
            "SIP/2.0 200 OK",
            [
                ("Via", headers["via"]),
                ("From", headers["from"]),
                ("To", our_tag),
                ("Call-ID", headers["call-id"]),
                ("CSeq", headers["cseq"]),
                ("Contact", f"<sip:gateway@127.0.0.1:{sip_port}>"),
            ],
            answer.serialize(),
        )
        sip.sendto(ok, address)
        receive_sip(sip, "ACK ")
        # baresip sends with the payload type of our answer: PCMA, though it preferred PCMU.
        assert_heard_tone(receive_rtp(rtp, 3.0, 75), audio)
        bye = sip_message(
            f"BYE {headers['contact'].strip('<>')} SIP/2.0",
            [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:{sip_port};branch=z9hG4bKsdp4"),
                ("Max-Forwards", "70"),
                ("From", our_tag),
                ("To", headers["from"]),
                ("Call-ID", headers["call-id"]),
                ("CSeq", "1 BYE"),
            ],
        )
        sip.sendto(bye, address)
        receive_sip(sip, "SIP/2.0 200")


def test_g729_offered_with_annex_b_is_chosen_and_answered_with_annexb_no():
    # A PBX offering G.729 with VAD/comfort noise (annexb=yes, also the default), static PT.
    offer = offer_with(
        "m=audio 5000 RTP/AVP 18 0 101\na=fmtp:18 annexb=yes\n"
        "a=rtpmap:101 telephone-event/8000\na=fmtp:101 0-15\n"
    )
    answer, audio = answer_to(offer, codecs=["G729", "PCMU"])
    assert (audio.codec, audio.clock_rate, audio.send_payload_type) == ("G729", 8000, 18)
    assert audio.dtmf_send_payload_type == 101
    (media,) = answer.media
    assert media.formats == ["18", "101"]
    assert media.rtpmaps[18] == RtpMap(18, "G729", 8000, 1, "annexb=no")
    # Not chosen when the operator did not list it.
    _, audio = answer_to(offer, codecs=["PCMU"])
    assert audio.codec == "PCMU"


def test_our_g729_offer_says_annexb_no():
    offer = build_offer(
        address="127.0.0.1", port=30000, codecs=["G729"], session_id=1, session_version=1
    )
    text = offer.serialize()
    assert b"m=audio 30000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\n" in text
    assert b"a=fmtp:18 annexb=no\r\n" in text
