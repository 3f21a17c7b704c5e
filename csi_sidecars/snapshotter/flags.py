"""The flags of ``csi-sidecars snapshotter`` (csi-snapshotter v8.6 names and defaults).

Shared groups: ``--csi-address`` and ``--timeout`` (1m, every CSI call), ``--http-endpoint`` /
``--metrics-address`` / ``--metrics-path``, the Kubernetes and leader-election flags,
``--retry-interval-start`` 1s / ``--retry-interval-max`` 5m, ``--worker-threads`` 10 and
``--feature-gates`` (``CSIVolumeGroupSnapshot`` beta, off, as in the v8.6.0 release;
``ReleaseLeaderElectionOnExit`` alpha, off), plus ``-v`` / ``--logging-format`` /
``--version``. The snapshotter's own:
``--resync-period`` 15m, ``--snapshot-name-prefix`` ``snapshot``,
``--snapshot-name-uuid-length`` -1, ``--extra-create-metadata``, ``--node-deployment``,
``--groupsnapshot-name-prefix`` ``groupsnapshot``, ``--groupsnapshot-name-uuid-length`` -1.

:func:`validate` applies the checks that make the Go sidecar exit 1, and one it lacks: a UUID
length above 32 is refused with a message (Go panics on the first snapshot).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click

from csi_sidecars.kube.options import KubeOptions, kube_options
from csi_sidecars.kube.snapshots import (
    GATE_RELEASE_LEADER_ELECTION_ON_EXIT,
    GATE_VOLUME_GROUP_SNAPSHOT,
)
from csi_sidecars.runtime import app
from csi_sidecars.runtime.errors import ConfigError
from csi_sidecars.runtime.featuregates import FeatureGates, Gate, GateSpec
from csi_sidecars.runtime.flags import DURATION, bool_flag
from csi_sidecars.runtime.options import (
    CsiOptions,
    HttpOptions,
    RetryOptions,
    compose,
    csi_options,
    feature_gates,
    http_options,
    retry_options,
    worker_threads,
)
from csi_sidecars.snapshotter import names

#: As in the v8.6.0 release (``pkg/features``): group snapshots are beta and off by default.
GATES: GateSpec = {
    GATE_VOLUME_GROUP_SNAPSHOT: Gate(False, "beta"),
    GATE_RELEASE_LEADER_ELECTION_ON_EXIT: Gate(False, "alpha"),
}

NODE_NAME_ENV = "NODE_NAME"


@dataclass(frozen=True, slots=True)
class SnapshotterFlags:
    """Every flag of the snapshotter command, parsed."""

    csi: CsiOptions
    http: HttpOptions
    kube: KubeOptions
    retry: RetryOptions
    gates: FeatureGates
    worker_threads: int = 10
    resync_period: float = 900.0
    snapshot_name_prefix: str = "snapshot"
    snapshot_name_uuid_length: int = -1
    extra_create_metadata: bool = False
    node_deployment: bool = False
    groupsnapshot_name_prefix: str = "groupsnapshot"
    groupsnapshot_name_uuid_length: int = -1
    v: int = 0
    logging_format: str = "text"
    version: bool = False

    @property
    def group_snapshots(self) -> bool:
        """The ``CSIVolumeGroupSnapshot`` gate."""
        return bool(self.gates[GATE_VOLUME_GROUP_SNAPSHOT])


OWN = (
    "worker_threads",
    "resync_period",
    "snapshot_name_prefix",
    "snapshot_name_uuid_length",
    "extra_create_metadata",
    "node_deployment",
    "groupsnapshot_name_prefix",
    "groupsnapshot_name_uuid_length",
    "v",
    "logging_format",
    "version",
)


def snapshotter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add every snapshotter flag; the command receives one :class:`SnapshotterFlags`.

    A malformed ``--feature-gates`` value is reported as a usage error (exit 1).
    """

    @functools.wraps(func)
    def build(*args: Any, **kwargs: Any) -> Any:
        flags = SnapshotterFlags(
            csi=kwargs.pop("csi"),
            http=kwargs.pop("http"),
            kube=kwargs.pop("kube"),
            retry=kwargs.pop("retry"),
            gates=kwargs.pop("gates"),
            **{key: kwargs.pop(key) for key in OWN},
        )
        return func(*args, flags=flags, **kwargs)

    decorated = compose(
        _config_errors_exit,
        app.common_options,
        csi_options(timeout="1m", timeout_help="Timeout of every CSI call."),
        http_options(),
        kube_options,
        retry_options(),
        worker_threads(10),
        feature_gates(GATES, role=names.ROLE),
        click.option(
            "--resync-period",
            type=DURATION,
            default="15m",
            show_default=True,
            help="Resync interval of the controller.",
        ),
        click.option(
            "--snapshot-name-prefix",
            default="snapshot",
            show_default=True,
            help="Prefix of the names of created snapshots.",
        ),
        click.option(
            "--snapshot-name-uuid-length",
            type=int,
            default=-1,
            show_default=True,
            help="Characters of the VolumeSnapshot UID (without dashes) in snapshot names; "
            "-1 keeps the whole UID with dashes.",
        ),
        bool_flag(
            "--extra-create-metadata",
            help="Pass the VolumeSnapshot and VolumeSnapshotContent names as parameters.",
        ),
        bool_flag(
            "--node-deployment",
            help="Run next to a node-local driver; handle only contents managed by NODE_NAME.",
        ),
        click.option(
            "--groupsnapshot-name-prefix",
            default="groupsnapshot",
            show_default=True,
            help="Prefix of the names of created group snapshots.",
        ),
        click.option(
            "--groupsnapshot-name-uuid-length",
            type=int,
            default=-1,
            show_default=True,
            help="Like --snapshot-name-uuid-length, for group snapshots.",
        ),
    )
    return decorated(build)


