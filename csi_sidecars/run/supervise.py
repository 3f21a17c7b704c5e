"""Crash-only supervision of the roles of one process, shared by every bundle kind.

Each role runs its own main, ``async (stop) -> exit code``, as its subcommand would. A role
that ends on its own (a failed start-up, kubelet refusing the registration, a bug) takes the
process down: the others are asked to stop, get ``grace`` seconds, and the process exits with
the failed role's code, which one error line names. After SIGTERM or SIGINT every role stops;
the exit code is 0 unless one of them failed while stopping, which is named the same way. A role
never restarts itself in place: the container restarts, with clean state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("run")

RoleMain = Callable[[asyncio.Event], Awaitable[int]]
GRACE = 10.0


def _outcome(name: str, task: asyncio.Task[int]) -> int:
    if task.cancelled():
        return 1
    exc = task.exception()
    if exc is not None:
        log.error(f"Role {name} failed", role=name, exc_info=exc)
        return 1
    return task.result()


async def supervise(mains: dict[str, RoleMain], stop: asyncio.Event, grace: float = GRACE) -> int:
    """Run every role's main until one ends or ``stop`` is set; return the process exit code."""
    role_stop = asyncio.Event()
    tasks = {asyncio.ensure_future(main(role_stop)): name for name, main in mains.items()}
    stopping = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
        ended = [task for task in tasks if task in done]
        code = 0
        if ended and not stop.is_set():
            name = tasks[ended[0]]
            code = _outcome(name, ended[0]) or 1  # a role that ends by itself is a failure
            log.error(
                f"Role {name} exited with code {code}, stopping the other roles",
                role=name,
                exit_code=code,
            )
        role_stop.set()
        pending = [task for task in tasks if not task.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for task in late:
                log.error(f"Role {tasks[task]} did not stop in {grace:g}s", role=tasks[task])
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*late, return_exceptions=True)
        if code == 0:
            for task, name in tasks.items():
                role_code = _outcome(name, task)
                if role_code:
                    log.error(f"Role {name} exited with code {role_code}", role=name)
                    return role_code
        return code
    finally:
        stopping.cancel()
