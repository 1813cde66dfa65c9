"""The JSON codec of the socket.io server: the standard library's, except that a message it
cannot decode becomes an event signaling refuses with `bad_payload`.

python-socketio decodes each packet with `json.loads` before any handler of ours runs; a
body that is not JSON, or nested so deep (`[[[[...`, 4,000 levels) that the decoder hits
Python's recursion limit, raised there and wrote a traceback to the log per message. Here
`loads` answers such a body with `[MALFORMED, reason]`: as an event, signaling tells the
client what was wrong (signaling.payloads); as a connection's auth, it is refused like any
auth that is not an object.
"""

from __future__ import annotations

import json
from typing import Any


class _Malformed:
    """The event name of a message that was not JSON (no client can send this object)."""

    def __repr__(self) -> str:
        return "<malformed message>"


MALFORMED = _Malformed()


def dumps(obj: Any, **kwargs: Any) -> str:
    return json.dumps(obj, **kwargs)


def loads(text: str | bytes, **kwargs: Any) -> Any:
    try:
        return json.loads(text, **kwargs)
    except RecursionError:
        return [MALFORMED, "the message is nested too deeply"]
    except ValueError:
        return [MALFORMED, "the message is not valid JSON"]
