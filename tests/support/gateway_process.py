"""The gateway as an operator runs it: `python -m gateway --config FILE [--workers N]`, a
child process in a test's own directory (its working directory, so the default state
directory `var` lands there), with its output in files and always stopped at teardown."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from .peer_process import PeerProcess, PeerStartError

__all__ = ["GatewayProcess"]


class GatewayProcess(PeerProcess):
    """`GatewayProcess(workdir, toml, workers=1)`, then `start()` and `await wait_ready()`;
    `workers=0`: one process, no supervisor."""

    def __init__(
        self,
        workdir: Path,
        toml: str,
        *,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        name: str = "gateway",
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(toml)
        self.workers = workers
        argv = [sys.executable, "-m", "gateway", "--config", str(self.config_path)]
        super().__init__(
            name,
            [*argv, "--workers", str(workers)],
            workdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def _ready(self) -> bool:
        text = self.stdout()
        if self.workers == 0:
            return "Gateway ready on" in text
        return text.count(" ready: pid ") >= self.workers

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until every worker said it is ready; PeerStartError if the gateway exits first."""
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.returncode is not None:
                raise PeerStartError(f"the gateway exited with {self.returncode}\n{self.output()}")
            if time.monotonic() > deadline:
                raise PeerStartError(f"the gateway was not ready in {timeout} s\n{self.output()}")
            await asyncio.sleep(0.05)
