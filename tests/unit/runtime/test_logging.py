"""Log formats and verbosity."""

import io
import json

import pytest

from csi_sidecars.runtime import logging as rlog


def test_text_and_json_follow_configure_even_for_early_loggers() -> None:
    log = rlog.get_logger("early")  # created before configure, like module-level loggers
    text = io.StringIO()
    rlog.configure(2, "text", stream=text)
    log.info("Still connecting", address="unix:///csi.sock")
    line = text.getvalue().strip()
    assert line.startswith("I")
    assert 'early] "Still connecting" address="unix:///csi.sock"' in line

    out = io.StringIO()
    rlog.configure(5, "json", stream=out)
    log.error("failed", error="boom", attempt=2)
    record = json.loads(out.getvalue())
    assert record["caller"] == "early"
    assert record["msg"] == "failed"
    assert record["err"] == "boom"
    assert record["attempt"] == 2
    assert rlog.v(5)
    assert not rlog.v(6)
    rlog.configure(0, "text")
    assert not rlog.v(1)


def test_unknown_format_is_rejected() -> None:
    try:
        rlog.configure(0, "xml")
    except ValueError as err:
        assert "xml" in str(err)
    else:
        raise AssertionError("expected ValueError")


def test_capture_logs_records_events_instead_of_writing() -> None:
    log = rlog.get_logger("cap")
    with rlog.capture_logs() as logs:
        log.warning("Retrying", attempt=3)
        log.error("failed", error="boom")
    assert logs == [
        {"event": "Retrying", "log_level": "warning", "attempt": 3},
        {"event": "failed", "log_level": "error", "error": "boom"},
    ]
    log.info("after")
    assert len(logs) == 2


def test_exception_lines_carry_the_traceback_in_both_formats() -> None:
    log = rlog.get_logger("exc")
    text = io.StringIO()
    rlog.configure(0, "text", stream=text)
    try:
        raise RuntimeError("kaput")
    except RuntimeError:
        log.exception("Handler failed", resource="pods")
    first, *rest = text.getvalue().splitlines()
    assert first.startswith("E") and 'exc] "Handler failed" resource="pods"' in first
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "RuntimeError: kaput"

    out = io.StringIO()
    rlog.configure(0, "json", stream=out)
    log.error("no traceback", exc_info=ValueError("x"))
    record = json.loads(out.getvalue())
    assert record["exception"].endswith("ValueError: x")
    rlog.configure(0, "text")


def test_default_stream_is_standard_error_at_each_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rlog.configure(0, "text")
    rlog.get_logger("late").warning("to stderr", n=1)
    err = capsys.readouterr().err
    assert err.startswith("W") and 'late] "to stderr" n=1' in err
