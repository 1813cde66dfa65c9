"""`python -m gateway [--config FILE] [--workers N]`: run the gateway (embedded defaults
without a file) as N worker processes, one per core by default (gateway.process.supervisor)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from gateway.config import ConfigError, load_config
from gateway.process import event_loop
from gateway.process.gateway import serve
from gateway.process.supervisor import (
    WorkerConfigError,
    default_worker_count,
    install_memory_reports,
    run_workers,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML configuration file")
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
    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        print(f"configuration error:\n{exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot read {args.config}: {exc.strerror}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log.level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    workers = default_worker_count() if args.workers is None else args.workers
    if workers == 0:
        memory = install_memory_reports()
        try:
            event_loop.run(serve(config))
        except OSError as exc:
            print(f"cannot start: {exc}", file=sys.stderr)
            return 1
        finally:
            if memory is not None:
                memory.report("stopping")
        return 0
    # Journals of each worker's calls, found again by a supervisor restarted on this port.
    journal_dir = Path(tempfile.gettempdir()) / f"gateway-{os.getuid()}-{config.http.listen[1]}"
    try:
        return run_workers(config, workers, journal_dir)
    except WorkerConfigError as exc:
        print(f"configuration error:\n  {exc}", file=sys.stderr)
        return 2
