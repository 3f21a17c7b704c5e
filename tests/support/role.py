"""``python -m csi_sidecars <role> ...`` as a subprocess, exactly as a container runs it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class Role:
    """``python -m csi_sidecars <args>`` as a subprocess, output captured in a log file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> Role:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        with self.log_path.open("wb") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "csi_sidecars",
                *self.args,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env=env,
            )
        return self

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit and return its exit code."""
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"process did not exit in {timeout}s:\n{self.output}") from None

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    async def close(self) -> None:
        """Kill the process if it still runs."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
