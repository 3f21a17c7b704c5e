"""``--feature-gates``: the one parser every role uses.

Go's component-base takes ``Key=true,Other=false`` (the flag may repeat; later values win),
knows each gate's default and maturity, and expands ``AllAlpha`` / ``AllBeta``. A role declares
its gates as a :class:`GateSpec` table; :func:`parse_gates` turns the flag values into a
:class:`FeatureGates`, which answers ``gates[name]`` and remembers which gates were set on the
command line (some roles auto-detect a gate only when the user did not set it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.flags import parse_go_bool

Stage = Literal["alpha", "beta", "ga", "deprecated"]

ALL_ALPHA = "AllAlpha"
ALL_BETA = "AllBeta"


@dataclass(frozen=True, slots=True)
class Gate:
    """One feature gate: its default and maturity."""

    default: bool
    stage: Stage = "ga"


GateSpec = Mapping[str, Gate]


@dataclass(frozen=True, slots=True)
class FeatureGates(Mapping[str, bool]):
    """Every known gate's value, and which ones the command line set explicitly."""

    resolved: Mapping[str, bool]
    explicit: frozenset[str] = field(default_factory=frozenset)
    #: unknown gate names, kept only when parsed with ``defer_unknown`` (see :meth:`check_known`)
    unknown: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> bool:
        return self.resolved[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.resolved)

    def __len__(self) -> int:
        return len(self.resolved)

    def set_explicitly(self, name: str) -> bool:
        """Whether ``--feature-gates`` named ``name``."""
        return name in self.explicit

    def check_known(self) -> None:
        """Refuse unknown gates kept by ``defer_unknown`` (Go checks them after parsing).

        Raises:
            ConfigError: ``unrecognized feature gate: X`` for the first unknown gate.
        """
        if self.unknown:
            raise ConfigError(f"unrecognized feature gate: {self.unknown[0]}")


def split_gates(values: Iterable[str]) -> dict[str, bool]:
    """Parse the raw ``--feature-gates`` values into name -> bool (repeats merge, last wins).

    Raises:
        ConfigError: a pair without ``=`` or with a value that is not a Go boolean.
    """
    out: dict[str, bool] = {}
    for value in values:
        for item in value.split(","):
            pair = item.strip()
            if not pair:
                continue
            key, eq, raw = pair.partition("=")
            key = key.strip()
            if not eq:
                raise ConfigError(f"missing bool value for {key}")
            try:
                out[key] = parse_go_bool(raw.strip())
            except ValueError:
                raise ConfigError(f"invalid value of {key}={raw.strip()}") from None
    return out


def parse_gates(
    values: Iterable[str],
    spec: GateSpec,
    *,
    unsupported: Mapping[str, bool] | None = None,
    role: str = "",
    defer_unknown: bool = False,
) -> FeatureGates:
    """Resolve ``--feature-gates`` against a role's gate table.

    A gate's value is its explicit setting, else ``AllAlpha`` / ``AllBeta`` for gates of that
    stage, else its default.

    Args:
        values: the flag's raw values.
        spec: the role's gates.
        unsupported: gate -> value that needs a feature csi-sidecars does not have (refused).
        role: the role name for the "not supported yet" message.
        defer_unknown: keep unknown gates in :attr:`FeatureGates.unknown` instead of raising,
            for roles whose Go sidecar refuses them after parsing (exit 1, not a usage error
            with exit 2): they call :meth:`FeatureGates.check_known` with their other checks.

    Raises:
        ConfigError: malformed pair, unknown gate (``unrecognized feature gate: X``) or an
            unsupported value.
    """
    given = split_gates(values)
    unknown: list[str] = []
    for key, value in given.items():
        if key not in spec and key not in (ALL_ALPHA, ALL_BETA):
            if not defer_unknown:
                raise ConfigError(f"unrecognized feature gate: {key}")
            unknown.append(key)
        if unsupported and key in unsupported and unsupported[key] == value:
            raise ConfigError(
                f"feature gate {key}={str(value).lower()} is not supported yet by "
                f"csi-sidecars {role}".rstrip()
            )
    out: dict[str, bool] = {}
    for key, gate in spec.items():
        if key in given:
            out[key] = given[key]
        elif gate.stage == "alpha" and ALL_ALPHA in given:
            out[key] = given[ALL_ALPHA]
        elif gate.stage == "beta" and ALL_BETA in given:
            out[key] = given[ALL_BETA]
        else:
            out[key] = gate.default
    return FeatureGates(out, frozenset(k for k in given if k in spec), tuple(unknown))


def describe(spec: GateSpec) -> str:
    """A help text fragment listing the gates: ``Name (stage, default false)``."""
    return ", ".join(
        f"{name} ({gate.stage}, default {str(gate.default).lower()})" for name, gate in spec.items()
    )
