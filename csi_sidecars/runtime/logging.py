"""Logging for every role: klog-style verbosity and lines, as text or JSON, with no dependencies.

The Go sidecars log through klog: ``-v=N`` turns on messages of verbosity N and below, text lines
look like ``I1126 14:43:33.123456 12 connection.go:120] "Still connecting" address="..."``, and
``--logging-format=json`` writes one JSON object per line with ``ts``, ``caller``, ``msg`` and
``v``. We keep both shapes so log pipelines built for the Go images keep working.

Use :func:`get_logger` for a named logger and :func:`v` to guard verbose messages::

    log = get_logger("connection")
    if v(5):
        log.info("GRPC call", method=method)

Loggers take structlog's call style (``log.error("msg", key=value)``, ``log.exception(...)``),
but the module renders lines itself: structlog's import costs a node role about 2.5 MiB and
0.02 s, for two renderers this module already owns. :func:`capture_logs` records events for tests.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, TextIO

_LEVEL_LETTER = {"debug": "I", "info": "I", "warning": "W", "error": "E", "critical": "F"}

Renderer = Callable[[str, str, MutableMapping[str, Any]], str]


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


def _format_exc(exc: Any) -> str:
    """The traceback text for an ``exc_info`` value (True, an exception or a 3-tuple)."""
    if exc is True:
        exc = sys.exc_info()
    elif isinstance(exc, BaseException):
        exc = (type(exc), exc, exc.__traceback__)
    if not isinstance(exc, tuple) or exc[0] is None:
        return ""
    return "".join(traceback.format_exception(*exc)).rstrip("\n")


def _text_renderer(name: str, method: str, event: MutableMapping[str, Any]) -> str:
    now = event.pop("_time", time.time())
    stamp = _dt.datetime.fromtimestamp(now, tz=_dt.UTC).strftime("%m%d %H:%M:%S.%f")
    letter = _LEVEL_LETTER.get(method, "I")
    event.pop("_v", None)
    msg = event.pop("event", "")
    exc = event.pop("exc_info", None)
    parts = [f"{letter}{stamp} {os.getpid():7d} {name}] {_quote(str(msg))}"]
    parts.extend(f"{key}={_quote(val)}" for key, val in event.items())
    line = " ".join(parts)
    if exc:
        text = _format_exc(exc)
        if text:
            line += "\n" + text
    return line


def _json_renderer(name: str, method: str, event: MutableMapping[str, Any]) -> str:
    out: dict[str, Any] = {"ts": round(event.pop("_time", time.time()) * 1000, 3)}
    out["caller"] = name
    out["msg"] = str(event.pop("event", ""))
    out["v"] = event.pop("_v", 0)
    if method in ("error", "critical"):
        out["err"] = event.pop("error", None) or out["msg"]
    exc = event.pop("exc_info", None)
    if exc:
        text = _format_exc(exc)
        if text:
            out["exception"] = text
    for key, val in event.items():
        out[key] = val
    return json.dumps(out, ensure_ascii=False, default=str)


_state: dict[str, Any] = {
    "verbosity": 0,
    "format": "text",
    "renderer": _text_renderer,
    "stream": None,
    "capture": None,
}


class Logger:
    """A named logger; lines are rendered with the process-wide configuration of the moment."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        """Log as ``name`` (the ``caller`` of each line)."""
        self.name = name

    def _emit(self, method: str, event: str, fields: dict[str, Any]) -> None:
        captured: list[dict[str, Any]] | None = _state["capture"]
        if captured is not None:
            captured.append({"event": event, "log_level": method, **fields})
            return
        fields["event"] = event
        fields["_time"] = time.time()
        renderer: Renderer = _state["renderer"]
        line = renderer(self.name, method, fields)
        stream: TextIO = _state["stream"] or sys.stderr
        with contextlib.suppress(ValueError, OSError):  # a closed stream must not crash a role
            stream.write(line + "\n")
            stream.flush()

    def debug(self, event: str, **fields: Any) -> None:
        """Log at debug level (rendered like info, as klog has no debug)."""
        self._emit("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        """Log an info line."""
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        """Log a warning line."""
        self._emit("warning", event, fields)

    warn = warning

    def error(self, event: str, **fields: Any) -> None:
        """Log an error line."""
        self._emit("error", event, fields)

    def critical(self, event: str, **fields: Any) -> None:
        """Log a fatal-level line (klog's ``F``); the caller decides whether to exit."""
        self._emit("critical", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """Log an error line with the traceback of the exception being handled."""
        fields.setdefault("exc_info", True)
        self._emit("error", event, fields)


def configure(level: int = 0, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Set verbosity and format for the whole process.

    Args:
        level: klog verbosity (``-v``).
        fmt: ``text`` or ``json``.
        stream: where lines go; standard error (as it is at each line) by default.

    Raises:
        ValueError: for an unknown format.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f'unsupported logging format "{fmt}", use "text" or "json"')
    _state["verbosity"] = level
    _state["format"] = fmt
    _state["renderer"] = _json_renderer if fmt == "json" else _text_renderer
    _state["stream"] = stream


def get_logger(name: str) -> Logger:
    """A logger that names ``name`` as its caller."""
    return Logger(name)


@contextlib.contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """Record log events instead of writing them, for tests.

    Yields:
        A list that receives one dict per event: ``event``, ``log_level`` and the fields.
    """
    previous = _state["capture"]
    captured: list[dict[str, Any]] = []
    _state["capture"] = captured
    try:
        yield captured
    finally:
        _state["capture"] = previous
