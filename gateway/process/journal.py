"""What a worker leaves behind so that its calls can be ended after it died.

A worker records, twice a second, the SIP side of its live calls in a small JSON file:
each confirmed dialog (what a BYE needs: Call-ID, tags, From/To, CSeq, remote target,
route set, next hop) and each INVITE still ringing (what a CANCEL needs: the INVITE
itself and where it went). The file is replaced atomically and only when it changed.

With several nodes, the worker also publishes the same entries in Redis with its heartbeat
(gateway.process.failover), so that another node can end its calls when the whole node
dies. When the worker dies, the supervisor reads the file and, from the dead worker's own
SIP port (so responses come back to it), sends BYE for every dialog and CANCEL for every
ringing INVITE (ACKing the 487, or ACK + BYE if a 200 crossed the CANCEL), retransmitting
as RFC 3261 says for UDP (T1 doubling) but for at most a few seconds: the worker is not
restarted until this is done. Calls set up less than half a second before the crash may be
missing from the file; their far end ends them on its own timers (or on our RTP stopping).

The worker reads the user agent's `live_calls()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import select
import socket
import time
from pathlib import Path

from sip_bridge import (
    ConfirmedDialog,
    Dialog,
    Request,
    Response,
    SipEndpoint,
    SipParseError,
    build_non2xx_ack,
    parse_message,
    parse_uri,
    same_transaction_request,
    uri_address,
)

logger = logging.getLogger(__name__)

JOURNAL_PERIOD = 0.5  # seconds between snapshots
T1 = 0.5  # RFC 3261 retransmission base (UDP)
ENDING_TIME = 4.0  # seconds the supervisor spends ending a dead worker's calls


# ---------------------------------------------------------------------------- worker side
def snapshot(endpoint: SipEndpoint) -> list[dict]:
    """The live calls of a `SipEndpoint`'s user agent, as journal entries."""
    entries: list[dict] = []
    for live in endpoint.ua.live_calls():
        if isinstance(live, ConfirmedDialog):
            entries.append(
                {
                    "kind": "dialog",
                    "call_id": live.call_id,
                    "local_tag": live.local_tag,
                    "remote_tag": live.remote_tag,
                    "local_party": live.local_party,
                    "remote_party": live.remote_party,
                    "local_seq": live.local_seq,
                    "remote_target": live.remote_target,
                    "route_set": list(live.route_set),
                    "destination": list(live.destination),
                }
            )
        else:
            entries.append(
                {
                    "kind": "invite",
                    "invite": live.invite.decode("utf-8", "surrogateescape"),
                    "destination": list(live.destination),
                }
            )
    return entries


class DialogJournal:
    """Keeps the journal file of one worker up to date while it runs."""

    def __init__(self, endpoint: SipEndpoint, path: Path) -> None:
        self._endpoint = endpoint
        self._path = path
        self._written: str | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._write([])
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.record()

    def record(self) -> None:
        """Write the current calls now (if they changed)."""
        self._write(snapshot(self._endpoint))

    def _write(self, entries: list[dict]) -> None:
        text = json.dumps(entries)
        if text == self._written:
            return
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(text)
        os.replace(temporary, self._path)
        self._written = text

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(JOURNAL_PERIOD)
            try:
                self.record()
            except OSError as exc:
                logger.warning("cannot write the call journal: %s", exc)
            except Exception:  # never leave the worker without a journal for good
                logger.exception("cannot record the call journal")


def _dialog_hop(dialog: Dialog, invite: Request, invite_hop: tuple[str, int]) -> tuple[str, int]:
    """Where a new dialog's ACK and BYE go, as the user agent would send them: its first
    route, else the proxy the INVITE went through (it had a Route), else the far end's
    Contact."""
    if not dialog.route_set and invite.headers.get("Route"):
        return invite_hop
    try:
        return uri_address(dialog.next_hop())
    except ValueError:
        return invite_hop


