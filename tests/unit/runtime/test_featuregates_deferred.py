"""``defer_unknown``: unknown gates are refused by ``check_known`` (exit 1), not while parsing."""

from __future__ import annotations

import pytest

from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.featuregates import Gate, parse_gates

SPEC = {"Known": Gate(False, "alpha")}


def test_unknown_gates_are_kept_and_refused_later() -> None:
    gates = parse_gates(["Nope=true,Known=true", "Other=false"], SPEC, defer_unknown=True)
    assert dict(gates) == {"Known": True}
    assert gates.unknown == ("Nope", "Other")
    with pytest.raises(ConfigError, match=r"^unrecognized feature gate: Nope$"):
        gates.check_known()


def test_known_gates_pass_the_check_and_strict_parsing_is_unchanged() -> None:
    parse_gates(["Known=true"], SPEC, defer_unknown=True).check_known()
    parse_gates([], SPEC).check_known()
    with pytest.raises(ConfigError, match="unrecognized feature gate: Nope"):
        parse_gates(["Nope=true"], SPEC)


def test_malformed_values_are_refused_while_parsing_even_when_deferring() -> None:
    with pytest.raises(ConfigError, match="missing bool value for Known"):
        parse_gates(["Known"], SPEC, defer_unknown=True)
