"""Response capping of the -v=5 gRPC log."""

from __future__ import annotations

from csi_sidecars.csi.interceptors import cap_log


def test_cap_log_appends_go_notice() -> None:
    assert cap_log("abcdef", 3) == "abc [response body too large, log capped to 3 chars]"


def test_cap_log_unlimited_or_short() -> None:
    assert cap_log("abcdef", -1) == "abcdef"
    assert cap_log("abcdef", 0) == "abcdef"
    assert cap_log("abcdef", 6) == "abcdef"
