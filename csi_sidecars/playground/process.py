"""Child processes of the testbed: started in their own session, always stopped.

Every child (etcd, the Kubernetes components, the CSI driver, sidecars) runs in a new session, so
it can be signalled as a whole process group and a Ctrl-C in the terminal reaches only the
parent, which then stops children in order. On Linux each child also gets a parent-death signal
(SIGKILL), so a test run that crashes or is killed leaves no stray process behind. Output goes to
a log file per process, which tests read when something fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL it when the parent dies."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


#: The lowest port :func:`free_port` picks from (below the kernel's ephemeral range).
LISTEN_PORTS_FROM = 15000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_RANDOM = random.SystemRandom()
_GIVEN: set[int] = set()


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of local ports for outgoing connections (Linux's default if unknown)."""
    try:
        low, high = (int(x) for x in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, for a server to listen on.

    Picked below the kernel's ephemeral range when there is room: a server that is killed and
    started again on its port (the testbed's sidecars, API server and etcd under chaos) could
    otherwise find the port taken as the local end of some client's outgoing connection.
    """
    low, _ = ephemeral_ports()
    if low - LISTEN_PORTS_FROM >= 1000:
        for _ in range(64):
            # A private generator (callers may seed the global one) and never the same port
            # twice in a process: ports handed out are often bound only later.
            port = _RANDOM.randrange(LISTEN_PORTS_FROM, low)
            if port not in _GIVEN and _bindable(port):
                _GIVEN.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        found: int = s.getsockname()[1]
        return found


async def poll_until(
    check: Callable[[], Awaitable[T | None]],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
    max_interval: float = 1.0,
    fatal: tuple[type[BaseException], ...] = (),
) -> T:
    """Call ``check`` until it returns something other than None or False; return that.

    Exceptions from ``check`` count as "not yet" (the last one is chained to the timeout error),
    except those of a ``fatal`` type, which propagate at once.

    Raises:
        TimeoutError: nothing truthy came back within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    delay = interval
    while True:
        try:
            result = await check()
        except fatal:
            raise
        except Exception as exc:
            last_error = exc
        else:
            if result is not None and result is not False:
                return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}") from last_error
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, max_interval)


class ManagedProcess:
    """One child process with a log file, stopped with SIGTERM then SIGKILL.

    Args:
        name: short name for messages.
        argv: the command line.
        log_path: file that receives stdout and stderr (appended to across restarts).
        env: extra environment variables on top of ``os.environ``.
        cwd: working directory.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(env or {})
        self.cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        """The process id, or None before the first start."""
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended, else None."""
        return self._proc.returncode if self._proc is not None else None

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited."""
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Start the process (again, after a stop).

        Raises:
            RuntimeError: it is already running.
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with self.log_path.open("ab") as log:
            log.write(f"--- start: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process group, if it runs."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signum)

    async def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to exit and return its status.

        Raises:
            RuntimeError: it was never started.
            TimeoutError: it is still running after ``timeout`` seconds.
        """
        if self._proc is None:
            raise RuntimeError(f"{self.name} was never started")
        return await asyncio.wait_for(self._proc.wait(), timeout)

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` seconds; return the status.

        Safe to call when the process never started or already exited.
        """
        if self._proc is None:
            return None
        if self._proc.returncode is None:
            self.signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._proc.wait(), timeout)
            except TimeoutError:
                self.signal(signal.SIGKILL)
                await self._proc.wait()
        # The leader is gone; make sure no member of its group outlives it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        return self._proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log file (empty when there is none)."""
        try:
            data = self.log_path.read_bytes()[-65536:]
        except FileNotFoundError:
            return ""
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