def read_journal(path: Path) -> list[dict]:
    """The entries a worker left (none if there is no readable file)."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return entries if isinstance(entries, list) else []


# ---------------------------------------------------------------------------- supervisor
def _branch() -> str:
    return "z9hG4bK" + secrets.token_hex(10)


class _Ending:
    """One request (BYE or CANCEL) ending one call, with its retransmissions."""

    def __init__(self, request: Request, destination: tuple[str, int], now: float) -> None:
        self.request = request
        self.data = request.serialize()
        self.destination = destination
        self.branch = request.top_via.branch
        self.next_send = now
        self.interval = T1
        self.done = False
        self.invite: Request | None = None  # for a CANCEL: the INVITE it cancels
        self.invite_done = True


class OrphanCallEnder:
    """Sans-I/O: the requests that end a dead worker's calls, and what to do on responses.

    `datagrams_to_send(now)` gives what is due; `receive(data, now)` takes a response;
    `finished` says whether every call got its final answer.
    """

    def __init__(self, entries: list[dict], sent_by: tuple[str, int], now: float) -> None:
        self._sent_by = f"{sent_by[0]}:{sent_by[1]}"
        self.endings: list[_Ending] = []
        self._once: list[tuple[bytes, tuple[str, int]]] = []
        self.skipped = 0
        for entry in entries:
            try:
                self._add(entry, now)
            except (KeyError, TypeError, ValueError):
                self.skipped += 1  # a malformed entry: nothing we can send for it

    def _via(self, branch: str | None = None) -> str:
        return f"SIP/2.0/UDP {self._sent_by};branch={branch or _branch()};rport"

    def _add(self, entry: dict, now: float) -> None:
        destination = (str(entry["destination"][0]), int(entry["destination"][1]))
        if entry["kind"] == "dialog":
            dialog = Dialog(
                call_id=entry["call_id"],
                local_tag=entry["local_tag"],
                remote_tag=entry["remote_tag"],
                local_party=entry["local_party"],
                remote_party=entry["remote_party"],
                local_seq=int(entry["local_seq"]),
                remote_seq=None,
                remote_target=parse_uri(entry["remote_target"]),
                route_set=list(entry["route_set"]),
                confirmed=True,
            )
            self._bye(dialog, destination, now)
        elif entry["kind"] == "invite":
            invite = parse_message(entry["invite"].encode("utf-8", "surrogateescape"))
            if not isinstance(invite, Request):
                raise ValueError("not a request")
            ending = _Ending(
                same_transaction_request(invite, "CANCEL", invite.headers.get("To") or ""),
                destination,
                now,
            )
            ending.invite = invite
            ending.invite_done = False
            self.endings.append(ending)
        else:
            raise ValueError(f"unknown entry kind {entry['kind']!r}")

    def _bye(self, dialog: Dialog, destination: tuple[str, int], now: float) -> None:
        self.endings.append(_Ending(dialog.next_request("BYE", self._via()), destination, now))

    @property
    def finished(self) -> bool:
        return all(e.done and e.invite_done for e in self.endings)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        out, self._once = self._once, []
        for ending in self.endings:
            if not ending.done and now >= ending.next_send:
                out.append((ending.data, ending.destination))
                ending.next_send = now + ending.interval
                ending.interval = min(ending.interval * 2, 4.0)
        return out

    def next_time(self) -> float:
        pending = [e.next_send for e in self.endings if not e.done]
        return min(pending) if pending else float("inf")

    def receive(self, data: bytes, now: float) -> None:
        try:
            message = parse_message(data)
        except (SipParseError, ValueError):
            return
        if not isinstance(message, Response) or message.status < 200:
            return
        try:
            branch = message.top_via.branch
            method = message.cseq.method
        except (SipParseError, ValueError, IndexError):
            return
        for ending in list(self.endings):
            if ending.branch != branch:
                continue
            if method in ("BYE", "CANCEL"):
                ending.done = True
            elif method == "INVITE" and ending.invite is not None and not ending.invite_done:
                ending.invite_done = True
                ending.done = True  # the INVITE is over: no use cancelling it further
                if message.is_success:
                    # A 200 crossed our CANCEL: confirm the dialog, then end it.
                    dialog = Dialog.as_uac(ending.invite, message)
                    hop = _dialog_hop(dialog, ending.invite, ending.destination)
                    ack = dialog.next_request("ACK", self._via(), cseq=ending.invite.cseq.seq)
                    self._once.append((ack.serialize(), hop))
                    self._bye(dialog, hop, now)
                else:
                    ack = build_non2xx_ack(ending.invite, message)
                    self._once.append((ack.serialize(), ending.destination))

    def outcome(self) -> str:
        byes = sum(1 for e in self.endings if e.request.method == "BYE")
        cancels = len(self.endings) - byes
        answered = sum(1 for e in self.endings if e.done and e.invite_done)
        text = f"sent {byes} BYE and {cancels} CANCEL; {answered} answered"
        if self.skipped:
            text += f"; {self.skipped} unreadable journal entries"
        return text


def end_orphan_calls(
    entries: list[dict],
    *,
    bind: tuple[str, int],
    sent_by: tuple[str, int],
    timeout: float = ENDING_TIME,
) -> str:
    """End a dead worker's calls (blocking, at most `timeout` s): from its own SIP address
    on its machine, or from any port of another node's (`bind` port 0; `sent_by` port 0:
    the port bound, announced in Via so that the answers come back to it)."""
    start = time.monotonic()
    family = socket.AF_INET6 if ":" in bind[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(bind)
        except OSError as exc:
            return f"cannot bind {bind[0]}:{bind[1]} to end {len(entries)} calls: {exc}"
        if sent_by[1] == 0:
            sent_by = (sent_by[0], sock.getsockname()[1])
        ender = OrphanCallEnder(entries, sent_by, start)
        resolved: dict[tuple[str, int], tuple] = {}
        while True:
            now = time.monotonic()
            for data, destination in ender.datagrams_to_send(now):
                address = resolved.get(destination)
                if address is None:
                    try:
                        info = socket.getaddrinfo(*destination, family, socket.SOCK_DGRAM)
                        address = resolved[destination] = info[0][4]
                    except OSError:
                        continue
                with contextlib.suppress(OSError):
                    sock.sendto(data, address)
            if ender.finished or now - start >= timeout:
                break
            wait = max(0.0, min(ender.next_time(), start + timeout) - now)
            readable, _, _ = select.select([sock], [], [], wait)
            if readable:
                with contextlib.suppress(OSError):
                    data, _ = sock.recvfrom(65535)
                    ender.receive(data, time.monotonic())
        # ACKs queued by the last response.
        for data, destination in ender.datagrams_to_send(time.monotonic()):
            if destination in resolved:
                with contextlib.suppress(OSError):
                    sock.sendto(data, resolved[destination])
    return ender.outcome()
