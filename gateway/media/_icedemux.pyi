# The ICE socket's dispatch of media datagrams in C (gateway/media/_icedemux.c).
from collections.abc import Callable
from typing import Any

class Demux:
    def __init__(
        self, by_address: dict[Any, Any], other: Callable[[bytes, Any], None], /
    ) -> None: ...
    def __call__(self, data: bytes, addr: Any, /) -> None: ...
