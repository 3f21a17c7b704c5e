"""The engine of ``csi-sidecars csi check``: steps, results and guaranteed clean-up.

:class:`Steps` runs one RPC per step, records a :class:`StepResult` (PASS, WARN when the reply
breaks a spec rule, FAIL, SKIP) and keeps a stack of undo actions for the objects the check
created. Whatever happens (a failed step, a timeout, Ctrl-C), :meth:`Steps.cleanup` runs every
pending undo, newest first, and records each as a ``cleanup:`` step. The check never lists and
deletes: it only undoes what its own requests did, by the IDs its own replies returned, unlike
csi-sanity's paging test that once deleted volumes it had not created (csi-test #223).
The scenario itself is in :mod:`csi_sidecars.csicli.scenario`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from csi_sidecars.csi.codes import format_error
from csi_sidecars.csi.connection import Connection
from csi_sidecars.csicli.speccheck import check_reply

PASS = "PASS"
WARN = "WARN"
FAIL = "FAIL"
SKIP = "SKIP"

#: Codes after which a create may still have happened on the driver.
MAYBE_DONE = frozenset(
    {
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)


@dataclass
class StepResult:
    """The outcome of one step of the check."""

    step: str
    rpc: str
    result: str
    seconds: float = 0.0
    detail: str = ""

    def to_data(self) -> dict[str, Any]:
        """Plain data for JSON/YAML output."""
        return {
            "step": self.step,
            "rpc": self.rpc,
            "result": self.result,
            "seconds": round(self.seconds, 4),
            "detail": self.detail,
        }


class Abort(Exception):
    """A fatal step failed; the scenario stops and clean-up runs."""

    def __init__(self, code: grpc.StatusCode | None = None) -> None:
        """Remember the gRPC code of the failure, if it was one."""
        super().__init__(code)
        self.code = code


Verify = Callable[[Any], str | None]
Undo = Callable[[], Awaitable[Any]]


class Steps:
    """Runs steps against the controller and node connections and records their results."""

    def __init__(
        self,
        controller: Connection,
        node: Connection,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Args: the connections (the same one when the driver serves both), the deadline of
        each call in seconds, and the clock that times steps."""
        self.controller = controller
        self.node = node
        self.timeout = timeout
        self.clock = clock
        self.results: list[StepResult] = []
        self.plugin_caps: set[str] | None = None
        self._undo: list[tuple[str, str, str, Undo]] = []

    def record(
        self, step: str, rpc: str, result: str, seconds: float = 0.0, detail: str = ""
    ) -> None:
        """Add a result row."""
        self.results.append(StepResult(step, rpc, result, seconds, detail))

    def skip(self, step: str, rpc: str, why: str) -> None:
        """Record a step that does not apply to this driver."""
        self.record(step, rpc, SKIP, detail=why)

    def _conn(self, service: str) -> Connection:
        return self.node if service == "node" else self.controller

    async def call(self, service: str, rpc: str, request: Any) -> Any:
        """One RPC with the per-call deadline, no recording.

        Raises:
            grpc.aio.AioRpcError: when it fails.
        """
        fn = getattr(getattr(self._conn(service), service), rpc)
        return await fn(request, timeout=self.timeout)

    async def run(
        self,
        step: str,
        service: str,
        rpc: str,
        request: Any,
        verify: Verify | None = None,
        fatal: bool = True,
    ) -> Any:
        """Run and record one step; returns the reply, or None for a non-fatal failure.

        ``verify(reply)`` returns why the reply is wrong (a FAIL), or None. Spec warnings on the
        reply make the step WARN.

        Raises:
            Abort: when a ``fatal`` step fails.
        """
        start = self.clock()
        try:
            reply = await self.call(service, rpc, request)
        except grpc.aio.AioRpcError as err:
            self.record(step, rpc, FAIL, self.clock() - start, format_error(err))
            if fatal:
                raise Abort(err.code()) from None
            return None
        seconds = self.clock() - start
        problem = verify(reply) if verify is not None else None
        if problem:
            self.record(step, rpc, FAIL, seconds, problem)
            if fatal:
                raise Abort()
            return None
        warnings = check_reply(rpc, request, reply, self.plugin_caps)
        if warnings:
            self.record(step, rpc, WARN, seconds, "; ".join(str(w) for w in warnings))
        else:
            self.record(step, rpc, PASS, seconds)
        return reply

    def push_undo(self, key: str, step: str, rpc: str, undo: Undo) -> None:
        """Remember how to undo what a step did, under ``key``."""
        self._undo.append((key, step, rpc, undo))

    def undo_request(self, key: str, step: str, service: str, rpc: str, request: Any) -> None:
        """Remember an undo that is one RPC."""

        async def undo() -> Any:
            return await self.call(service, rpc, request)

        self.push_undo(key, step, rpc, undo)

    def done(self, key: str) -> None:
        """The scenario undid ``key`` itself; forget it."""
        self._undo = [u for u in self._undo if u[0] != key]

    def pending(self) -> list[str]:
        """Keys of the undo actions still pending, oldest first."""
        return [u[0] for u in self._undo]

    async def cleanup(self) -> None:
        """Run every pending undo, newest first, recording each; failures do not stop the rest."""
        while self._undo:
            _key, step, rpc, undo = self._undo.pop()
            start = self.clock()
            try:
                await undo()
            except grpc.aio.AioRpcError as err:
                self.record(f"cleanup: {step}", rpc, FAIL, self.clock() - start, format_error(err))
            except Exception as err:  # a clean-up must not stop the others
                self.record(f"cleanup: {step}", rpc, FAIL, self.clock() - start, repr(err))
            else:
                self.record(f"cleanup: {step}", rpc, PASS, self.clock() - start)

    def failed(self) -> bool:
        """Whether any step failed."""
        return any(r.result == FAIL for r in self.results)

    def summary(self) -> str:
        """``9 passed, 1 warned, 0 failed, 3 skipped``."""
        counts = {
            k: sum(1 for r in self.results if r.result == k) for k in (PASS, WARN, FAIL, SKIP)
        }
        return (
            f"{counts[PASS]} passed, {counts[WARN]} warned, {counts[FAIL]} failed, "
            f"{counts[SKIP]} skipped"
        )
