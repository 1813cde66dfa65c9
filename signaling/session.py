"""What signaling keeps for one connected client, and for the call it has."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from gateway.api import CallUpdate


@dataclass(eq=False, slots=True)
class CallSlot:
    """One call of a client, as signaling sees it (never the gateway's call object)."""

    call_id: str | None = None  # None while call:start is in progress
    candidates: int = 0  # call:candidate events counted against the per-call limit
    # Updates notified before start_call returned: held so that every call:state carries
    # the call id, and the page normally has the answer before the first state.
    held: list[CallUpdate] = field(default_factory=list)


class ClientSession:
    """One socket.io connection: its site, its address, the call it has (at most one), its
    pre-call check (at most one, never during a call), and the two things that keep its
    traffic in order.

    - `lock` serializes the client's events: python-socketio runs every event as its own
      task, so without it a candidate could reach the gateway before the offer, or a hangup
      overtake the call:start it should end.
    - `outbox` + one writer task send server events (session, call:state, error) in the
      order they were produced; notifications come from the gateway's tasks, not ours.
    """

    def __init__(self, sid: str, site_id: str, client: str) -> None:
        self.sid = sid
        self.site_id = site_id
        self.client = client
        self.lock = asyncio.Lock()
        self.waiting = 0  # events queued on `lock` or running
        self.call: CallSlot | None = None
        self.check: str | None = None  # the pre-call check going on: its id
        self.voicemail: str | None = None  # the voicemail being left: its id
        self.conversation: str | None = None  # the chat of this connection: its id
        # The last call of this connection: a voicemail that follows it is about it.
        self.last_call: str | None = None
        self.closed = False
        self.outbox: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None

    def send(self, event: str, payload: dict[str, Any]) -> None:
        """Queue a server event for this client; dropped once the client is gone."""
        if not self.closed:
            self.outbox.put_nowait((event, payload))
