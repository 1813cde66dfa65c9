"""The socket.io face of the gateway: browser events in, call states out (docs/signaling.md).

It calls the narrow `gateway.api.GatewayService` interface (call tokens, then calls) and
never touches aiortc or SIP.
"""

from signaling.errors import ErrorCode, SignalingError
from signaling.namespace import CallNamespace
from signaling.payloads import PayloadError
from signaling.server import MAX_MESSAGE_BYTES, attach, call_namespace, create_signaling

__all__ = [
    "MAX_MESSAGE_BYTES",
    "CallNamespace",
    "ErrorCode",
    "PayloadError",
    "SignalingError",
    "attach",
    "call_namespace",
    "create_signaling",
]
