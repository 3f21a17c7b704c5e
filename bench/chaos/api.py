"""A retrying API client for the workload: the API server restarts while the workload runs.

Connection errors, 5xx and 429 are retried with back-off until a deadline; a create that hits
409 after a lost reply reads the object back; a delete that hits 404 counts as done. What the
workload measures (when a delete was acknowledged) comes from here, so it is exact.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from csi_sidecars.playground.apiclient import ApiError, RawApi

RETRIED_STATUS = frozenset({429, 500, 502, 503, 504})
TRANSIENT = (aiohttp.ClientError, TimeoutError, ConnectionError, OSError)


class Unavailable(RuntimeError):
    """The API server did not answer within the deadline."""


class Api:
    """JSON calls through :class:`RawApi`, retried while the API server is away.

    Args:
        raw: the underlying client (admin identity).
        deadline: how long one call keeps retrying, in seconds.
    """

    def __init__(self, raw: RawApi, deadline: float = 60.0) -> None:
        self.raw = raw
        self.deadline = deadline
        self.retries = 0

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        *,
        content_type: str = "application/json",
        timeout: float = 15.0,
    ) -> tuple[int, Any]:
        """One request, retried on transient failures; returns ``(status, body)``.

        Raises:
            Unavailable: still failing at the deadline.
        """
        end = time.monotonic() + self.deadline
        delay = 0.2
        last: object = None
        while True:
            try:
                status, decoded = await self.raw.call(
                    method, path, body, params, content_type=content_type, timeout=timeout
                )
                if status not in RETRIED_STATUS:
                    return status, decoded
                last = f"HTTP {status}"
            except TRANSIENT as exc:
                last = exc
            self.retries += 1
            if time.monotonic() + delay > end:
                raise Unavailable(f"{method} {path}: no answer in {self.deadline:g}s ({last!r})")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def get(self, path: str, **params: str) -> Any:
        """GET; None for 404.

        Raises:
            ApiError: another error status.
        """
        status, body = await self.call("GET", path, params=params or None)
        if status == 404:
            return None
        if status >= 300:
            raise ApiError("GET", path, status, body)
        return body

    async def items(self, path: str, **params: str) -> list[dict[str, Any]]:
        """Every item of a collection (pages of 500)."""
        out: list[dict[str, Any]] = []
        token = ""
        while True:
            page = await self.get(
                path, limit="500", **params, **({"continue": token} if token else {})
            )
            if page is None:
                return out
            out.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return out

    async def create(self, collection: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """POST; on 409 (a retry after a lost reply, or a name in use) the existing object.

        Raises:
            ApiError: another error status.
        """
        status, body = await self.call("POST", collection, obj)
        if status == 409:
            existing = await self.get(f"{collection}/{obj['metadata']['name']}")
            if existing is not None:
                return dict(existing)
        if status >= 300:
            raise ApiError("POST", collection, status, body)
        return dict(body)

    async def patch(self, path: str, patch: Any, kind: str = "merge") -> dict[str, Any] | None:
        """PATCH; None when the object is gone.

        Raises:
            ApiError: another error status.
        """
        types = {"merge": "application/merge-patch+json", "json": "application/json-patch+json"}
        status, body = await self.call("PATCH", path, patch, content_type=types[kind])
        if status == 404:
            return None
        if status >= 300:
            raise ApiError("PATCH", path, status, body)
        return dict(body)

    async def delete(self, path: str, *, force: bool = False) -> float:
        """DELETE (``force``: grace period 0); returns the wall time it was acknowledged.

        A 404 counts as deleted: the object was gone already, or a lost reply's retry.

        Raises:
            ApiError: another error status.
        """
        params = {"gracePeriodSeconds": "0"} if force else None
        status, body = await self.call("DELETE", path, params=params)
        acked = time.time()
        if status >= 300 and status != 404:
            raise ApiError("DELETE", path, status, body)
        return acked
