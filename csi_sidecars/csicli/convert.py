"""Protobuf messages to and from the plain data ``csi-sidecars csi`` reads and prints.

Output data is keyed by proto field names (as the CSI spec writes them), holds every scalar field
(so a reply's empty ``volume_id`` or ``false`` shows) but only non-empty lists and maps and set
messages, spells enums by name, keeps 64-bit integers as numbers (``jq`` friendly, unlike protobuf's
JSON mapping, which quotes them), prints timestamps as RFC 3339 and unwraps ``Int64Value`` /
``BoolValue``. Fields marked ``csi_secret`` become ``***stripped***``, as in the logs.
Input goes through protobuf's own JSON parser, so a request file may use either field spelling
and unknown fields are an error rather than silently dropped.
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from csi_sidecars.csi.messages import csi_pb2
from csi_sidecars.csi.sanitize import STRIPPED, is_secret
from csi_sidecars.csicli.arguments import ArgumentError

_WRAPPERS = {
    "google.protobuf.BoolValue",
    "google.protobuf.Int64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.StringValue",
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.BytesValue",
}


def _is_map(field: FieldDescriptor) -> bool:
    msg = field.message_type
    return field.type == FieldDescriptor.TYPE_MESSAGE and bool(
        msg is not None and msg.GetOptions().map_entry
    )


def _is_repeated(field: FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(getattr(field, "label", None) == FieldDescriptor.LABEL_REPEATED)


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_to_data(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum_type = field.enum_type
        named = enum_type.values_by_number.get(value) if enum_type is not None else None
        return named.name if named is not None else value
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def message_to_data(msg: Message) -> Any:
    """The populated fields of ``msg`` as plain data (see the module docstring)."""
    name = msg.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        return json_format.MessageToJson(msg).strip('"')
    if name in _WRAPPERS:
        value_field: Any = msg.DESCRIPTOR.fields_by_name["value"]
        return _scalar(value_field, getattr(msg, "value"))  # noqa: B009
    out: dict[str, Any] = {}
    descriptors: list[FieldDescriptor] = list(msg.DESCRIPTOR.fields)  # type: ignore[arg-type]
    for field in descriptors:
        value = getattr(msg, field.name)
        if _is_map(field) or _is_repeated(field):
            if not len(value):
                continue
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not msg.HasField(field.name):
            continue
        if is_secret(field):
            out[field.name] = STRIPPED
        elif _is_map(field) and field.message_type is not None:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {str(k): _scalar(value_field, v) for k, v in value.items()}
        elif _is_repeated(field):
            out[field.name] = [_scalar(field, item) for item in value]
        else:
            out[field.name] = _scalar(field, value)
    return out


def request_class(method_input: str) -> type[Message]:
    """The generated class of a CSI message name such as ``CreateVolumeRequest``."""
    cls = getattr(csi_pb2, method_input)
    assert isinstance(cls, type) and issubclass(cls, Message)
    return cls


def build_request(type_name: str, data: dict[str, Any]) -> Message:
    """Build the CSI message ``type_name`` from request data.

    Raises:
        ArgumentError: naming the field when the data does not fit the message (unknown field,
            wrong type, unknown enum value). Secret values never appear in the message.
    """
    msg = request_class(type_name)()
    try:
        json_format.ParseDict(data, msg)
    except json_format.ParseError as err:
        raise ArgumentError(f"invalid {type_name}: {_parse_error(msg, str(err))}") from None
    return msg


def _parse_error(msg: Message, text: str) -> str:
    # The parser quotes bad values; a bad secrets map must not be quoted.
    if "Failed to parse secrets field" in text:
        return "the secrets must be a mapping of string keys to string values"
    head, sep, _ = text.partition("\n Available Fields")
    if sep and head.endswith(f'at "{msg.DESCRIPTOR.name}".'):
        names = ", ".join(f.name for f in msg.DESCRIPTOR.fields)
        return f"{head} (its fields: {names})"
    return head
