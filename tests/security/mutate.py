"""Mutation of recorded messages, the way fuzzers break real traffic.

`Mutator(rng, corpus).mutate(data)` applies one to several operations: bit flips and byte
sets, protocol tokens inserted (separators, CRLF, quotes, escapes, NUL), ranges deleted or
duplicated, numbers swapped for boundary values, lines dropped, repeated or swapped, a
splice with another corpus message, truncation, bytes that are not UTF-8 or digits that
are not ASCII. `rng` is any `random.Random`, e.g. hypothesis's `st.randoms()` so that a
failing case shrinks and replays.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

TEXT_TOKENS = (
    b":", b";", b",", b"=", b"<", b">", b'"', b"\\", b"%", b"%0", b"@", b"[", b"]", b"?",
    b" ", b"\t", b"\r\n", b"\r\n ", b"\n", b"\r", b"\x00", b"\x7f", b"\xff",
    b"\xc3\x28", b"\xed\xa0\x80",  # not UTF-8 / a surrogate
    b"\xc2\xb3", b"\xd9\xa0",  # superscript three, Arabic-Indic zero
    b"sip:", b"sips:", b"tel:", b"SIP/2.0", b";tag=", b";branch=z9hG4bK", b";rport",
    b";received=", b";maddr=", b";lr", b"\r\nVia: SIP/2.0/UDP h", b"\r\nContent-Length: 0",
    b"\r\n\r\n", b"v=0\r\n", b"m=audio ", b"a=rtpmap:", b"c=IN IP4 ", b"IN IP6 ::1",
    b"*", b"0.0.0.0", b"::", b"[::1]", b"255.255.255.255",
)  # fmt: skip

BOUNDARY_NUMBERS = (
    b"0", b"1", b"-1", b"00", b"255", b"256", b"65535", b"65536", b"2147483647",
    b"2147483648", b"4294967295", b"4294967296", b"18446744073709551616",
    b"99999999999999999999999999", b"1e3", b"0x10", b"1.5",
)  # fmt: skip

_NUMBER = re.compile(rb"\d+")
Operation = Callable[[bytearray], None]


class Mutator:
    def __init__(self, rng: random.Random, corpus: Sequence[bytes], *, text: bool = True) -> None:
        self.rng = rng
        self.corpus = corpus
        self.text = text
        ops: list[Operation] = [
            self._flip_bit,
            self._set_byte,
            self._delete_range,
            self._duplicate_range,
            self._splice,
            self._truncate,
            self._insert_random,
        ]
        if text:
            ops += [
                self._insert_token,
                self._insert_token,
                self._boundary_number,
                self._boundary_number,
                self._line_operation,
                self._line_operation,
                self._long_value,
            ]
        else:
            ops += [self._set_word, self._set_word]
        self._operations = ops

    def mutate(self, data: bytes, max_operations: int = 6) -> bytes:
        """1 to `max_operations` mutations of `data` (0: `data` as it is, a replay)."""
        if max_operations == 0:
            return data
        out = bytearray(data)
        for _ in range(self.rng.randint(1, max_operations)):
            self.rng.choice(self._operations)(out)
        return bytes(out)

    # ------------------------------------------------------------------ byte level
    def _position(self, data: bytearray) -> int:
        return self.rng.randint(0, len(data)) if data else 0

    def _flip_bit(self, data: bytearray) -> None:
        if data:
            data[self.rng.randrange(len(data))] ^= 1 << self.rng.randrange(8)

    def _set_byte(self, data: bytearray) -> None:
        if data:
            value = self.rng.choice(
                (0, 0xFF, 0x7F, 0x80, 0x20, 0x0D, 0x0A, self.rng.randrange(256))
            )
            data[self.rng.randrange(len(data))] = value

    def _set_word(self, data: bytearray) -> None:
        """A 16- or 32-bit field (lengths, counts, sequence numbers) to a boundary value."""
        width = self.rng.choice((2, 4))
        if len(data) < width:
            return
        at = self.rng.randrange(0, len(data) - width + 1)
        value = self.rng.choice((0, 1, 0x7F, 0xFF, 0xFFFF, 0xFFFFFFFF, self.rng.getrandbits(32)))
        data[at : at + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "big")

    def _insert_random(self, data: bytearray) -> None:
        at = self._position(data)
        data[at:at] = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 16)))

    def _delete_range(self, data: bytearray) -> None:
        if len(data) > 1:
            start = self.rng.randrange(len(data))
            del data[start : start + self.rng.randint(1, 32)]

    def _duplicate_range(self, data: bytearray) -> None:
        if data:
            start = self.rng.randrange(len(data))
            chunk = data[start : start + self.rng.randint(1, 64)]
            at = self._position(data)
            data[at:at] = chunk * self.rng.choice((1, 1, 2, 50))

    def _splice(self, data: bytearray) -> None:
        other = self.rng.choice(self.corpus)
        cut_here = self._position(data)
        cut_there = self.rng.randint(0, len(other))
        data[cut_here:] = other[cut_there:]

    def _truncate(self, data: bytearray) -> None:
        if data:
            del data[self.rng.randrange(len(data)) :]

    # ------------------------------------------------------------------ text level
    def _insert_token(self, data: bytearray) -> None:
        at = self._position(data)
        data[at:at] = self.rng.choice(TEXT_TOKENS)

    def _boundary_number(self, data: bytearray) -> None:
        numbers = list(_NUMBER.finditer(bytes(data)))
        if numbers:
            match = self.rng.choice(numbers)
            data[match.start() : match.end()] = self.rng.choice(BOUNDARY_NUMBERS)

    def _line_operation(self, data: bytearray) -> None:
        lines = bytes(data).split(b"\r\n")
        if len(lines) < 2:
            return
        index = self.rng.randrange(len(lines))
        kind = self.rng.randrange(5)
        if kind == 0:
            del lines[index]
        elif kind == 1:
            lines.insert(index, lines[index])
        elif kind == 2:
            other = self.rng.randrange(len(lines))
            lines[index], lines[other] = lines[other], lines[index]
        elif kind == 3:
            lines[index:index] = [lines[index]] * self.rng.choice((10, 130, 500))
        else:
            name, _, _ = lines[index].partition(b":")
            lines[index] = name + b":" + self.rng.choice(TEXT_TOKENS) * self.rng.randint(1, 9)
        data[:] = b"\r\n".join(lines)

    def _long_value(self, data: bytearray) -> None:
        at = self._position(data)
        data[at:at] = self.rng.choice((b"a", b"9", b";x", b"<", b" ")) * self.rng.choice(
            (100, 1000, 9000, 70000)
        )
