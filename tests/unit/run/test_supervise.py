"""Crash-only supervision: the first role to end takes the bundle down, named."""

from __future__ import annotations

import asyncio

import pytest

from csi_sidecars.run.supervise import supervise
from csi_sidecars.runtime.logging import capture_logs


def until_stopped(code: int = 0, record: list[str] | None = None, name: str = ""):  # type: ignore[no-untyped-def]
    async def main(stop: asyncio.Event) -> int:
        await stop.wait()
        if record is not None:
            record.append(name)
        return code

    return main


def ends(code: int):  # type: ignore[no-untyped-def]
    async def main(stop: asyncio.Event) -> int:
        await asyncio.sleep(0)
        return code

    return main


async def test_a_failing_role_stops_the_others_and_names_itself() -> None:
    stopped: list[str] = []
    with capture_logs() as logs:
        code = await supervise(
            {"a": until_stopped(record=stopped, name="a"), "b": ends(3)}, asyncio.Event()
        )
    assert code == 3
    assert stopped == ["a"]
    assert logs[0]["event"] == "Role b exited with code 3, stopping the other roles"
    assert logs[0]["role"] == "b"


async def test_a_role_ending_with_0_on_its_own_is_a_failure() -> None:
    with capture_logs() as logs:
        code = await supervise({"a": until_stopped(), "b": ends(0)}, asyncio.Event())
    assert code == 1
    assert logs[0]["role"] == "b"


async def test_an_exception_is_exit_1_with_the_traceback() -> None:
    async def broken(stop: asyncio.Event) -> int:
        raise RuntimeError("bug")

    with capture_logs() as logs:
        code = await supervise({"a": until_stopped(), "broken": broken}, asyncio.Event())
    assert code == 1
    assert logs[0]["event"] == "Role broken failed"
    assert isinstance(logs[0]["exc_info"], RuntimeError)


async def test_stop_ends_every_role_with_0() -> None:
    stop = asyncio.Event()
    stopped: list[str] = []
    task = asyncio.ensure_future(
        supervise({n: until_stopped(record=stopped, name=n) for n in ("a", "b")}, stop)
    )
    await asyncio.sleep(0)
    stop.set()
    assert await task == 0
    assert sorted(stopped) == ["a", "b"]


async def test_a_role_failing_while_stopping_is_named() -> None:
    stop = asyncio.Event()
    task = asyncio.ensure_future(supervise({"a": until_stopped(), "b": until_stopped(1)}, stop))
    await asyncio.sleep(0)
    stop.set()
    with capture_logs() as logs:
        assert await task == 1
    assert logs == [{"event": "Role b exited with code 1", "log_level": "error", "role": "b"}]


@pytest.mark.timeout(10)
async def test_a_role_that_ignores_stop_is_cancelled_after_the_grace() -> None:
    async def stubborn(stop: asyncio.Event) -> int:
        await asyncio.Event().wait()
        return 0

    with capture_logs() as logs:
        code = await supervise({"stubborn": stubborn, "b": ends(2)}, asyncio.Event(), grace=0.1)
    assert code == 2
    assert any(e["event"] == "Role stubborn did not stop in 0.1s" for e in logs)
