"""Fixtures: a fake CSI driver on a short unix socket path, and captured logs."""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator

import pytest

from csi_sidecars.runtime import logging as rlog
from tests.support.fake_driver import FakeDriver


@pytest.fixture
def socket_path() -> Iterator[str]:
    # tmp_path can exceed the 107-byte sun_path limit; use a short private temp dir instead.
    d = tempfile.mkdtemp(prefix="csi-")
    try:
        yield f"{d}/csi.sock"
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
async def driver(socket_path: str) -> AsyncIterator[FakeDriver]:
    drv = FakeDriver(socket_path)
    await drv.start()
    try:
        yield drv
    finally:
        await drv.stop()


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Configure -v=5 text logging into a buffer for the test, then restore the default."""
    buf = io.StringIO()
    rlog.configure(5, "text", stream=buf)
    try:
        yield buf
    finally:
        rlog.configure()
