"""Several gateway processes on one machine: one per core, each a whole gateway.

Python runs one core per process, so the gateway scales on a machine by running N workers
(DESIGN.md, process model). A small supervisor process forks them and restarts any that
dies. Worker i of N gets, derived from the one configuration:

- HTTP: the same `http.listen` for all. Every worker binds it with SO_REUSEPORT and the
  kernel spreads new connections over them; a visitor's websocket (the only transport)
  stays with the worker that accepted it, and that worker owns the visitor's call.
- SIP: port `sip.listen` + i (and `sip.public_address` port + i): its own user agent.
- RTP: the i-th of N equal slices of `media.rtp_ports` (whole even/odd pairs).
- ICE: port `ice.port` + i, the browser legs' one UDP port (gateway/media/ice_mux.py).
- the demo phone only in worker 0 (it has one SIP address); call tokens signed with one
  secret shared by all workers (made by the supervisor when the file sets none), so a
  token from one worker is good at another, and used once on the whole machine.
- one ledger (gateway/access/ledger.py): an SQLite file in the state directory, next to
  the journals, or with `[storage] redis` the Redis every node shares: the visitor, site
  and budget limits and single-use tokens count over all workers (and nodes); the choice
  is gateway/process/shared.py's.
- its name, `<node>/worker-<i>` (gateway.process.state.owner_name): what it claims
  (callbacks) and publishes (calls in progress, counted calls, heartbeats) carries it.
`limits.max_calls` stays per worker: the machine carries N times as many.

A worker that dies (crash, OOM kill) takes its calls with it: the browsers see their
sockets close at once, and the supervisor ends the rest (gateway.process.failover: BYE for
answered calls, CANCEL for ringing ones, from the dead worker's own SIP port and its
journal; records; callbacks interrupted; its place in the limits) before it starts the
worker again. At its own start it does the same for whatever its node left (a supervisor
killed with its workers): without Redis everything in the database is this node's; with
Redis, only what carries its node's name (the others' belong to live nodes, or to the
watchers that end a dead node's calls).
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import logging
import os
import pickle
import secrets
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.access.ledger import SqliteLedger
from gateway.config import AccessConfig, GatewayConfig
from gateway.monitoring import metrics
from gateway.process import event_loop, watch
from gateway.process.binding import StartError, check_tcp_free
from gateway.process.failover import Reaper, SipFrom
from gateway.process.heap import freeze_startup_objects, malloc_trim
from gateway.process.journal import DialogJournal, read_journal
from gateway.process.logs import configure_logging
from gateway.process.shared import SharedState
from gateway.process.state import METRICS, StateDirectory, owner_name
from gateway.process.watch import EXIT_CANNOT_START
from gateway.storage import Database, StorageError

if TYPE_CHECKING:
    from gateway.process.gateway import Gateway
    from gateway.process.memory_debug import MemoryReporter

logger = logging.getLogger(__name__)


class WorkerConfigError(ValueError):
    """The configuration cannot be split into this many workers; the message says why."""


def default_worker_count() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_configs(config: GatewayConfig, count: int) -> list[GatewayConfig]:
    """The configuration of each of `count` workers (see the module docstring).

    Raises WorkerConfigError when the RTP range has fewer pairs than workers, or a
    worker's SIP port would leave 1-65535, fall in the RTP range or hit the demo phone.
    """
    if count < 1:
        raise WorkerConfigError(f"--workers must be at least 1, got {count}")
    low, high = config.media.rtp_ports
    pairs = (high - low + 1) // 2
    per_worker = pairs // count
    if per_worker < 1:
        raise WorkerConfigError(
            f"media.rtp_ports {low}-{high} has {pairs} port pairs, fewer than {count} workers"
        )
    sip_host, sip_port = config.sip.listen
    public_host, public_port = config.sip.public_address
    demo_port = config.demo.sip_listen[1] if config.demo.enabled else None
    if sip_port + count - 1 > 65535 or public_port + count - 1 > 65535:
        raise WorkerConfigError(
            f"SIP ports {sip_port}..{sip_port + count - 1} of {count} workers pass 65535"
        )
    ice_port = config.ice.port
    if ice_port:
        ice_ports = range(ice_port, ice_port + count)
        if ice_ports[-1] > 65535:
            raise WorkerConfigError(
                f"ICE ports {ice_port}..{ice_ports[-1]} of {count} workers pass 65535"
            )
        for port in ice_ports:
            if low <= port <= high:
                raise WorkerConfigError(
                    f"ICE port {port} (ice.port + {port - ice_port}) is inside media.rtp_ports"
                )
            if port in range(sip_port, sip_port + count) or port == demo_port:
                raise WorkerConfigError(
                    f"ICE port {port} (ice.port + {port - ice_port}) is a SIP port of a worker"
                )
    for i in range(count):
        port = sip_port + i
        if low <= port <= high:
            raise WorkerConfigError(
                f"worker {i}'s SIP port {port} (sip.listen + {i}) is inside media.rtp_ports"
            )
        if port == demo_port and i > 0:
            raise WorkerConfigError(
                f"worker {i}'s SIP port {port} (sip.listen + {i}) is demo.sip_listen's"
            )
    shared = _shared_token_secret(config)
    configs = []
    for i in range(count):
        rtp_low = low + 2 * per_worker * i
        changes: dict[str, Any] = {
            "sip": dataclasses.replace(
                config.sip,
                listen=(sip_host, sip_port + i),
                public_address=(public_host, public_port + i),
            ),
            "media": dataclasses.replace(
                config.media, rtp_ports=(rtp_low, rtp_low + 2 * per_worker - 1)
            ),
        }
        if ice_port:
            changes["ice"] = dataclasses.replace(config.ice, port=ice_port + i)
        if i > 0 and config.demo.enabled:
            changes["demo"] = dataclasses.replace(config.demo, enabled=False)
        if shared is not None:
            changes["access"] = shared
        configs.append(dataclasses.replace(config, **changes))
    return configs


def _shared_token_secret(config: GatewayConfig) -> AccessConfig | None:
    """The [access] section with a secret all workers share, if the file sets none."""
    if config.access.token_secret is not None:
        return None
    return dataclasses.replace(config.access, token_secret=secrets.token_hex(32))


# ---------------------------------------------------------------------------- the worker
async def _serve_worker(
    config: GatewayConfig, index: int, state: StateDirectory, node: str
) -> None:
    from gateway.process.gateway import serve  # the supervisor itself needs none of the application

    # The supervisor ended what this worker's predecessor left.
    shared = await SharedState.open(
        config, node=node, owner=owner_name(node, index), ledger_file=state.ledger
    )
    journal = state.journal(index)
    recorders: list[DialogJournal] = []

    def started(gateway: Gateway) -> None:
        recorder = DialogJournal(gateway.endpoint, journal)
        recorder.start()
        recorders.append(recorder)
        low, high = config.media.rtp_ports
        host, port = config.sip.listen
        print(
            f"worker {index} ready: pid {os.getpid()}, SIP {host}:{port}, RTP {low}-{high}",
            flush=True,
        )

    try:
        await serve(
            config, shared=shared, on_started=started, announce=index == 0, share_http_port=True
        )
    finally:
        for recorder in recorders:  # every call hung up by now: the journal is left empty
            await recorder.stop()
        await shared.close()


def install_memory_reports() -> MemoryReporter | None:
    """Memory reports when CLICK_TO_CALL_MEMORY_REPORTS names a directory (docs/
    benchmark.md); the diagnostics module (tracemalloc and all) is imported only then."""
    if not os.environ.get("CLICK_TO_CALL_MEMORY_REPORTS"):
        return None
    from gateway.process import memory_debug

    return memory_debug.install_from_environment()


PR_SET_PDEATHSIG = 1


def _end_with_the_supervisor(supervisor: int) -> None:
    """SIGTERM this worker when its supervisor dies (Linux): unsupervised, it would hold the
    HTTP port that a new supervisor needs, and nobody would end its calls if it died."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor:  # it died before the line above
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(config: GatewayConfig, index: int, state: StateDirectory, node: str) -> int:
    supervisor = os.getppid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    _end_with_the_supervisor(supervisor)
    memory = install_memory_reports()
    try:
        event_loop.run(_serve_worker(config, index, state, node))
    except StartError as exc:
        print(f"worker {index} cannot start: {exc}", file=sys.stderr, flush=True)
        return EXIT_CANNOT_START
    except StorageError as exc:
        print(f"worker {index} cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    except OSError as exc:
        print(f"worker {index} cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    finally:
        if memory is not None:
            memory.report("worker stopping")
    return 0


# ---------------------------------------------------------------------------- supervisor
class Supervisor:
    """Forks the workers, restarts those that die, stops them all on SIGINT/SIGTERM.
    `node`: this node's name (gateway.process.state.node_name)."""

    def __init__(self, configs: list[GatewayConfig], state: StateDirectory, node: str) -> None:
        self.configs = configs
        self.state = state
        self.node = node
        self._pids: dict[int, int] = {}  # pid -> worker index
        self._started: dict[int, float] = {}  # worker index -> when
        self._stopping = False

    def run(self) -> int:
        """Prepare, fork the workers, then become the lean supervisor (gateway.process.
        watch), which restarts those that die and stops them all on SIGINT/SIGTERM, and
        exits with the gateway's status (0 when stopped by a signal, 1 when a worker cannot
        start or keeps failing); returns that status only when this process could not be
        replaced and watched itself. Raises StartError when the HTTP port is taken,
        StorageError when the database or Redis cannot be used."""
        # The workers share it (SO_REUSEPORT): it must be nobody else's before they do.
        check_tcp_free("http.listen", self.configs[0].http.listen)
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        # The schema brought up to date once, before any worker opens the database (in a
        # child: Alembic stays out of the processes that run); then whatever this node left
        # when it stopped last (a supervisor killed with its workers), ended.
        migrate_in_child(self.configs[0])
        asyncio.run(self._end_left_behind())
        # Every worker's metrics in files there, summed by whichever answers /metrics.
        metrics.use_multiprocess_directory(self.state.path / METRICS)
        for index in range(len(self.configs)):
            self._spawn(index)
        lock_fd = self.state.lock_fd
        assert lock_fd is not None, "the state directory is held until the gateway stops"
        return watch.become_watcher(
            watch.Handover(
                configs=pickle.dumps(self.configs),
                count=len(self.configs),
                state_path=str(self.state.path),
                lock_fd=lock_fd,
                node=self.node,
                pids=self._pids,
                started=self._started,
                stopping=self._stopping,
            )
        )

    def _spawn(self, index: int) -> None:
        config = self.configs[index]
        sys.stdout.flush()
        sys.stderr.flush()
        # What the supervisor imported (the whole stack, ~80 MB) is shared with the workers
        # copy-on-write; kept out of their collections, it stays shared (idle PSS of a
        # 2-worker gateway 129 -> 93 MB, docs/benchmark.md). The C heap's free pages are
        # returned first: forked, they would count in every worker (~0.5 MB).
        freeze_startup_objects()
        malloc_trim()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _worker_main(config, index, self.state, self.node)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self._pids[pid] = index
        self._started[index] = time.monotonic()

    def _end_worker(self, index: int, why: str) -> None:
        """End what worker `index` left (it died). A fresh event loop, database and Redis
        connection each time: none may cross a fork."""
        try:
            asyncio.run(
                self._with_reaper(lambda reaper, shared: self._reap(index, why, reaper, shared))
            )
        except Exception as exc:
            print(f"worker {index}: cannot end what it left: {exc}", flush=True)

    async def _end_left_behind(self) -> None:
        async def end_all(reaper: Reaper, shared: SharedState) -> None:
            if isinstance(shared.ledger, SqliteLedger):
                shared.ledger.release_all(time.time())  # the machine's: none of its workers runs
            for worker in sorted(await self._left_behind(reaper, shared)):
                index = self._index(worker)
                await self._reap(index, "stopped", reaper, shared, worker=worker)

        await self._with_reaper(end_all)

    async def _with_reaper(self, action: Callable[[Reaper, SharedState], Awaitable[None]]) -> None:
        config = self.configs[0]
        database = await Database.open(config.storage.database)
        try:
            shared = await SharedState.open(
                config,
                node=self.node,
                owner=f"{self.node}/supervisor",
                ledger_file=self.state.ledger,
            )
            try:
                reaper = Reaper(
                    config,
                    database,
                    shared.live_registry(database),
                    shared.ledger,
                    by=f"the supervisor of node {self.node}",
                )
                await action(reaper, shared)
            finally:
                await shared.close()
        finally:
            await database.close()

    async def _left_behind(self, reaper: Reaper, shared: SharedState) -> set[str]:
        """The workers whose leftovers are this node's to end: those named after it, and
        names of an earlier release (`worker-<i>`, from when there was one machine)."""
        workers = {owner_name(self.node, i) for i in self._journal_indexes()}
        workers |= await reaper.live.workers()
        workers |= await reaper.database.callbacks.dialing_claimers()
        if shared.presence is not None:
            workers |= set(await shared.presence.alive()) | await shared.presence.published()
        return {
            w
            for w in workers
            if (w.startswith(f"{self.node}/") or "/" not in w) and w != shared.owner
        }

    def _journal_indexes(self) -> list[int]:
        indexes = []
        for path in self.state.journal(0).parent.glob("worker-*.json"):
            suffix = path.stem.removeprefix("worker-")
            if suffix.isdigit():
                indexes.append(int(suffix))
        return indexes

    def _index(self, worker: str) -> int | None:
        prefix = f"{self.node}/worker-"
        suffix = worker.removeprefix(prefix)
        return int(suffix) if worker.startswith(prefix) and suffix.isdigit() else None

    async def _reap(
        self,
        index: int | None,
        why: str,
        reaper: Reaper,
        shared: SharedState,
        *,
        worker: str | None = None,
    ) -> None:
        worker = worker or owner_name(self.node, index)
        presence = shared.presence
        if presence is not None and not await presence.claim(worker, shared.owner):
            # Another node ends it (it saw the heartbeats stop first); the new worker waits
            # for that before it starts (Heartbeat.join).
            return
        dialogs: list[dict] = []
        sip = None
        if index is not None:
            journal = self.state.journal(index)
            dialogs = read_journal(journal)
            sip = self._sip_of(index)
        try:
            if not dialogs and presence is not None:
                dialogs = await presence.dialogs(worker)
            outcome = await reaper.reap(worker, dialogs, sip, why)
        finally:
            if index is not None:
                self.state.journal(index).unlink(missing_ok=True)
            if presence is not None:
                await presence.done(worker)
        if outcome:
            print(
                f"{'worker ' + str(index) if index is not None else worker}: {outcome}", flush=True
            )

    def _sip_of(self, index: int) -> SipFrom:
        """Worker `index`'s own SIP address (its port: sip.listen + index), so that the
        answers to the requests that end its calls come back."""
        base = self.configs[0]
        host, port = base.sip.listen
        public_host, public_port = base.sip.public_address
        return SipFrom((host, port + index), (public_host, public_port + index))

    def _on_stop_signal(self, signum, frame) -> None:
        """Before the workers run: they are stopped as soon as they are forked."""
        self._stopping = True


def migrate_in_child(config: GatewayConfig) -> None:
    """Bring the database to the newest schema in a forked child, so that Alembic (~12 MB
    with Mako and Pygments) is never imported by the supervisor, nor shared into the
    workers it forks. Raises StorageError with the child's reason."""
    reader, writer = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        code = 0
        try:
            asyncio.run(_migrate(config))
        except StorageError as exc:
            os.write(writer, str(exc).encode()[:4000])
            code = 1
        except BaseException as exc:
            os.write(writer, f"cannot migrate: {exc!r}".encode()[:4000])
            code = 1
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        reason = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise StorageError(reason or f"the migration ended with status {status}")


async def _migrate(config: GatewayConfig) -> None:
    database = await Database.open(config.storage.database)
    await database.close()


def run_workers(config: GatewayConfig, count: int, state: StateDirectory, node: str) -> int:
    """Run `count` workers of `config` until SIGINT/SIGTERM, keeping their ledger and
    journals in `state`; `node` names this node. Once they run, this process becomes the
    lean supervisor (gateway.process.watch) and exits from there. Raises
    WorkerConfigError, StartError, StorageError."""
    configs = worker_configs(config, count)
    return Supervisor(configs, state, node).run()


# ------------------------------------------------ what the lean supervisor runs in children
def _taken_over(handover: watch.Handover) -> tuple[list[GatewayConfig], StateDirectory]:
    """In a child of the lean supervisor: the workers' configurations (this imports the
    application), logging and the metrics' directory as the supervisor had them."""
    configs: list[GatewayConfig] = pickle.loads(handover.configs)
    configure_logging(configs[0].log)
    state = StateDirectory(Path(handover.state_path), handover.lock_fd)
    metrics.join_multiprocess_directory(state.path / METRICS)
    return configs, state


def end_worker(handover: watch.Handover, index: int, pid: int, why: str) -> None:
    """End what worker `index` (`pid`, dead) left: its live gauges, its calls (failover)."""
    configs, state = _taken_over(handover)
    metrics.worker_died(pid)
    Supervisor(configs, state, handover.node)._end_worker(index, why)


def restarted_worker(handover: watch.Handover, index: int) -> int:
    """Worker `index` again, in a child of the lean supervisor; its exit status."""
    configs, state = _taken_over(handover)
    return _worker_main(configs[index], index, state, handover.node)
