"""One lazily dialled driver connection that several users of a process share.

A node role alone dials its driver once at start-up; in the node bundle (``csi-sidecars run``)
the registrar and the livenessprobe share that connection when they point at the same socket.
:meth:`DriverLink.connect` starts one background dial (retrying forever, ``Still connecting``
every 10 s) and lets each caller wait with its own timeout: the registrar gives up after 30 s,
the livenessprobe waits forever, as in Go. Per-probe connections do not go through the link.
"""

from __future__ import annotations

import asyncio
import contextlib

from csi_sidecars.csi.lean.client import DialTimeoutError, LeanConnection, dial
from csi_sidecars.csi.lean.status import GO_DEADLINE


class DriverLink:
    """The shared connection to the driver at ``address``."""

    def __init__(self, address: str) -> None:
        """Nothing is dialled until :meth:`connect`."""
        self.address = address
        self._dial: asyncio.Task[LeanConnection] | None = None

    async def connect(self, timeout: float | None) -> LeanConnection:
        """The connection, dialled on first use; wait at most ``timeout`` s (None: forever).

        Raises:
            DialTimeoutError: when the driver accepted no connection within ``timeout``.
        """
        if self._dial is None:
            self._dial = asyncio.ensure_future(dial(self.address, timeout=None))
        limit = timeout if timeout is not None and timeout > 0 else None
        try:
            return await asyncio.wait_for(asyncio.shield(self._dial), limit)
        except TimeoutError:
            raise DialTimeoutError(
                f"{GO_DEADLINE}: {self.address} accepted no connection within {limit:g}s"
            ) from None

    async def close(self) -> None:
        """Stop dialling and close the connection. Safe to call twice."""
        task, self._dial = self._dial, None
        if task is None:
            return
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        if not task.cancelled() and task.exception() is None:
            task.result().close()
