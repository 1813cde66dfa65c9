"""What the gateway tells Prometheus (`metrics`)."""
