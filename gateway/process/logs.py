"""How the process logs (`[log]`, docs/configuration.md): to stderr, as text lines or one
JSON object per line, the gateway's loggers at `log.level` and the libraries' at
`log.library_level`.

The log is read by people in terminals and by log shippers, and much of what it would say
comes from outside: a visitor's name or address, the host names of ICE candidates in an
offer (aioice logs every connectivity check with them at INFO), SIP headers, a peer's error
text. The gateway's own log calls bound such values (`gateway.text.clipped`, so that one
value cannot take the whole line); the formatters here escape every record's whole message
(and each line of a traceback) with `gateway.text.loggable`, once, whatever logger it came
from: no record can carry a terminal escape sequence,
split into forged lines, or run to megabytes. The libraries stay at WARNING by default, so
a page's offer cannot make their INFO lines the bulk of the log either.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from aiohttp.http_exceptions import HttpProcessingError
from pythonjsonlogger.json import JsonFormatter

from gateway.config import LogConfig
from gateway.text import loggable

# The gateway's own loggers (library code logs under its package name).
OWN_LOGGERS = ("gateway", "signaling", "sip_bridge")
# Libraries known to log; any other logger inherits the root's level, which is theirs too.
LIBRARY_LOGGERS = ("aioice", "aiortc", "aiohttp", "socketio", "engineio", "asyncio", "av")
MAX_MESSAGE_CHARS = 2000  # one record's message; a traceback's lines are bounded one by one
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _bounded_lines(text: str) -> str:
    return "\n".join(loggable(line, MAX_MESSAGE_CHARS) for line in text.splitlines())


class TextFormatter(logging.Formatter):
    """`time level logger: message`, the message escaped and bounded; a traceback follows
    on its own lines, each escaped and bounded."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = loggable(record.getMessage(), MAX_MESSAGE_CHARS)
        record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        if record.exc_info:
            text += "\n" + _bounded_lines(self.formatException(record.exc_info))
        if record.stack_info:
            text += "\n" + _bounded_lines(self.formatStack(record.stack_info))
        return text


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record: `time` (ISO 8601, UTC), `level`, `logger`, `message`,
    and `exception` (the traceback) when there is one; text escaped and bounded as in the
    text format, then JSON-escaped."""

    def __init__(self) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"},
            timestamp="time",
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["message"] = loggable(log_data.get("message", ""), MAX_MESSAGE_CHARS)
        for key in ("exception", "stack_info"):
            if isinstance(log_data.get(key), str):
                log_data[key] = _bounded_lines(log_data[key])
        return super().process_log_record(log_data)


class BadRequestFilter(logging.Filter):
    """aiohttp logs every malformed request it answers 400 at ERROR with a traceback
    ("Error handling request"): anyone who can reach the port could write a dozen lines
    into the log per request. Such a record becomes one DEBUG line saying what was wrong
    (shown only with `log.library_level = "debug"`); the client already got its 400."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            reason = (str(error.message).strip().splitlines() or [""])[0]
            record.args = (record.getMessage(), error.code, reason)
            record.msg = "%s: %s %s"
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


BAD_REQUEST_FILTER = BadRequestFilter()


def configure_logging(config: LogConfig, stream: TextIO | None = None) -> None:
    """Send every record to `stream` (stderr) in the configured format, at the configured
    levels, replacing any handler the root logger had."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonLineFormatter() if config.format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    library_level = config.library_level.upper()
    root.setLevel(library_level)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)
    server_logger = logging.getLogger("aiohttp.server")
    if BAD_REQUEST_FILTER not in server_logger.filters:
        server_logger.addFilter(BAD_REQUEST_FILTER)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(config.level.upper())
