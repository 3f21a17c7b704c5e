"""Quantities."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.quantity import QuantityError, format_binary_si, quantity_to_bytes


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1Gi", 1 << 30), ("10Mi", 10 << 20), ("1.5Gi", 3 << 29), ("100m", 1), ("1e9", 10**9),
        ("1E3", 1000), ("500M", 5 * 10**8), ("0", 0), (".5Ki", 512), ("12k", 12000),
        ("1Ei", 1 << 60), ("16Ei", 2**63 - 1), ("+2", 2), ("1n", 1),
    ],
)  # fmt: skip
def test_parse(text: str, value: int) -> None:
    assert quantity_to_bytes(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "1GB", "1 Gi", "1.2.3", "abc", "1KI"])
def test_parse_errors(text: str) -> None:
    with pytest.raises(QuantityError):
        quantity_to_bytes(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"), (100, "100"), (1023, "1023"), (1024, "1Ki"), (1536, "1536"), (2048, "2Ki"),
        (1 << 30, "1Gi"), (10**9, "1000000000"), (5 << 30, "5Gi"), (3 << 29, "1536Mi"),
        (1 << 60, "1Ei"),
    ],
)  # fmt: skip
def test_format_binary_si(value: int, text: str) -> None:
    assert format_binary_si(value) == text
