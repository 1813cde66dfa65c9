"""The process layer: the entry point, the composition root (the one module that wires
signaling to the gateway), the supervisor of worker processes, their journals, and heap
trimming. Library code never imports it."""
