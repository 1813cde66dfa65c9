"""Destination health: whether each site's operators can be reached (SIP OPTIONS every
`health_interval` seconds), so that calls do not ring into silence."""
