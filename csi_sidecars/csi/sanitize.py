"""Render protobuf messages for logs with every CSI secret removed.

CSI marks sensitive fields with the ``csi_secret`` field option (extension 1059 on
``google.protobuf.FieldOptions``); the ``secrets`` maps of CreateVolume, NodePublishVolume and the
rest carry credentials that must never reach a log line. :func:`strip_secrets` renders a message as
one line of JSON -- populated fields only, keyed by proto field name, enums by value name, nested
messages, lists and maps recursed -- with every such field replaced by ``"***stripped***"``, like
csi-lib-utils' ``protosanitizer.StripSecrets``. The check is driven by the descriptors, so it
covers alpha fields and any field a future spec marks, not a hand-kept list.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from csi_sidecars.csi.gen import csi_pb2

#: What a secret field is replaced with.
STRIPPED = "***stripped***"

_secret_cache: dict[str, bool] = {}


def is_secret(field: FieldDescriptor) -> bool:
    """Whether ``field`` carries the ``csi_secret`` option."""
    key = field.full_name
    cached = _secret_cache.get(key)
    if cached is None:
        cached = bool(field.GetOptions().Extensions[csi_pb2.csi_secret])
        _secret_cache[key] = cached
    return cached


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_dict(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum_type = field.enum_type
        enum_value = enum_type.values_by_number.get(value) if enum_type is not None else None
        return enum_value.name if enum_value is not None else value
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def _is_map(field: FieldDescriptor) -> bool:
    msg = field.message_type
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and msg is not None
        and msg.GetOptions().map_entry
    )


def _is_repeated(field: FieldDescriptor) -> bool:
    # protobuf 5 has ``label``; newer releases deprecate it for ``is_repeated``.
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(getattr(field, "label", None) == FieldDescriptor.LABEL_REPEATED)


def _field_value(field: FieldDescriptor, value: Any) -> Any:
    if is_secret(field):
        return STRIPPED
    if _is_map(field) and field.message_type is not None:
        value_field = field.message_type.fields_by_name["value"]
        return {str(k): _scalar(value_field, v) for k, v in value.items()}
    if _is_repeated(field):
        return [_scalar(field, item) for item in value]
    return _scalar(field, value)


def to_dict(msg: Message) -> dict[str, Any]:
    """The populated fields of ``msg`` as plain data, secrets replaced by ``***stripped***``."""
    return {field.name: _field_value(field, value) for field, value in msg.ListFields()}


def strip_secrets(msg: Any) -> str:
    """One-line JSON of ``msg`` with every ``csi_secret`` field replaced by ``***stripped***``.

    Args:
        msg: a protobuf message (anything else is JSON-encoded unchanged; None gives ``null``).

    Returns:
        Compact JSON with sorted keys, e.g.
        ``{"name":"pvc-1","secrets":"***stripped***"}``.
    """
    data = to_dict(msg) if isinstance(msg, Message) else msg
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class Stripped:
    """A lazy :func:`strip_secrets`: renders only when a log line is actually written."""

    __slots__ = ("_msg",)

    def __init__(self, msg: Any) -> None:
        """Wrap ``msg``; nothing is rendered yet."""
        self._msg = msg

    def __str__(self) -> str:
        """The stripped JSON rendering."""
        return strip_secrets(self._msg)

    __repr__ = __str__
