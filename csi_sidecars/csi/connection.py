"""The async connection to the CSI driver that every role holds.

:func:`connect` dials the driver's socket the way csi-lib-utils' ``connection.Connect`` does:

* ``unix:///path`` or a bare absolute path (which gets ``unix://``); any other target is handed
  to gRPC name resolution (e.g. ``dns:///host:port``);
* it waits until the channel is READY, logging ``Still connecting`` every 10 s, for at most
  ``timeout`` seconds (30 s by default; ``None`` or ``0`` waits forever);
* reconnect back-off is capped at 1 s and the channel never idles out;
* every unary call goes through the -v=5 log interceptor (secrets stripped) and, when a
  :class:`~csi_sidecars.csi.metrics.CSIMetrics` is given, the metrics interceptor.

After the first successful connect a watcher follows the channel's connectivity state. When it
leaves READY the driver is gone (it restarted or its socket vanished) and ``on_lost`` decides:
:attr:`LossPolicy.EXIT` (controller roles) logs ``Lost connection to CSI driver, exiting``, writes
that line to ``/dev/termination-log`` and exits 1 so the pod restarts with clean state;
:attr:`LossPolicy.RECONNECT` (node roles) logs the loss and redials in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import sys
import time
from collections.abc import Callable
from typing import Any, cast

import grpc
import grpc.aio

from csi_sidecars.csi.gen import csi_pb2_grpc
from csi_sidecars.csi.interceptors import LogInterceptor, MetricsInterceptor
from csi_sidecars.csi.metrics import CSIMetrics
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("connection")

DEFAULT_TIMEOUT = 30.0
STILL_CONNECTING_INTERVAL = 10.0
TERMINATION_LOG = "/dev/termination-log"
LOST_MESSAGE = "Lost connection to CSI driver, exiting"

_INT32_MAX = 2**31 - 1
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    # Go: backoff.DefaultConfig with MaxDelay 1 s, i.e. redial about once a second.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Go: WithIdleTimeout(0). An idle channel would otherwise leave READY after 30 minutes,
    # which the loss watcher would take for a lost driver.
    ("grpc.client_idle_timeout_ms", _INT32_MAX),
]


class LossPolicy(enum.Enum):
    """What to do when an established connection to the driver is lost."""

    #: Log, write the termination log and exit 1 (external-provisioner, -attacher, ...).
    EXIT = "exit"
    #: Log and redial in the background (node-driver-registrar, livenessprobe).
    RECONNECT = "reconnect"


class ConnectTimeoutError(TimeoutError):
    """The driver's socket did not become connectable within the timeout."""


ExitAction = Callable[[int], object]


def _hard_exit(code: int) -> None:
    """Exit the process now, as Go's os.Exit: no cleanup that could hang."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def normalize_address(address: str) -> str:
    """The gRPC target for a ``--csi-address`` value: an absolute path becomes ``unix://path``."""
    if address.startswith("/"):
        return "unix://" + address
    return address


