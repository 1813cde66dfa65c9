"""Voicemail: when nobody can answer, the visitor leaves a voice message.

The page opens a WebRTC connection of its own (an offer that carries its candidates, as a
pre-call check's), and the gateway answers it with a browser leg (gateway.media.webrtc_leg)
and no SIP. Once connected it plays the site's greeting and a tone
(gateway.media.greeting), then records what the leg receives (gateway.media.recorder) to
Ogg/Opus in the state directory's `voicemail/`, up to the site's `voicemail_max_seconds`
of audio. The visitor ends it with Send, by hanging up or by leaving (the page's socket
goes): what was recorded is kept, unless it is under a second. A kept voicemail is a row
of the database (gateway.storage.voicemails) and a `voicemail.received` notification with
a signed, expiring link to the audio (gateway.access.downloads); it is deleted with the
site's records after `retention_days`.

Bounds: the site must offer voicemail (`fallback`); it holds a peer connection, so it
counts against the worker's `max_calls` and the visitor's `max_calls_per_client`, and a
visitor may leave as many as they may start calls (`calls_per_client_*`, counted apart:
gateway.access.admission). The file is at most `voicemail_max_seconds` long whatever the
page sends, and a recording that never connects ends after `CONNECT_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.access.admission import AdmittedCall, CallAdmission
from gateway.access.downloads import DownloadLinks
from gateway.api import (
    NO_DETAILS,
    CallRefused,
    Clock,
    VisitorDetails,
    VoicemailGrant,
    VoicemailState,
    VoicemailUpdate,
    clipped,
)
from gateway.config import GatewayConfig, SiteConfig
from gateway.config.legs import BrowserLegSettings, browser_leg_settings
from gateway.media.greeting import greeting_pcm, play_greeting
from gateway.media.ice_mux import IceMux
from gateway.media.recorder import OggOpusRecorder
from gateway.media.transcoder import AudioCodec
from gateway.media.webrtc_leg import WebRtcLeg
from gateway.notify.mail import Attachment, Attachments
from gateway.notify.publisher import Notifier
from gateway.storage import Database, Voicemail

logger = logging.getLogger(__name__)

FOLDER = "voicemail"  # in the state directory
CONNECT_TIMEOUT = 15.0  # seconds for ICE and DTLS before the voicemail is given up
MIN_SECONDS = 1.0  # shorter recordings are nothing worth keeping
GRACE = 5.0  # seconds past voicemail_max_seconds before the wall clock ends a recording
# Beyond voicemail_max_seconds, what a voicemail's place in the limits may last before it
# stops counting even if nobody said it ended: connecting, the greeting, the grace, a margin.
VOICEMAIL_SETUP = CONNECT_TIMEOUT + GRACE + 60.0

Notify = Callable[[VoicemailUpdate], None]


@dataclass(eq=False)
class _Recording:
    id: str
    site: SiteConfig
    client: str
    visitor: VisitorDetails
    after_call: str | None
    admitted: AdmittedCall
    leg: WebRtcLeg
    notify: Notify
    done: asyncio.Event = field(default_factory=asyncio.Event)
    recorder: OggOpusRecorder | None = None
    started_at: float = 0.0  # wall clock, when the recording began
    task: asyncio.Task | None = field(default=None, repr=False)
    failure: str = ""  # why it ends without a message (connection, error)


class Voicemails:
    """The voicemails being left on one worker."""

    def __init__(
        self,
        config: GatewayConfig,
        admission: CallAdmission,
        *,
        directory: Path,
        links: DownloadLinks,
        database: Database | None = None,
        notifier: Notifier | None = None,
        clock: Clock = time.time,
        leg_settings: BrowserLegSettings | None = None,
        ice_mux: IceMux | None = None,
    ) -> None:
        """`ice_mux`: the worker's shared ICE port for browser legs (`[ice] port`), as
        calls and pre-call checks use it."""
        self.config = config
        self.admission = admission
        self.directory = directory
        self.links = links
        self.database = database
        self.notifier = notifier
        self.clock = clock
        self.leg_settings = leg_settings or browser_leg_settings(config)
        self.ice_mux = ice_mux
        self.recordings: dict[str, _Recording] = {}
        self.saved = 0  # voicemails kept by this worker (tests, logs)

    async def start(
        self,
        site: SiteConfig,
        address: str,
        offer_sdp: str,
        notify: Notify,
        *,
        visitor: VisitorDetails = NO_DETAILS,
        after_call: str | None = None,
    ) -> VoicemailGrant:
        if not site.public_info.offers_voicemail:
            raise CallRefused("voicemail_off", "this site takes no voicemail")
        admitted = await self.admission.admit_voicemail(
            site, address, self.clock(), lasts=site.voicemail_max_seconds + VOICEMAIL_SETUP
        )
        leg = WebRtcLeg(self.leg_settings, ice_mux=self.ice_mux)
        recording = _Recording(
            secrets.token_urlsafe(12), site, address, visitor, after_call, admitted, leg, notify
        )
        self.recordings[recording.id] = recording
        try:
            answer = await leg.answer(offer_sdp)  # held to a call's ICE rules
        except ValueError as exc:
            await self._release(recording)
            raise CallRefused("bad_offer", str(exc)) from None
        except OSError as exc:
            await self._release(recording)
            logger.warning("voicemail: cannot answer: %s", clipped(exc))
            raise CallRefused("unavailable", "the gateway cannot take a message now") from None
        except BaseException:
            await self._release(recording)
            raise
        leg.on_failed = lambda state: self._fail(recording, "connection")
        recording.task = asyncio.create_task(self._run(recording), name=f"voicemail-{recording.id}")
        logger.info(
            "voicemail %s started: site %s, client %s",
            recording.id,
            site.id,
            clipped(address, 64),
        )
        return VoicemailGrant(recording.id, answer, site.voicemail_max_seconds)

    async def send(self, voicemail_id: str) -> None:
        """The visitor is done: keep what was recorded (the task finishes it)."""
        recording = self.recordings.get(voicemail_id)
        if recording is not None:
            recording.done.set()
            if recording.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(recording.task)

    def _fail(self, recording: _Recording, reason: str) -> None:
        if not recording.failure:
            recording.failure = reason
        recording.done.set()

    # ------------------------------------------------------------------ one voicemail
    async def _run(self, recording: _Recording) -> None:
        leg, site = recording.leg, recording.site
        try:
            done = asyncio.ensure_future(recording.done.wait())
            connected = asyncio.ensure_future(leg.connected.wait())
            await asyncio.wait(
                [done, connected], timeout=CONNECT_TIMEOUT, return_when="FIRST_COMPLETED"
            )
            connected.cancel()
            codec = leg.codec  # chosen by the answer, before the connection
            if not leg.connected.is_set() or codec is None:
                done.cancel()
                self._fail(recording, "connection")
                return await self._finish(recording)
            self._tell(recording, VoicemailUpdate(VoicemailState.GREETING))
            greeting = asyncio.ensure_future(
                play_greeting(leg, codec, greeting_pcm(site.voicemail_greeting, codec.sample_rate))
            )
            await asyncio.wait([done, greeting], return_when="FIRST_COMPLETED")
            greeting.cancel()
            if not recording.done.is_set():
                self._record(recording, codec)
                self._tell(
                    recording,
                    VoicemailUpdate(VoicemailState.RECORDING, seconds=site.voicemail_max_seconds),
                )
                # The recorder stops at its length; the wall clock only if audio stops coming.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done, site.voicemail_max_seconds + GRACE)
            done.cancel()
            await self._finish(recording)
        except Exception:
            logger.exception("voicemail %s failed", recording.id)
            self._fail(recording, "error")
            await self._finish(recording)

    def _record(self, recording: _Recording, codec: AudioCodec) -> None:
        leg = recording.leg
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        max_frames = round(recording.site.voicemail_max_seconds * 50)
        recorder = OggOpusRecorder(self.directory / f"{recording.id}.ogg", codec, max_frames)
        recording.recorder = recorder
        recording.started_at = self.clock()

        def on_packet(payload: bytes | memoryview, timestamp: int) -> None:
            recorder.add(payload, timestamp)
            if recorder.full:
                recording.done.set()

        leg.listen(on_packet)

    async def _finish(self, recording: _Recording) -> None:
        """Close the file and keep it (or delete it), tell the page, free everything."""
        if self.recordings.get(recording.id) is not recording:
            return
        recording.leg.listen(None)
        recorder = recording.recorder
        seconds = 0.0
        if recorder is not None:
            recorder.close()
            seconds = recorder.seconds
        if recorder is not None and seconds >= MIN_SECONDS:
            kept = await self._keep(recording, recorder)
            self._tell(recording, VoicemailUpdate(VoicemailState.SAVED, seconds=kept.seconds))
        else:
            if recorder is not None:
                recorder.path.unlink(missing_ok=True)
            reason = recording.failure or "empty"
            self._tell(recording, VoicemailUpdate(VoicemailState.FAILED, reason=reason))
            logger.info("voicemail %s not kept: %s", recording.id, reason)
        await self._release(recording)

    async def _keep(self, recording: _Recording, recorder: OggOpusRecorder) -> Voicemail:
        now = self.clock()
        visitor = recording.visitor
        voicemail = Voicemail(
            id=recording.id,
            site=recording.site.id,
            started_at=recording.started_at,
            received_at=now,
            seconds=round(recorder.seconds, 2),
            size=recorder.path.stat().st_size,
            file=recorder.path.name,
            call_id=recording.after_call,
            client=recording.client,
            page=visitor.page,
            visitor_name=visitor.name,
            visitor_source=visitor.source,
        )
        if self.database is not None:
            try:
                await self.database.voicemails.add(voicemail)
            except Exception as exc:  # the file stays: an operator can still find it
                logger.warning("voicemail %s: cannot store it: %s", voicemail.id, exc)
        if self.notifier is not None:
            path = f"/api/voicemails/{voicemail.id}/audio"
            link = self.links.sign(path, now)
            public_url = self.config.http.public_url.rstrip("/")
            self.notifier.voicemail_received(
                voicemail.public(),
                download_url=f"{public_url}{link}",
                download_expires_at=float(int(now + self.links.lifetime)),
            )
        self.saved += 1
        logger.info(
            "voicemail %s kept: site %s, %.1f s, %d bytes",
            voicemail.id,
            voicemail.site,
            voicemail.seconds,
            voicemail.size,
        )
        return voicemail

    def _tell(self, recording: _Recording, update: VoicemailUpdate) -> None:
        try:
            recording.notify(update)
        except Exception:  # a page gone away must not stop the recording's end
            logger.exception("voicemail %s: notify failed", recording.id)

    async def _release(self, recording: _Recording) -> None:
        if self.recordings.pop(recording.id, None) is None:
            return
        self.admission.ended(recording.admitted, self.clock())
        await recording.leg.close()

    async def close(self) -> None:
        """Keep what is being recorded (the gateway stops) and free everything."""
        for recording in list(self.recordings.values()):
            recording.done.set()
        tasks = [r.task for r in self.recordings.values() if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for recording in list(self.recordings.values()):
            await self._release(recording)


def voicemail_folder(config: GatewayConfig) -> Path:
    return config.storage.state_directory / FOLDER


_VOICEMAIL_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_ATTACHED_BYTES = 10 * 1024 * 1024  # far above 10 minutes of speech


def voicemail_attachments(folder: Path) -> Attachments:
    """What a `voicemail.received` mail attaches: the voicemail's audio, read from `folder`
    when the mail is sent (nothing once it has been deleted)."""

    def attachments(attach: Mapping[str, Any]) -> list[Attachment]:
        voicemail_id = attach.get("voicemail")
        if not isinstance(voicemail_id, str) or not _VOICEMAIL_ID.fullmatch(voicemail_id):
            return []
        path = folder / f"{voicemail_id}.ogg"
        try:
            if path.stat().st_size > MAX_ATTACHED_BYTES:
                return []
            data = path.read_bytes()
        except OSError:
            return []
        return [Attachment(f"voicemail-{voicemail_id}.ogg", data, "audio", "ogg")]

    return attachments
