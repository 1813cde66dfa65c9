"""TCP/TLS framing against a peer that trickles: linear work, same messages out."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sip_bridge.message import MAX_MESSAGE_SIZE, StreamFramer

from . import corpus


class CountingBuffer(bytearray):
    """The framer's buffer, counting the bytes its searches look at."""

    scanned = 0

    def find(self, sub, start=0, *args):  # type: ignore[override]
        CountingBuffer.scanned += len(self) - max(start, 0)
        return super().find(sub, start, *args)


def test_a_large_message_trickled_byte_by_byte_is_framed_in_linear_time():
    # Found by fuzzing: every byte used to rescan the whole buffer (and re-read the
    # Content-Length), so one slow peer could burn seconds of CPU per message. Counted in
    # bytes searched, not seconds: the same on an idle machine and a busy one.
    header = b"OPTIONS sip:a@b SIP/2.0\r\nX-Pad: " + b"a" * 30000 + b"\r\n"
    body = b"b" * 30000
    message = header + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    assert len(message) < MAX_MESSAGE_SIZE
    framer = StreamFramer()
    framer._buffer = CountingBuffer()
    CountingBuffer.scanned = 0
    out = []
    for i in range(len(message)):
        out += framer.feed(message[i : i + 1])
    assert out == [message]
    # Each byte is looked at a few times at most (a rescan per byte: ~len**2 / 2 = 1.8e9).
    assert CountingBuffer.scanned < 5 * len(message), CountingBuffer.scanned


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(corpus.recorded_sip("sipp-uas_answer_echo")), min_size=1, max_size=5),
    st.lists(st.integers(1, 400), min_size=1, max_size=10),
    st.booleans(),
)
def test_messages_cut_anywhere_come_out_whole_and_in_order(messages, cuts, keepalives):
    stream = (b"\r\n\r\n" if keepalives else b"").join(messages)
    framer = StreamFramer()
    out: list[bytes] = []
    position, index = 0, 0
    while position < len(stream):
        size = cuts[index % len(cuts)]
        out += framer.feed(stream[position : position + size])
        position += size
        index += 1
    assert out == list(messages)