def _state(channel: grpc.aio.Channel, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
    return channel.get_state(try_to_connect=try_to_connect)


class Connection:
    """An open, READY connection to a CSI driver. Create it with :func:`connect`.

    Attributes:
        address: the address as given (``--csi-address``).
        target: the gRPC target dialled.
        channel: the ``grpc.aio`` channel; the stubs below share it.
        identity: ``csi.v1.Identity`` stub.
        controller: ``csi.v1.Controller`` stub.
        group_controller: ``csi.v1.GroupController`` stub.
        node: ``csi.v1.Node`` stub.
        snapshot_metadata: ``csi.v1.SnapshotMetadata`` stub.
        lost: set when the connection was lost at least once since it was established.
    """

    def __init__(
        self,
        address: str,
        channel: grpc.aio.Channel,
        *,
        on_lost: LossPolicy,
        exit_action: ExitAction,
        termination_log: str | None,
    ) -> None:
        """Wrap an already created channel; use :func:`connect` instead."""
        self.address = address
        self.target = normalize_address(address)
        self.channel = channel
        self.on_lost = on_lost
        self.lost = asyncio.Event()
        self._exit_action = exit_action
        self._termination_log = termination_log
        self._watcher: asyncio.Task[None] | None = None
        g = csi_pb2_grpc  # the *AsyncStub types exist only in the .pyi stubs
        self.identity = cast("csi_pb2_grpc.IdentityAsyncStub", g.IdentityStub(channel))
        self.controller = cast("csi_pb2_grpc.ControllerAsyncStub", g.ControllerStub(channel))
        self.group_controller = cast(
            "csi_pb2_grpc.GroupControllerAsyncStub", g.GroupControllerStub(channel)
        )
        self.node = cast("csi_pb2_grpc.NodeAsyncStub", g.NodeStub(channel))
        self.snapshot_metadata = cast(
            "csi_pb2_grpc.SnapshotMetadataAsyncStub", g.SnapshotMetadataStub(channel)
        )

    @property
    def ready(self) -> bool:
        """Whether the channel is READY right now."""
        return bool(_state(self.channel) == grpc.ChannelConnectivity.READY)

    async def wait_ready(self, timeout: float | None) -> None:
        """Wait until the channel is READY, logging ``Still connecting`` every 10 s.

        Args:
            timeout: seconds to wait; None or ``<= 0`` waits forever.

        Raises:
            ConnectTimeoutError: when the timeout passes first.
        """
        limit = timeout if timeout is not None and timeout > 0 else None
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            if deadline is None:
                slice_ = STILL_CONNECTING_INTERVAL
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ConnectTimeoutError(
                        f"timed out after {limit:g}s waiting for the CSI driver at {self.address}"
                    )
                slice_ = min(STILL_CONNECTING_INTERVAL, remaining)
            try:
                await asyncio.wait_for(self.channel.channel_ready(), slice_)
                return
            except TimeoutError:
                if deadline is None or deadline - time.monotonic() > 0:
                    log.info("Still connecting", address=self.target)

    def start_watching(self) -> None:
        """Follow the channel state to detect a lost connection; call once READY (idempotent)."""
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(
                self._watch(), name=f"csi-connection-watch {self.address}"
            )

    async def _watch(self) -> None:
        ready = grpc.ChannelConnectivity.READY
        # Start from READY, which connect() saw, not from a fresh read: a loss that happens
        # before this task first runs must still count (wait_for_state_change returns at once).
        state = ready
        was_ready = True
        while True:
            await self.channel.wait_for_state_change(state)
            state = _state(self.channel)
            if state == ready:
                if not was_ready:
                    log.info("Reconnected to CSI driver", address=self.target)
                was_ready = True
                continue
            if state == grpc.ChannelConnectivity.SHUTDOWN:
                return
            if was_ready:
                was_ready = False
                self.lost.set()
                if self.on_lost is LossPolicy.EXIT:
                    self._exit_on_loss()
                    return
                log.info("Lost connection to CSI driver, reconnecting", address=self.target)
            if state == grpc.ChannelConnectivity.IDLE:
                # An IDLE channel stays idle until asked; ask, so node roles redial at once.
                state = _state(self.channel, try_to_connect=True)

    def _exit_on_loss(self) -> None:
        log.error(LOST_MESSAGE, address=self.target)
        if self._termination_log:
            try:
                with open(self._termination_log, "w", encoding="utf-8") as f:
                    f.write(LOST_MESSAGE)
            except OSError as exc:
                log.info(
                    "Could not write the termination log",
                    path=self._termination_log,
                    error=str(exc),
                )
        self._exit_action(1)

    async def close(self) -> None:
        """Stop the loss watcher and close the channel. Safe to call twice."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self.channel.close()

    async def __aenter__(self) -> Connection:
        """Use as ``async with await connect(...) as conn``."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close on leaving the block."""
        await self.close()


async def connect(
    address: str,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    metrics: CSIMetrics | None = None,
    on_lost: LossPolicy = LossPolicy.RECONNECT,
    max_grpc_log_length: int = -1,
    exit_action: ExitAction = _hard_exit,
    termination_log: str | None = TERMINATION_LOG,
    options: list[tuple[str, Any]] | None = None,
) -> Connection:
    """Connect to the CSI driver at ``address`` and wait until the connection is READY.

    Args:
        address: ``unix:///path``, an absolute socket path, or any gRPC target.
        timeout: how long to wait for the driver, in seconds; None or ``0`` waits forever
            (livenessprobe); 30 s by default, as in Go.
        metrics: where to record every call; None records nothing (node-driver-registrar).
        on_lost: what to do when the established connection is lost (see :class:`LossPolicy`).
        max_grpc_log_length: cap on logged responses at -v=5; ``<= 0`` means no cap.
        exit_action: called with 1 to exit on loss under :attr:`LossPolicy.EXIT`; the default
            flushes stdio and ends the process at once. Tests inject a recorder.
        termination_log: file that receives the loss message, skipped when None or unwritable.
        options: extra gRPC channel options, appended to :data:`CHANNEL_OPTIONS`.

    Returns:
        A READY :class:`Connection`, already watching for loss. Close it with ``close()``.

    Raises:
        ConnectTimeoutError: when the driver did not become reachable within ``timeout``.
    """
    target = normalize_address(address)
    interceptors: list[grpc.aio.ClientInterceptor] = []
    if metrics is not None:
        interceptors.append(MetricsInterceptor(metrics))
    interceptors.append(LogInterceptor(max_grpc_log_length))
    channel = grpc.aio.insecure_channel(
        target, options=[*CHANNEL_OPTIONS, *(options or [])], interceptors=interceptors
    )
    conn = Connection(
        address,
        channel,
        on_lost=on_lost,
        exit_action=exit_action,
        termination_log=termination_log,
    )
    if rlog.v(5):
        log.info("Connecting", address=target)
    try:
        await conn.wait_ready(timeout)
    except BaseException:
        await channel.close()
        raise
    if rlog.v(4):
        log.info("Connected", address=target)
    conn.start_watching()
    return conn
