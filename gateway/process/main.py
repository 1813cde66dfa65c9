"""`python -m gateway [--config FILE] [--workers N]`: run the gateway (embedded defaults
without a file) as N worker processes, one per core by default (gateway.process.supervisor).

`python -m gateway --check FILE [--workers N]` validates FILE (with the environment's
overrides, as a start would) without starting anything: it prints every problem and exits
2, or says the configuration is good and exits 0."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.process.binding import StartError
from gateway.process.gateway import serve
from gateway.process.logs import configure_logging
from gateway.process.state import StateDirectory, StateDirectoryError
from gateway.process.supervisor import (
    WorkerConfigError,
    default_worker_count,
    install_memory_reports,
    run_workers,
    worker_configs,
)


def check(path: Path, workers: int | None) -> int:
    """`--check FILE`: 0 when the gateway would start with it, else 2 after every problem."""
    try:
        config = load_config(path, os.environ)
        count = default_worker_count() if workers is None else workers
        if count > 0:
            worker_configs(config, count)  # the split into workers a start would make
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except WorkerConfigError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    sites = ", ".join(site.id for site in config.sites)
    print(f"{path}: the configuration is valid ({len(config.sites)} site(s): {sites})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--check",
        type=Path,
        metavar="FILE",
        help="validate FILE (and GATEWAY_* overrides) without starting: print every problem "
        "and exit 2, or exit 0 when it is good",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="gateway processes sharing the HTTP port, each with its own SIP port "
        "(sip.listen + i) and RTP ports (a slice of media.rtp_ports); default: one per core. "
        "0 runs one gateway in this process, without a supervisor",
    )
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 0:
        parser.error("--workers must be 0 or more")
    if args.check is not None:
        if args.config is not None:
            parser.error("give --check FILE or --config FILE, not both")
        return check(args.check, args.workers)
    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot read {args.config}: {exc.strerror}", file=sys.stderr)
        return 2
    configure_logging(config.log)
    workers = default_worker_count() if args.workers is None else args.workers
    try:
        # Held for as long as this process (and the workers it forks) runs.
        state = StateDirectory.claim(config.storage.state_directory)
    except StateDirectoryError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        if workers == 0:
            return _serve_here(config)
        return run_workers(config, workers, state)
    except StartError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    except WorkerConfigError as exc:
        print(f"configuration error:\n  {exc}", file=sys.stderr)
        return 2
    finally:
        state.release()


def _serve_here(config: GatewayConfig) -> int:
    """One gateway in this process (`--workers 0`)."""
    memory = install_memory_reports()
    try:
        asyncio.run(serve(config))
    except (StartError, OSError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        if memory is not None:
            memory.report("stopping")
    return 0
