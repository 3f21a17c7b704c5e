"""Reading raw Kubernetes object bodies (JSON dicts), the same way in every role.

Roles never build client models; informers and the API client hand over dicts, often slimmed to
the fields a role reads. One policy for absent or malformed fields: a reader returns the empty
value of its type (``{}``, ``[]``, ``""``, ``False``), never raises, so a malformed object yields
"absent" and a clear decision instead of a ``KeyError``. Where absence must be told apart from
empty (a JSON patch ``test`` of a list that is not there), :func:`has_field` says so.

Also here, because every role needs them once: Secret decoding (bad base64 is an error naming the
Secret and the key, never the value, and never silently replaced), the one name sanitiser of
csi-lib-utils, and the :class:`Event` value the pure decisions return.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

JsonDict = dict[str, Any]
Obj = Mapping[str, Any]

NORMAL: Literal["Normal"] = "Normal"
WARNING: Literal["Warning"] = "Warning"
EventType = Literal["Normal", "Warning"]


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def meta(obj: Obj | None) -> Mapping[str, Any]:
    """``obj.metadata`` (empty when absent or not an object)."""
    return _dict((obj or {}).get("metadata"))


def spec(obj: Obj | None) -> Mapping[str, Any]:
    """``obj.spec`` (empty when absent or not an object)."""
    return _dict((obj or {}).get("spec"))


def status(obj: Obj | None) -> Mapping[str, Any]:
    """``obj.status`` (empty when absent or not an object)."""
    return _dict((obj or {}).get("status"))


def name(obj: Obj | None) -> str:
    """``metadata.name``."""
    return str(meta(obj).get("name") or "")


def namespace(obj: Obj | None) -> str:
    """``metadata.namespace``."""
    return str(meta(obj).get("namespace") or "")


def uid(obj: Obj | None) -> str:
    """``metadata.uid``."""
    return str(meta(obj).get("uid") or "")


def resource_version(obj: Obj | None) -> str:
    """``metadata.resourceVersion``."""
    return str(meta(obj).get("resourceVersion") or "")


def annotations_of(obj: Obj | None) -> Mapping[str, str]:
    """``metadata.annotations``."""
    return str_map(meta(obj).get("annotations"))


def labels_of(obj: Obj | None) -> Mapping[str, str]:
    """``metadata.labels``."""
    return str_map(meta(obj).get("labels"))


def finalizers(obj: Obj | None) -> list[str]:
    """``metadata.finalizers``."""
    return str_list(meta(obj).get("finalizers"))


def has_field(obj: Obj | None, key: str) -> bool:
    """Whether ``metadata.<key>`` is present at all (``finalizers: []`` is present)."""
    return meta(obj).get(key) is not None


def is_deleting(obj: Obj | None) -> bool:
    """Whether ``metadata.deletionTimestamp`` is set."""
    return bool(meta(obj).get("deletionTimestamp"))


def str_list(value: Any) -> list[str]:
    """``value`` as a list of strings (non-strings dropped; anything else -> empty)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def str_map(value: Any) -> dict[str, str]:
    """``value`` as a str -> str dict (non-string values dropped; anything else -> empty)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def dig(obj: Obj | None, *path: str) -> Any:
    """The value at ``path`` (``dig(pv, "spec", "csi", "driver")``); None where a step is absent."""
    cur: Any = obj
    for step in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(step)
    return cur


class SecretError(ValueError):
    """A Secret's data cannot be used; the message names the Secret and key, never a value."""


def secret_data(secret: Obj, ref: str = "") -> dict[str, str]:
    """The decoded ``data`` of a Secret as CSI ``secrets`` (key -> UTF-8 text).

    ``stringData`` is honoured for keys ``data`` lacks (the API server folds it into ``data``,
    fakes may not).

    Args:
        secret: the Secret object.
        ref: ``namespace/name`` for the message (default: from the object).

    Raises:
        SecretError: a value that is not base64 or not UTF-8.
    """
    where = ref or f"{namespace(secret)}/{name(secret)}"
    out: dict[str, str] = {}
    for key, value in _dict(secret.get("data")).items():
        try:
            out[str(key)] = base64.b64decode(str(value or ""), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise SecretError(
                f"secret {where}: key {key!r} is not valid base64-encoded UTF-8"
            ) from None
    for key, value in _dict(secret.get("stringData")).items():
        out.setdefault(str(key), str(value))
    return out


_NOT_NAME_CHAR = re.compile(r"[^a-zA-Z0-9-]")


def sanitize_name(text: str) -> str:
    """csi-lib-utils' name sanitiser: ``[^a-zA-Z0-9-]`` -> ``-``; ``X`` after a final ``-``.

    Used for Lease names, identities and driver names inside finalizers
    (``ebs.csi.aws.com`` -> ``ebs-csi-aws-com``; ``foo/`` -> ``foo-X``).
    """
    out = _NOT_NAME_CHAR.sub("-", text)
    if out.endswith("-"):
        out += "X"
    return out


@dataclass(frozen=True, slots=True)
class Event:
    """One event a decision asks for; the executor records it on the object it names.

    Attributes:
        type: ``Normal`` or ``Warning``.
        reason: the Go sidecar's reason string.
        message: human-readable text (never a secret).
    """

    type: EventType
    reason: str
    message: str


def normal(reason: str, message: str) -> Event:
    """A ``Normal`` event."""
    return Event(NORMAL, reason, message)


def warning(reason: str, message: str) -> Event:
    """A ``Warning`` event."""
    return Event(WARNING, reason, message)


def va_pv_index(va: JsonDict) -> list[str]:
    """Index function: a VolumeAttachment's ``spec.source.persistentVolumeName`` (none inline).

    The one function every role indexes VolumeAttachments by PV with: roles bundled in one
    process (``csi-sidecars run``) share an informer's index only when it is the same function.
    """
    name = ((spec(va).get("source") or {}) or {}).get("persistentVolumeName")
    return [str(name)] if name else []
