"""The event loop the roles run on: uvloop when installed, asyncio's when asked."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

import pytest

from csi_sidecars.runtime import app


async def _loop_module() -> Any:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_when_installed_asyncio_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.delenv("CSI_SIDECARS_LOOP", raising=False)
    assert app.loop_runner() is uvloop.run
    assert app.loop_runner()(_loop_module()) == "uvloop"
    monkeypatch.setenv("CSI_SIDECARS_LOOP", "asyncio")
    assert app.loop_runner() is asyncio.run


def test_asyncio_when_uvloop_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("no uvloop here")
        return real_import(name, *args, **kwargs)

    monkeypatch.delenv("CSI_SIDECARS_LOOP", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert app.loop_runner() is asyncio.run