def _config_errors_exit(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a :class:`ConfigError` raised while the flag groups build their values into a
    usage error (exit 1 with the message, no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as err:
            raise click.ClickException(str(err)) from None

    return wrapper


def _check_uuid_length(flag: str, value: int) -> None:
    if value < -1 or value > names.MAX_UUID_LENGTH:
        raise ConfigError(
            f"{flag} must be -1 (the whole UID) or between 0 and {names.MAX_UUID_LENGTH} (a UID "
            f"has {names.MAX_UUID_LENGTH} characters without dashes), got {value}"
        )


def validate(flags: SnapshotterFlags, env: Mapping[str, str] | None = None) -> str:
    """The start-up checks; returns the node name under ``--node-deployment`` ("" otherwise).

    Raises:
        ConfigError: Go's start-up failures (leader election with ``--node-deployment``, no
            ``NODE_NAME``, both HTTP addresses, an empty name prefix) and ours (UUID lengths,
            retry intervals, a non-positive ``--timeout``).
    """
    env = os.environ if env is None else env
    flags.http.validate()
    flags.retry.validate()
    if flags.csi.timeout <= 0:
        raise ConfigError("--timeout must be positive")
    if not flags.snapshot_name_prefix:
        raise ConfigError("Snapshot name prefix cannot be of length 0")
    _check_uuid_length("--snapshot-name-uuid-length", flags.snapshot_name_uuid_length)
    if flags.group_snapshots:
        if not flags.groupsnapshot_name_prefix:
            raise ConfigError("group snapshot name prefix cannot be of length 0")
        _check_uuid_length("--groupsnapshot-name-uuid-length", flags.groupsnapshot_name_uuid_length)
    if not flags.node_deployment:
        return ""
    if flags.kube.leader_election:
        raise ConfigError("Leader election cannot happen when node-deployment is set to true")
    node = env.get(NODE_NAME_ENV, "")
    if not node:
        raise ConfigError(
            f"The {NODE_NAME_ENV} environment variable must be set when using --node-deployment"
        )
    return node
