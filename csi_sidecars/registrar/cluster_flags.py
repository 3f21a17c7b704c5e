"""Parsing of the cluster-driver-registrar's CSIDriver flags into :class:`SpecOptions` (pure).

List-valued flags have small text formats: ``--volume-lifecycle-modes=Persistent,Ephemeral``,
``--token-request=AUDIENCE[,EXPIRATION]`` (repeatable) and ``--labels=k=v,k2=v2``.
:func:`spec_options` builds the options and validates them like the API server would, so a bad
flag fails at start-up with every problem in one message.
"""

from __future__ import annotations

from typing import Any

from csi_sidecars.kube.labels import parse_pairs
from csi_sidecars.registrar import cluster_spec as cs
from csi_sidecars.runtime.flags import parse_duration


class FlagError(ValueError):
    """A CSIDriver flag is malformed or invalid."""


def parse_lifecycle_modes(text: str | None) -> tuple[str, ...] | None:
    """``Persistent,Ephemeral`` -> a tuple; None (flag not given) stays None."""
    if text is None:
        return None
    return tuple(m.strip() for m in text.split(",") if m.strip())


def parse_token_request(text: str) -> cs.TokenRequest:
    """``AUDIENCE`` or ``AUDIENCE,EXPIRATION`` (a Go duration like ``1h``, or seconds).

    Raises:
        ValueError: for an expiration that is neither.
    """
    audience, sep, expiration = text.rpartition(",")
    if not sep:
        return cs.TokenRequest(text.strip())
    exp = expiration.strip()
    seconds = int(exp) if exp.isdigit() else parse_duration(exp)
    if seconds != int(seconds):
        raise ValueError(f"token expiration {exp!r} is not a whole number of seconds")
    return cs.TokenRequest(audience.strip(), int(seconds))


def parse_labels(text: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` -> a dict.

    Raises:
        ValueError: for an entry without ``=`` or with an empty key.
    """
    return parse_pairs(text, "=")


def spec_options(flags: dict[str, Any]) -> cs.SpecOptions:
    """Build :class:`SpecOptions` from the command's CSIDriver flags.

    Raises:
        FlagError: for a malformed or invalid value (all problems in one message).
    """
    try:
        tokens = flags["token_request"]
        period = flags["node_allocatable_update_period"]
        opts = cs.SpecOptions(
            attach_required=flags["attach_required"],
            pod_info_on_mount=bool(flags["pod_info_mount"] or flags["pod_info_mount_version"]),
            volume_lifecycle_modes=parse_lifecycle_modes(flags["volume_lifecycle_modes"]),
            storage_capacity=flags["storage_capacity"],
            fs_group_policy=flags["fs_group_policy"] or None,
            token_requests=tuple(parse_token_request(t) for t in tokens) if tokens else None,
            requires_republish=flags["requires_republish"],
            selinux_mount=flags["selinux_mount"],
            node_allocatable_update_period_seconds=int(period) if period is not None else None,
            service_account_token_in_secrets=flags["service_account_token_in_secrets"],
            prevent_pod_scheduling_if_missing=flags["prevent_pod_scheduling_if_missing"],
            labels=parse_labels(flags["labels"]),
        )
    except ValueError as exc:
        raise FlagError(str(exc)) from None
    errors = cs.validate_options(opts)
    if errors:
        raise FlagError("; ".join(errors))
    return opts
