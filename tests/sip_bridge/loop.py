"""An in-memory network for driving sans-I/O user agents with a fake clock."""

from __future__ import annotations

from collections.abc import Callable

from sip_bridge.events import MessageTrace
from sip_bridge.message import Request, Response, parse_message
from sip_bridge.useragent import UserAgent

Address = tuple[str, int]

CALLER: Address = ("127.0.0.1", 5070)  # the user agent under test, in most tests
PEER: Address = ("127.0.0.1", 5090)  # the far end it calls


class Wire:
    """Delivers datagrams between user agents, and records what each one sent.

    `drop` decides per datagram whether it is lost (to test retransmissions).
    Addresses without a UA collect their datagrams in `captured` (a scripted peer).
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self.agents: dict[Address, UserAgent] = {}
        self.events: dict[Address, list] = {}
        self.sent: list[tuple[Address, Address, bytes]] = []
        self.send_times: list[tuple[float, Address]] = []
        self.captured: dict[Address, list[bytes]] = {}
        self.drop: Callable[[Address, Address, bytes], bool] = lambda src, dst, data: False

    def add(self, ua: UserAgent) -> UserAgent:
        self.agents[ua.config.address] = ua
        self.events[ua.config.address] = []
        return ua

    def flush(self) -> None:
        """Move every pending datagram until the network is quiet."""
        for _ in range(1000):
            moved = False
            for address, ua in list(self.agents.items()):
                for data, destination in ua.datagrams_to_send(self.now):
                    moved = True
                    self.sent.append((address, destination, data))
                    self.send_times.append((self.now, address))
                    if self.drop(address, destination, data):
                        continue
                    peer = self.agents.get(destination)
                    if peer is None:
                        self.captured.setdefault(destination, []).append(data)
                    else:
                        peer.receive_datagram(data, address, self.now)
                self._collect(address, ua)
            if not moved:
                return
        raise AssertionError("network never went quiet")

    def inject(self, ua: UserAgent, data: bytes, source: Address) -> None:
        ua.receive_datagram(data, source, self.now)
        self.flush()

    def _collect(self, address: Address, ua: UserAgent) -> None:
        while (event := ua.next_event()) is not None:
            if not isinstance(event, MessageTrace):
                self.events[address].append(event)

    def advance(self, seconds: float, step: float = 0.05) -> None:
        """Move the clock forward, firing every timer that falls due on the way."""
        end = self.now + seconds
        while True:
            due = [t for ua in self.agents.values() if (t := ua.get_timer()) is not None]
            next_due = min(due) if due else None
            if next_due is None or next_due > end:
                self.now = end
                self.flush()
                return
            self.now = max(self.now, next_due)
            for ua in self.agents.values():
                timer = ua.get_timer()
                if timer is not None and timer <= self.now:
                    ua.handle_timer(self.now)
            self.flush()

    def messages_from(self, address: Address) -> list[Request | Response]:
        return [parse_message(d) for src, _, d in self.sent if src == address]

    def summary(self, address: Address) -> list[str]:
        out = []
        for m in self.messages_from(address):
            if isinstance(m, Request):
                out.append(m.method)
            else:
                out.append(f"{m.status} {m.cseq.method}")
        return out
