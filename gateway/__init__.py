"""Click-to-call gateway: a visitor's browser call bridged into SIP. The layers and the flow
of a call are described in docs/architecture.md."""
