"""An operator transfers a visitor's call (RFC 3515 REFER, RFC 5589 call flows).

The operator's phone sends REFER with the target (blind transfer), or with a Replaces that
swaps a call it holds with the target for ours (attended transfer, RFC 3891). The gateway,
the transferee:

1. checks the target against the site's `transfer_to` (a transfer must not be a way round
   the rules on whom a site may call): elsewhere, `403` and the call goes on as it was;
2. accepts (`202`), tells the page `transferring`, and plays ringback to the visitor;
3. rings the target as a new SIP leg, telling the operator's phone how it goes by NOTIFY
   (`SIP/2.0 180 Ringing`, then the final status);
4. when the target answers, bridges the visitor to it and hangs up the operator's leg (if
   the operator has not left already);
5. when the target does not answer, goes back to the operator if it is still there, and
   otherwise ends the call with cause `transfer_failed`.

`Transfer.run` drives one transfer; `Call` gives it the hooks it needs (`begin_transfer`,
`open_transfer_target`, `transfer_answered`, `transfer_failed`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from gateway.api import loggable
from sip_bridge import (
    CallAnswered,
    CallEnded,
    CallProgress,
    EarlyMedia,
    OfferReceived,
    TransferRequested,
    parse_sip_uri,
)

if TYPE_CHECKING:
    from gateway.calls.call import Call, _Attempt

logger = logging.getLogger(__name__)


class Transfer:
    """One transfer of `call` asked by the operator on `transferor`."""

    def __init__(self, call: Call, transferor: _Attempt, request: TransferRequested) -> None:
        self.call = call
        self.transferor = transferor
        self.request = request
        self.target: _Attempt | None = None
        self.done = False

    @property
    def transferor_left(self) -> bool:
        return self.transferor.ended is not None or self.transferor.sip.ended.done()

    async def run(self) -> None:
        call, sip, request = self.call, self.transferor.sip, self.request
        try:
            target = parse_sip_uri(request.target)
        except ValueError:
            sip.reject_transfer(400)
            self.done = True
            return
        if not call.settings.transfer_to.allows(target):
            logger.info(
                "call %s: transfer to %s refused: not in the site's transfer_to",
                call.id,
                loggable(request.target),
            )
            sip.reject_transfer(403)
            self.done = True
            return
        sip.accept_transfer()
        logger.info("call %s: operator transfers the call to %s", call.id, loggable(target))
        call.begin_transfer()
        headers = list(call.settings.headers)
        if request.replaces:
            headers.append(("Replaces", request.replaces))
        if request.referred_by:
            headers.append(("Referred-By", request.referred_by))
        try:
            destination = replace(self.transferor.destination, uri=str(target))
            self.target = await call.open_transfer_target(destination, headers)
        except (OSError, ValueError) as exc:
            logger.info("call %s: transfer target not called: %s", call.id, loggable(exc))
            sip.notify_transfer(503, "Service Unavailable")
            self._failed(None)
            return
        await self._follow_target(self.target)

    async def _follow_target(self, attempt: _Attempt) -> None:
        call, sip = self.call, self.transferor.sip
        events = attempt.sip.events
        deadline = asyncio.get_running_loop().time() + call.settings.ring_timeout
        ringing_told = False
        while True:
            timeout = deadline - asyncio.get_running_loop().time()
            try:
                event = await asyncio.wait_for(events.get(), max(timeout, 0))
            except TimeoutError:
                attempt.sip.hangup()  # not answered in time: CANCEL, then its CallEnded
                deadline = float("inf")
                continue
            if isinstance(event, CallProgress) and event.status > 100 and not ringing_told:
                ringing_told = True
                sip.notify_transfer(event.status, event.reason)
            elif isinstance(event, EarlyMedia):
                call.transfer_early_media(attempt, event.sdp)
            elif isinstance(event, CallAnswered):
                sip.notify_transfer(200, "OK")
                self.done = True
                call.transfer_answered(attempt, event.sdp)
                return
            elif isinstance(event, OfferReceived):
                call.answer_reoffer(attempt, event)
            elif isinstance(event, CallEnded):
                attempt.ended = event
                sip.notify_transfer(
                    event.status or 487, "" if event.status else "Request Terminated"
                )
                self._failed(event)
                return

    def _failed(self, event: CallEnded | None) -> None:
        self.done = True
        detail = event.detail if event is not None else "the target could not be called"
        logger.info("call %s: transfer failed: %s", self.call.id, loggable(detail))
        self.call.transfer_failed(self, detail)
