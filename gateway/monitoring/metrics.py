"""The gateway's Prometheus metrics (docs/admin.md lists each), with the official client.

One `Metrics` per gateway process. With several workers the supervisor calls
`use_multiprocess_directory` before it forks them: every worker's values then live in
files there (the client's multiprocess mode), and `/metrics` on any worker answers the sum
over all of them; the supervisor wipes the directory at start and marks a dead worker's
files as dead. A gateway on its own (or a test) keeps its values in its own registry.

Every series carries the label `node` (`[storage] node`): with several nodes behind one
balancer each is scraped on its own address, and their series stay apart when summed or
graphed together.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

ENVIRONMENT = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

SETUP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
RING_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0)
TALK_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
LOSS_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
JITTER_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)

disable_created_metrics()  # no `_created` series: nobody graphs them
_multiprocess_directory: str | None = None  # set in the supervisor, inherited by workers


def use_multiprocess_directory(directory: Path) -> None:
    """Make every metric created from now on in this process and its children live in
    files under `directory`, emptied first. For the supervisor, before its workers."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, mode=0o700)
    join_multiprocess_directory(directory)


def join_multiprocess_directory(directory: Path) -> None:
    """Use the supervisor's `directory` as it is, in a process it did not fork with the
    setting made (a worker started again by the lean supervisor, gateway.process.watch)."""
    os.environ[ENVIRONMENT] = str(directory)
    values.ValueClass = values.MultiProcessValue()
    global _multiprocess_directory
    _multiprocess_directory = str(directory)


def worker_died(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters keep counting in the sum)."""
    if _multiprocess_directory is not None:
        multiprocess.mark_process_dead(pid, _multiprocess_directory)


class Metrics:
    """The metric objects; names and labels are a contract (docs/admin.md). `node`: the
    value of the `node` label on every series."""

    def __init__(self, node: str = "") -> None:
        self.node = node
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            "gateway_calls", "Calls ended, by site and outcome", ["site", "outcome"], registry=r
        )
        self.active = Gauge(
            "gateway_calls_active",
            "Calls in progress, by site",
            ["site"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.setup = Histogram(
            "gateway_call_setup_seconds",
            "From the visitor's click (call:start) to the operator's phone ringing",
            registry=r,
            buckets=SETUP_BUCKETS,
        )
        self.ring = Histogram(
            "gateway_ring_seconds",
            "How long calls rang before an answer or giving up",
            registry=r,
            buckets=RING_BUCKETS,
        )
        self.talk = Histogram(
            "gateway_talk_seconds",
            "How long answered calls talked",
            registry=r,
            buckets=TALK_BUCKETS,
        )
        self.sip_responses = Counter(
            "gateway_sip_responses",
            "SIP responses received to the gateway's INVITEs, by status code",
            ["code"],
            registry=r,
        )
        self.loss = Histogram(
            "gateway_media_loss_ratio",
            "Packet loss of a call's leg (0-1), by leg (browser, sip)",
            ["leg"],
            registry=r,
            buckets=LOSS_BUCKETS,
        )
        self.jitter = Histogram(
            "gateway_media_jitter_seconds",
            "Jitter of a call's leg, by leg (browser, sip)",
            ["leg"],
            registry=r,
            buckets=JITTER_BUCKETS,
        )
        self.relayed_frames = Counter(
            "gateway_media_relayed_frames",
            "Audio frames carried between a browser and a phone (relayed or transcoded), by "
            "path: native (in C, gateway.media.native_relay) or python",
            ["path"],
            registry=r,
        )
        self.refusals = Counter(
            "gateway_refusals", "Calls refused before ringing, by reason", ["reason"], registry=r
        )
        self.callbacks = Counter(
            "gateway_callbacks",
            "Callbacks that reached a status (done, failed, interrupted, cancelled, retry)",
            ["status"],
            registry=r,
        )
        self.webhook_deliveries = Counter(
            "gateway_webhook_deliveries",
            "Webhook delivery attempts, by result",
            ["result"],
            registry=r,
        )
        self.destination_up = Gauge(
            "gateway_destination_up",
            "1 while a destination answers health checks, 0 while it is down",
            ["site", "destination"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.registration_up = Gauge(
            "gateway_registration_up",
            "1 while every worker is registered with the site's trunk, 0 while one is not",
            ["site"],
            registry=r,
            multiprocess_mode="livemin",
        )

    def exposition(self) -> bytes:
        """The text format: the sum over every worker in multiprocess mode, else ours;
        each series labelled with the node."""
        if _multiprocess_directory is not None:
            source = CollectorRegistry()
            multiprocess.MultiProcessCollector(source, path=_multiprocess_directory)
        else:
            source = self.registry
        if not self.node:
            return generate_latest(source)
        labelled = CollectorRegistry()
        labelled.register(_NodeLabel(source, self.node))
        return generate_latest(labelled)


class _NodeLabel(Collector):
    """Another collector's series, each with `node="<name>"` added."""

    def __init__(self, source: Collector, node: str) -> None:
        self.source = source
        self.node = node

    def collect(self) -> Iterator:
        for family in self.source.collect():
            family.samples = [
                Sample(
                    sample.name,
                    {**sample.labels, "node": self.node},
                    sample.value,
                    sample.timestamp,
                    sample.exemplar,
                )
                for sample in family.samples
            ]
            yield family
