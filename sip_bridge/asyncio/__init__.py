"""The asyncio layer of sip_bridge: transports, the endpoint that runs the sans-I/O
`UserAgent` on them, the RTP session of a SIP leg, port allocation, a player and the CLI."""
