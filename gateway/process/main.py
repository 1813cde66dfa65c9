"""`python -m gateway [--config FILE] [--workers N]`: run the gateway (embedded defaults
without a file) as N worker processes, one per core by default (gateway.process.supervisor).

`python -m gateway --check FILE [--workers N]` validates FILE (with the environment's
overrides, as a start would) without starting anything: it prints every problem and exits
2, or says the configuration is good and exits 0.

`python -m gateway migrate [--config FILE]` brings the database to the newest schema (the
gateway also does at start); `python -m gateway hash-password` makes an Argon2id hash for
`[[admin.users]] password_hash` from a password typed twice (or one line on stdin)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path

from gateway.admin.auth import MIN_PASSWORD_CHARS, hash_password
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.process import event_loop
from gateway.process.binding import StartError
from gateway.process.gateway import serve
from gateway.process.logs import configure_logging
from gateway.process.state import StateDirectory, StateDirectoryError, node_name
from gateway.process.supervisor import (
    WorkerConfigError,
    default_worker_count,
    install_memory_reports,
    run_workers,
    worker_configs,
)
from gateway.storage import Database, StorageError


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
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=("run", "migrate", "hash-password"),
        help="run the gateway (default), migrate its database, or hash an admin password",
    )
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
    if args.command == "hash-password":
        return _hash_password()
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
    if args.command == "migrate":
        return _migrate(config)
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
        return run_workers(config, workers, state, node_name(config.storage.node, state.path))
    except (StartError, StorageError) as exc:
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
        event_loop.run(serve(config))
    except (StartError, OSError, StorageError) as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    finally:
        if memory is not None:
            memory.report("stopping")
    return 0


def _migrate(config: GatewayConfig) -> int:
    async def run() -> tuple[str | None, str]:
        database = await Database.open(config.storage.database)
        await database.close()
        return database.schema

    try:
        before, after = asyncio.run(run())
    except StorageError as exc:
        print(f"cannot migrate: {exc}", file=sys.stderr)
        return 1
    url = config.storage.database.redacted()
    if before == after:
        print(f"{url}: schema {after}, the newest: nothing to do")
    else:
        print(f"{url}: schema {before or 'empty'} -> {after}")
    return 0


def _hash_password() -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Again: "):
            print("the two passwords differ", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_CHARS:
        print(f"a password has at least {MIN_PASSWORD_CHARS} characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0
