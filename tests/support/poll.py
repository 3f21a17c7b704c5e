"""The one poll-with-deadline helper: tests wait for a condition, never for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def poll(
    check: Callable[[], Any | Awaitable[Any]],
    timeout: float = 10.0,
    what: str = "",
    *,
    interval: float = 0.02,
) -> Any:
    """Call ``check`` (sync or async) until it returns something other than None or False.

    Returns:
        That value.

    Raises:
        AssertionError: after ``timeout`` seconds, naming ``what``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result is not None and result is not False:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(interval)
