"""A voicemail's audio for whoever holds its signed link (the `voicemail.received` webhook's
`download_url`): `GET /api/voicemails/{id}/audio?expires=...&signature=...`.

Without a valid signature (none, forged, for another voicemail, expired) the answer is a
plain `403` that says no more; with one, the Ogg/Opus file (`404` once it is deleted). The
answer is never cached by shared caches and carries no CORS header: it is for a site's
systems, not for pages.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from gateway.access.downloads import DownloadLinks, DownloadRefused
from gateway.api import clipped
from gateway.storage import Database

logger = logging.getLogger(__name__)

_VOICEMAIL_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def audio_response(path: Path, voicemail_id: str) -> web.StreamResponse:
    """The file as `audio/ogg`, named after the voicemail."""
    if not path.is_file():
        raise web.HTTPNotFound(text="This voicemail has been deleted.")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "audio/ogg",
            "Content-Disposition": f'inline; filename="voicemail-{voicemail_id}.ogg"',
            "Cache-Control": "private, no-store",
        },
    )


def voicemail_routes(
    links: DownloadLinks,
    database: Database,
    directory: Path,
    *,
    clock: Callable[[], float] = time.time,
) -> list[web.RouteDef]:
    async def audio(request: web.Request) -> web.StreamResponse:
        voicemail_id = request.match_info["id"]
        try:
            links.check(
                request.path,
                request.query.get("expires"),
                request.query.get("signature"),
                clock(),
            )
        except DownloadRefused as exc:
            logger.info(
                "voicemail download refused: %s (%s)",
                exc,
                clipped(request.remote or "?", 64),
            )
            raise web.HTTPForbidden(text="This link is not valid (or no longer).") from None
        voicemail = await database.voicemails.get(voicemail_id)
        if voicemail is None or not _VOICEMAIL_ID.fullmatch(voicemail_id):
            raise web.HTTPNotFound(text="This voicemail has been deleted.")
        return audio_response(directory / voicemail.file, voicemail.id)

    return [web.get("/api/voicemails/{id}/audio", audio)]
