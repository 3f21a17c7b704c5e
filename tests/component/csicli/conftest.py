"""Fixtures: drivers served from a background event loop, and the CLI run through CliRunner.

The CLI runs its own ``asyncio.run`` in the test's thread, so the drivers it talks to live in an
event loop on another thread: the playground driver (``run_driver``) or the scriptable fake.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result

from csi_sidecars.cli import main
from csi_sidecars.playground.driver import Driver, run_driver
from tests.support.fake_csi import FakeCSI

T = TypeVar("T")


class LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    try:
        yield lt
    finally:
        lt.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short private directory: unix socket paths must fit in sockaddr_un."""
    d = Path(tempfile.mkdtemp(prefix="csicli-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@dataclass
class Cli:
    endpoint: str

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        return CliRunner().invoke(
            main, ["csi", "-e", self.endpoint, *args], input=input, env=env, catch_exceptions=False
        )


class Playground:
    """The playground driver with options, served from ``loop_thread``."""

    def __init__(self, lt: LoopThread, base: Path) -> None:
        self.lt = lt
        self.base = base
        self._cm: Any = None
        self.driver: Driver | None = None

    def start(self, **options: Any) -> Driver:
        self._cm = run_driver(self.base, **options)
        self.driver = self.lt.run(self._cm.__aenter__())
        return self.driver

    def stop(self) -> None:
        if self._cm is not None:
            self.lt.run(self._cm.__aexit__(None, None, None))
            self._cm = None


@pytest.fixture
def playground(loop_thread: LoopThread, short_dir: Path) -> Iterator[Playground]:
    pg = Playground(loop_thread, short_dir)
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def fake(loop_thread: LoopThread, short_dir: Path) -> Iterator[FakeCSI]:
    drv = FakeCSI(str(short_dir / "fake.sock"))
    loop_thread.run(drv.start())
    try:
        yield drv
    finally:
        loop_thread.run(drv.stop())
