"""Load benchmark: the gateway as users run it (all workers), SIPp echoing as the operator,
and many cheap WebRTC visitors. Run `python -m bench.load --help`; docs/benchmark.md says
how to read the results."""
