"""The playground driver's gRPC server, and the helper tests use to run it in-process.

:class:`Driver` serves Identity, Controller, GroupController and Node on one unix socket with
``grpc.aio``. Every call goes through one dispatcher that records it in :attr:`Driver.calls`,
applies the :class:`Faults` rules (delay, error before or after acting, reply patches) and maps
:class:`CsiError` to a gRPC status. Typical test use::

    async with run_driver(tmp_path, enable_attach=True) as drv:
        ... connect to drv.endpoint ...
        drv.faults.add("ControllerPublishVolume", code=grpc.StatusCode.UNAVAILABLE, times=2)
        await drv.wait_for_calls("ControllerPublishVolume", 3)
        assert drv.state.data.volumes[vol_id].attached == {"node-1": False}
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.csi.sanitize import strip_secrets
from csi_sidecars.playground.driver.faults import Faults, Patch
from csi_sidecars.playground.driver.model import CsiError
from csi_sidecars.playground.driver.options import DriverOptions
from csi_sidecars.playground.driver.requestlog import RequestLog
from csi_sidecars.playground.driver.services import SERVICES, CsiHandlers
from csi_sidecars.playground.driver.state import DriverState
from csi_sidecars.playground.driver.store import StateStore
from csi_sidecars.runtime import logging as rlog

log = rlog.get_logger("playground-driver")

# Unix socket paths longer than this do not fit in sockaddr_un on Linux (108 with the NUL).
MAX_SOCKET_PATH = 100


@dataclass
class CallRecord:
    """One call the driver received: method name, request message, and how it ended."""

    method: str
    request: Any
    code: grpc.StatusCode | None = None
    started: float = 0.0
    finished: float | None = None


def _apply_patch(patch: Patch, request: Any, response: Any) -> Any:
    if callable(patch):
        replaced = patch(request, response)
        return response if replaced is None else replaced
    json_format.ParseDict(dict(patch), response)
    return response


#: Request fields a call-log line carries (never secrets, never whole requests).
CALL_LOG_FIELDS = ("volume_id", "staging_target_path", "target_path", "name", "node_id")


def call_log_line(record: CallRecord) -> str:
    """One JSON line of ``--call-log`` for a finished call."""
    line: dict[str, Any] = {
        "time": time.time(),
        "method": record.method,
        "code": record.code.name if record.code is not None else None,
    }
    for name in CALL_LOG_FIELDS:
        value = getattr(record.request, name, None)
        if isinstance(value, str) and value:
            line[name] = value
    return json.dumps(line, sort_keys=True)


def read_call_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The calls a driver wrote with ``--call-log`` (empty when there is no log yet)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _remove_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass


class Driver:
    """One playground CSI driver: state, faults, call log and (once started) a gRPC server."""

    def __init__(
        self,
        options: DriverOptions,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.options = options
        self.clock = clock
        self.faults = faults if faults is not None else Faults(options.faults_file)
        self.calls: list[CallRecord] = []
        self.request_log = RequestLog(options.request_log) if options.request_log else None
        self.state = self._load_state()
        self._server: grpc.aio.Server | None = None

    def _load_state(self) -> DriverState:
        statedir = self.options.statedir
        store = StateStore(statedir) if statedir else None
        return DriverState(self.options, store, self.clock)

    @property
    def socket_path(self) -> str:
        """The unix socket the driver listens on."""
        return self.options.socket_path()

    @property
    def endpoint(self) -> str:
        """The ``unix://`` endpoint of the driver."""
        return f"unix://{self.socket_path}"

    # -- serving ---------------------------------------------------------------------------------

    def _services(self) -> list[str]:
        out = ["Identity"]
        if self.options.controller_service:
            out.append("Controller")
            if self.options.group_controller_service:
                out.append("GroupController")
        if self.options.node_service:
            out.append("Node")
        return [s for s in out if s in SERVICES]

    def _generic_handlers(self, handlers: CsiHandlers) -> list[grpc.GenericRpcHandler]:
        out = []
        for service in self._services():
            desc = csi_pb2.DESCRIPTOR.services_by_name[service]
            impls = handlers.implemented(service)
            table = {}
            for method in desc.methods:
                req_cls = getattr(csi_pb2, method.input_type.name)
                resp_cls = getattr(csi_pb2, method.output_type.name)
                table[method.name] = grpc.unary_unary_rpc_method_handler(
                    self._dispatcher(method.name, impls.get(method.name)),
                    request_deserializer=req_cls.FromString,
                    response_serializer=resp_cls.SerializeToString,
                )
            out.append(grpc.method_handlers_generic_handler(f"csi.v1.{service}", table))
        return out

    def _dispatcher(self, method: str, impl: Callable[[Any], Any] | None) -> Any:
        async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await self._handle(method, impl, request, context)

        return handle

    async def _handle(
        self,
        method: str,
        impl: Callable[[Any], Any] | None,
        request: Any,
        context: grpc.aio.ServicerContext,
    ) -> Any:
        record = CallRecord(method, request, started=time.monotonic())
        self.calls.append(record)
        logged = self.request_log.started(method, request) if self.request_log else ""
        if rlog.v(5) or (rlog.v(3) and method != "Probe"):
            log.info("GRPC call", method=method, request=strip_secrets(request))
        self.faults.refresh()
        decision = self.faults.decide(
            method,
            lambda: json_format.MessageToDict(request, preserving_proto_field_name=True),
        )
        response: Any = None
        try:
            if decision.delay > 0:
                await asyncio.sleep(decision.delay)
            rule = decision.error_before()
            if rule is not None and rule.code is not None:
                raise CsiError(rule.code, rule.message)
            if impl is None:
                raise CsiError(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented")
            response = impl(request)
            for patch in decision.patches:
                response = _apply_patch(patch, request, response)
            rule = decision.error_after()
            if rule is not None and rule.code is not None:
                raise CsiError(rule.code, rule.message)
        except CsiError as err:
            # An error after acting still names what was made: a lost reply, logged as such.
            self._finish(record, err.code, logged, response)
            if rlog.v(3):
                log.info("GRPC error", method=method, code=err.code.name, error=err.message)
            await context.abort(err.code, err.message)
        except asyncio.CancelledError:
            self._finish(record, grpc.StatusCode.CANCELLED, logged)
            raise
        except Exception as err:
            self._finish(record, grpc.StatusCode.INTERNAL, logged)
            log.error("Driver error", method=method, error=repr(err))
            await context.abort(grpc.StatusCode.INTERNAL, f"{method}: {err}")
        self._finish(record, grpc.StatusCode.OK, logged, response)
        if rlog.v(5):
            log.info("GRPC response", method=method, response=strip_secrets(response))
        return response

    def _finish(
        self, record: CallRecord, code: grpc.StatusCode, logged: str, response: Any = None
    ) -> None:
        """Close the call's record and write it to the request log and the call log."""
        record.code = code
        record.finished = time.monotonic()
        if self.request_log is not None:
            self.request_log.finished(logged, code.name, response)
        if self.options.call_log and record.method != "Probe":
            try:
                with open(self.options.call_log, "a", encoding="utf-8") as f:
                    f.write(call_log_line(record) + "\n")
            except OSError as err:
                log.warning("Cannot write the call log", path=self.options.call_log, error=str(err))

    async def start(self) -> None:
        """Listen on the unix socket (a stale socket file is removed first).

        Raises:
            RuntimeError: when the socket cannot be bound.
        """
        if self._server is not None:
            return
        path = self.socket_path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _remove_socket(path)
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(self._generic_handlers(CsiHandlers(self.state)))
        try:
            server.add_insecure_port(f"unix://{path}")
        except RuntimeError as err:
            raise RuntimeError(f"cannot listen on unix://{path}: {err}") from err
        await server.start()
        self._server = server
        log.info(
            "Listening for connections",
            address=path,
            driver=self.options.driver_name,
            node_id=self.options.node_id,
            services=self._services(),
        )

    async def stop(self, grace: float | None = 1.0) -> None:
        """Stop serving (in-flight calls get ``grace`` seconds) and remove the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        await server.stop(grace)
        _remove_socket(self.socket_path)

    async def restart(self) -> None:
        """Stop, reload the state from the state directory (as a new process would), start."""
        await self.stop(0)
        self.state = self._load_state()
        await self.start()

    async def wait_for_termination(self) -> None:
        """Wait until the server stops."""
        if self._server is not None:
            await self._server.wait_for_termination()

    # -- call log --------------------------------------------------------------------------------

    def calls_of(self, method: str) -> list[Any]:
        """The requests of every call of ``method`` so far, oldest first."""
        return [c.request for c in self.calls if c.method == method]

    def methods(self) -> list[str]:
        """The method names of every call so far, oldest first."""
        return [c.method for c in self.calls]

    def clear_calls(self) -> None:
        """Forget the calls recorded so far."""
        self.calls.clear()

    async def wait_for_calls(
        self, method: str, count: int = 1, timeout: float = 10.0, finished: bool = True
    ) -> list[Any]:
        """Wait until ``method`` was called ``count`` times (and those calls finished).

        Raises:
            TimeoutError: when that does not happen within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            done = [
                c.request
                for c in self.calls
                if c.method == method and (not finished or c.finished is not None)
            ]
            if len(done) >= count:
                return done
            if time.monotonic() > deadline:
                raise TimeoutError(f"{method} called {len(done)} times, expected {count}")
            await asyncio.sleep(0.01)


def _socket_dir(base: Path) -> tuple[Path, bool]:
    """Where the socket goes, and whether that is a new temporary directory to remove."""
    if len(str(base / "csi.sock")) <= MAX_SOCKET_PATH:
        return base, False
    return Path(tempfile.mkdtemp(prefix="csi-drv-")), True


@asynccontextmanager
async def run_driver(
    tmp_path: str | os.PathLike[str],
    *,
    faults: Faults | None = None,
    clock: Callable[[], float] = time.time,
    **options: Any,
) -> AsyncIterator[Driver]:
    """Run a playground driver in this event loop for the duration of a ``with`` block.

    Args:
        tmp_path: a directory of the test; the socket (``csi.sock``) and the state directory
            (``driver-state``) go there unless ``endpoint`` / ``statedir`` say otherwise.
        faults: rules to start with (default: none, or ``faults_file`` when given).
        clock: the time source of the state (creation times, snapshot readiness).
        **options: any :class:`DriverOptions` field; ``node_id`` defaults to ``node-1``.

    Yields:
        The started :class:`Driver`; it is stopped and its socket removed afterwards.
    """
    base = Path(tmp_path)
    sock_dir, temporary = _socket_dir(base)
    opts: dict[str, Any] = {
        "node_id": "node-1",
        "statedir": str(base / "driver-state"),
        "endpoint": f"unix://{sock_dir / 'csi.sock'}",
    }
    opts.update(options)
    try:
        driver = Driver(DriverOptions(**opts), faults=faults, clock=clock)
        await driver.start()
        try:
            yield driver
        finally:
            await driver.stop(0)
    finally:
        if temporary:
            shutil.rmtree(sock_dir, ignore_errors=True)
