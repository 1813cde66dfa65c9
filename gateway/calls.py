"""`CallManager`: the gateway's calls, behind the `CallService` interface signaling uses."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable

from sip_bridge.endpoint import SipEndpoint

from .call import Call, CallSettings, Destination
from .config import GatewayConfig, SiteConfig
from .service import CallRefused, CallState, CallUpdate, Notify, SiteInfo

logger = logging.getLogger(__name__)


class CallManager:
    """Creates calls for sites, finds them by id, and forgets them when they end."""

    def __init__(self, config: GatewayConfig, endpoint: SipEndpoint) -> None:
        self.config = config
        self.endpoint = endpoint
        self.calls: dict[str, Call] = {}
        self._per_client: dict[str, int] = {}
        self.on_call_ended: Callable[[Call], None] | None = None

    # -------------------------------------------------------------- CallService
    def site(self, site_id: str) -> SiteInfo | None:
        site = self.config.site(site_id)
        return site.public_info if site is not None else None

    async def start_call(
        self, *, site_id: str, client: str, offer_sdp: str, notify: Notify
    ) -> tuple[str, str]:
        site = self.config.site(site_id)
        if site is None:
            raise CallRefused("unknown_site", f"no site {site_id!r}")
        limits = self.config.limits
        if len(self.calls) >= limits.max_calls:
            raise CallRefused("busy", "the gateway is at its call limit; try again later")
        if self._per_client.get(client, 0) >= limits.max_calls_per_client:
            raise CallRefused("too_many_calls", "too many calls from this address")
        call_id = secrets.token_urlsafe(12)

        def on_update(update: CallUpdate) -> None:
            if update.state == CallState.ENDED:
                self._forget(call_id, client)
                logger.info(
                    "call %s ended: site %s, %s%s",
                    call_id,
                    site.id,
                    update.cause,
                    f" ({update.detail})" if update.detail else "",
                )
            notify(update)

        call = Call(call_id, self._settings(site), self.endpoint, on_update)
        self.calls[call_id] = call
        self._per_client[client] = self._per_client.get(client, 0) + 1
        try:
            answer = await call.start(offer_sdp)
        except ValueError as exc:
            self._forget(call_id, client)
            raise CallRefused("bad_offer", str(exc)) from None
        except OSError as exc:
            self._forget(call_id, client)
            logger.warning("call %s: cannot start: %s", call_id, exc)
            raise CallRefused("unavailable", "the gateway cannot take a call now") from None
        return call_id, answer

    async def add_candidate(
        self, call_id: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        await self._call(call_id).add_candidate(candidate, sdp_mid, sdp_mline_index)

    async def hangup(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            call.hangup()

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        await self._call(call_id).send_dtmf(digits)

    async def set_mute(self, call_id: str, muted: bool) -> None:
        self._call(call_id).set_mute(muted)

    # -------------------------------------------------------------- internals
    def _call(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise ValueError(f"no call {call_id!r}")
        return call

    def _forget(self, call_id: str, client: str) -> None:
        call = self.calls.pop(call_id, None)
        if call is None:
            return
        left = self._per_client.get(client, 1) - 1
        if left > 0:
            self._per_client[client] = left
        else:
            self._per_client.pop(client, None)
        if self.on_call_ended is not None:
            self.on_call_ended(call)

    def _settings(self, site: SiteConfig) -> CallSettings:
        config = self.config
        headers = [("X-Site", site.id)]
        return CallSettings(
            destinations=(
                Destination(
                    str(site.destination),
                    site.credentials,
                    str(site.proxy) if site.proxy else None,
                ),
            ),
            caller_name=site.caller_name,
            from_user=site.from_user,
            ring_timeout=site.ring_timeout,
            rtp_host=config.sip.listen[0],
            rtp_announce=config.sip.public_address[0],
            rtp_ports=config.media.rtp_ports,
            sip_codecs=config.media.sip_codecs,
            browser_codecs=config.media.browser_codecs,
            ice_servers=tuple(
                {"urls": list(s.urls), "username": s.username, "credential": s.credential}
                for s in config.ice.servers
            ),
            ringback=config.media.ringback,
            media_timeout=config.media.media_timeout,
            headers=tuple(headers),
        )

    async def close(self) -> None:
        """End every call (BYE/CANCEL) and wait for them to finish."""
        calls = list(self.calls.values())
        for call in calls:
            call.hangup()
        if calls:
            await asyncio.wait([asyncio.create_task(c.wait_finished()) for c in calls], timeout=6)
