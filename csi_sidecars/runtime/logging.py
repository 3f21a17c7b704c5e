"""Logging for every role: structlog with klog-style verbosity, as text or JSON.

The Go sidecars log through klog: ``-v=N`` turns on messages of verbosity N and below, text lines
look like ``I1126 14:43:33.123456 12 connection.go:120] "Still connecting" address="..."``, and
``--logging-format=json`` writes one JSON object per line with ``ts``, ``caller``, ``msg`` and
``v``. We keep both shapes so log pipelines built for the Go images keep working.

Use :func:`get_logger` for a named logger and :func:`v` to guard verbose messages::

    log = get_logger("connection")
    if v(5):
        log.info("GRPC call", method=method)
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sys
import time
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_state: dict[str, Any] = {"verbosity": 0, "format": "text"}

_LEVEL_LETTER = {"debug": "I", "info": "I", "warning": "W", "error": "E", "critical": "F"}


def v(level: int) -> bool:
    """Whether messages of klog verbosity ``level`` are enabled."""
    return int(_state["verbosity"]) >= level


def verbosity() -> int:
    """The current klog verbosity (``-v``)."""
    return int(_state["verbosity"])


def _quote(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return json.dumps(str(value), ensure_ascii=False)


def _text_renderer(_: Any, method: str, event: MutableMapping[str, Any]) -> str:
    now = event.pop("_time", time.time())
    stamp = _dt.datetime.fromtimestamp(now, tz=_dt.UTC).strftime("%m%d %H:%M:%S.%f")
    letter = _LEVEL_LETTER.get(method, "I")
    logger = event.pop("_name", "csi-sidecars")
    event.pop("_v", None)
    msg = event.pop("event", "")
    exc = event.pop("exc_info", None)
    parts = [f"{letter}{stamp} {os.getpid():7d} {logger}] {_quote(str(msg))}"]
    parts.extend(f"{key}={_quote(val)}" for key, val in event.items())
    line = " ".join(parts)
    if exc:
        line += "\n" + structlog.processors.format_exc_info(None, "", {"exc_info": exc}).get(
            "exception", ""
        )
    return line


def _json_renderer(_: Any, method: str, event: MutableMapping[str, Any]) -> str:
    out: dict[str, Any] = {"ts": round(event.pop("_time", time.time()) * 1000, 3)}
    out["caller"] = event.pop("_name", "csi-sidecars")
    out["msg"] = str(event.pop("event", ""))
    out["v"] = event.pop("_v", 0)
    if method in ("error", "critical"):
        out["err"] = event.pop("error", None) or out["msg"]
    exc = event.pop("exc_info", None)
    if exc:
        out["exception"] = structlog.processors.format_exc_info(None, "", {"exc_info": exc}).get(
            "exception", ""
        )
    for key, val in event.items():
        out[key] = val
    return json.dumps(out, ensure_ascii=False, default=str)


def _stamp(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["_time"] = time.time()
    return event


def configure(level: int = 0, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Set verbosity and format for the whole process.

    Args:
        level: klog verbosity (``-v``).
        fmt: ``text`` or ``json``.
        stream: where lines go; standard error by default.

    Raises:
        ValueError: for an unknown format.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f'unsupported logging format "{fmt}", use "text" or "json"')
    _state["verbosity"] = level
    _state["format"] = fmt
    renderer = _json_renderer if fmt == "json" else _text_renderer
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, _stamp, renderer],
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structlog logger that names ``name`` as its caller."""
    return structlog.get_logger(_name=name)


configure()
