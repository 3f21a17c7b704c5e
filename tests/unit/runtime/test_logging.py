"""Log formats and verbosity."""

import io
import json

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
