"""The create requests sent to the driver, and their record on the content.

A request is built from the content and its class: the deterministic name
``<prefix>-<(group) snapshot UID>``, the source volume(s), and the class parameters without the
reserved ``csi.storage.k8s.io/`` keys (an unknown reserved key is an error, as in Go), plus
the ``--extra-create-metadata`` keys. Secrets are added only when the message is built and are
never part of the record.

The record (:data:`~csi_sidecars.snapshotter.names.ANN_CREATE_REQUEST`, compact JSON) is
written together with the being-created annotation. While that annotation is on the content,
the recorded request is what is sent, so the call is repeated exactly even after the class was
edited or deleted; a request that then answered ``AlreadyExists`` for different parameters
would otherwise look final and leak the snapshot. A record that cannot be parsed, or names
another source, is ignored (the request is rebuilt from the class).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.kube import snapshots as api
from csi_sidecars.kube.objects import str_map


class ParameterError(ValueError):
    """A class parameter uses the reserved prefix but is not one the sidecar knows."""


def remove_prefixed(parameters: Mapping[str, str]) -> dict[str, str]:
    """Go's ``RemovePrefixedParameters``.

    Raises:
        ParameterError: an unknown ``csi.storage.k8s.io/`` key (Go's message).
    """
    out: dict[str, str] = {}
    for key, value in parameters.items():
        if key.startswith(api.CSI_PARAMETER_PREFIX):
            if key not in api.RESERVED_PARAMETER_KEYS:
                raise ParameterError(
                    f'found unknown parameter key "{key}" with reserved namespace '
                    f"{api.CSI_PARAMETER_PREFIX}"
                )
            continue
        out[key] = value
    return out


def _dump(data: Mapping[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _load(text: str | None) -> Mapping[str, Any] | None:
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """A CreateSnapshot request without secrets."""

    name: str
    source_volume_id: str
    parameters: Mapping[str, str] = field(default_factory=dict)

    def record(self) -> str:
        """The JSON kept in the content's annotation."""
        return _dump(
            {
                "name": self.name,
                "sourceVolumeId": self.source_volume_id,
                "parameters": dict(self.parameters),
            }
        )

    def message(self, secrets: Mapping[str, str]) -> Any:
        """The protobuf request with ``secrets``."""
        return csi_pb2.CreateSnapshotRequest(
            name=self.name,
            source_volume_id=self.source_volume_id,
            parameters=dict(self.parameters),
            secrets=dict(secrets),
        )


def parse_snapshot_request(text: str | None, source_volume_id: str) -> SnapshotRequest | None:
    """The recorded request, or None when absent, malformed or for another source volume."""
    data = _load(text)
    if data is None:
        return None
    name, source = data.get("name"), data.get("sourceVolumeId")
    params = data.get("parameters", {})
    if not isinstance(name, str) or not name or source != source_volume_id:
        return None
    if not isinstance(params, dict) or str_map(params) != params:
        return None
    return SnapshotRequest(name, source_volume_id, dict(params))


@dataclass(frozen=True, slots=True)
class GroupSnapshotRequest:
    """A CreateVolumeGroupSnapshot request without secrets."""

    name: str
    source_volume_ids: Sequence[str]
    parameters: Mapping[str, str] = field(default_factory=dict)

    def record(self) -> str:
        """The JSON kept in the group content's annotation."""
        return _dump(
            {
                "name": self.name,
                "sourceVolumeIds": list(self.source_volume_ids),
                "parameters": dict(self.parameters),
            }
        )

    def message(self, secrets: Mapping[str, str]) -> Any:
        """The protobuf request with ``secrets``."""
        return csi_pb2.CreateVolumeGroupSnapshotRequest(
            name=self.name,
            source_volume_ids=list(self.source_volume_ids),
            parameters=dict(self.parameters),
            secrets=dict(secrets),
        )


def parse_group_request(
    text: str | None, source_volume_ids: Sequence[str]
) -> GroupSnapshotRequest | None:
    """The recorded group request, or None when absent, malformed or for other volumes."""
    data = _load(text)
    if data is None:
        return None
    name, sources = data.get("name"), data.get("sourceVolumeIds")
    params = data.get("parameters", {})
    if not isinstance(name, str) or not name or sources != list(source_volume_ids):
        return None
    if not isinstance(params, dict) or str_map(params) != params:
        return None
    return GroupSnapshotRequest(name, list(source_volume_ids), dict(params))
