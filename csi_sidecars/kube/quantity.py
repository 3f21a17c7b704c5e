"""Kubernetes resource quantities (``10Gi``, ``500M``, ``1.5e9``) to bytes and back.

PVC sizes arrive as quantity strings; CreateVolume wants an int64 byte count, rounded up the way
Go's ``Quantity.Value()`` rounds. The PV's ``spec.capacity.storage`` is written the way Go formats a
``BinarySI`` quantity: an exact power-of-1024 suffix when the value allows one (``1Gi``), plain
digits otherwise (``1000000000``).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(
    r"^(?P<sign>[+-]?)(?P<num>\d+(?:\.\d*)?|\.\d+)"
    r"(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?\d+)|(?P<dec>[numkMGTPE]?))$"
)
INT64_MAX = 2**63 - 1


class QuantityError(ValueError):
    """The string is not a Kubernetes quantity."""


def parse_quantity(text: str) -> Fraction:
    """Parse a quantity string into an exact number.

    Raises:
        QuantityError: for anything Kubernetes would not accept as a quantity.
    """
    match = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise QuantityError(f"quantities must match the regular expression, got {text!r}")
    value = Fraction(str(match.group("num")))
    if match.group("sign") == "-":
        value = -value
    if match.group("bin"):
        return value * Fraction(1024) ** _BINARY[match.group("bin")]
    if match.group("exp"):
        return value * Fraction(10) ** int(match.group("exp")[1:])
    return value * Fraction(10) ** _DECIMAL[match.group("dec") or ""]


def quantity_to_bytes(text: str) -> int:
    """A quantity as an integer, rounded up (Go ``Quantity.Value()``), capped at int64.

    Raises:
        QuantityError: for a malformed quantity.
    """
    value = math.ceil(parse_quantity(text))
    return max(min(value, INT64_MAX), -INT64_MAX - 1)


def format_binary_si(value: int) -> str:
    """Format an integer byte count as Go formats a ``BinarySI`` quantity.

    Values with magnitude below 1024 print as plain digits; larger ones use the largest
    power-of-1024 suffix that divides them exactly, or plain digits when none does.
    """
    if -1024 < value < 1024:
        return str(value)
    number = value
    exponent = 0
    while exponent < 6 and number % 1024 == 0 and number != 0:
        number //= 1024
        exponent += 1
    suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][exponent]
    return f"{number}{suffix}"
