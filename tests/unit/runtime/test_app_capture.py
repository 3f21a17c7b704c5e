"""``app.capture``: a role's command hands back its main instead of starting a loop."""

from __future__ import annotations

import asyncio

import pytest

from csi_sidecars.runtime import app


async def _main(stop: asyncio.Event) -> int:
    return 7


def test_run_raises_captured_with_the_main_inside_capture_only() -> None:
    with pytest.raises(app.Captured) as got, app.capture():
        app.start("role", 0, "text", False)  # no logging set-up, no signal handlers
        app.run(_main)
    assert got.value.main is _main
    assert asyncio.run(got.value.main(asyncio.Event())) == 7
    with pytest.raises(SystemExit) as exited:
        app.run(_main)  # outside capture: runs it and exits with its code
    assert exited.value.code == 7


def test_version_still_exits_inside_capture(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited, app.capture():
        app.start("role", 0, "text", True)
    assert exited.value.code == 0
    assert "csi-sidecars role" in capsys.readouterr().out
