"""Parsing of ``csi-sidecars csi`` arguments into plain request data.

Every command turns its flags into a dict keyed by CSI proto field names (``{"name": "pvc-1",
"capacity_range": {"required_bytes": 5368709120}}``); the runner merges it over a request file
(``-f req.yaml``) and only then builds the protobuf message. Keeping this module free of gRPC and
protobuf keeps ``--help`` fast and makes every parser a pure, table-testable function.

Syntax, shared by all commands:

* sizes: ``5Gi``, ``100M``, ``1.5Ti``, ``4096`` (Kubernetes quantities, in bytes);
* capabilities: ``MODE,TYPE[,FS_TYPE[,MOUNT_FLAG...]]``, e.g. ``MULTI_NODE_MULTI_WRITER,mount,ext4``
  or ``single-node-writer,block``; a mount flag ``volume_mount_group=GID`` sets that field;
* maps: ``key=value,key2=value2`` (a comma followed by text without ``=`` belongs to the value);
* secrets: a YAML/JSON mapping or ``key=value`` lines in a file, or the same in an environment
  variable, never on the command line where ``ps`` would show them.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from csi_sidecars.kube.quantity import INT64_MAX, QuantityError, format_binary_si, parse_quantity

ACCESS_MODES = (
    "UNKNOWN",
    "SINGLE_NODE_WRITER",
    "SINGLE_NODE_READER_ONLY",
    "MULTI_NODE_READER_ONLY",
    "MULTI_NODE_SINGLE_WRITER",
    "MULTI_NODE_MULTI_WRITER",
    "SINGLE_NODE_SINGLE_WRITER",
    "SINGLE_NODE_MULTI_WRITER",
)

#: The capability a command uses when it needs one and none was given.
DEFAULT_CAPABILITY = "SINGLE_NODE_WRITER,mount"

_SECRET_KEY = re.compile(r"^[A-Za-z0-9._-]+$")


class ArgumentError(ValueError):
    """A command-line value, request file or secret source that cannot be used."""


def parse_size(text: str) -> int:
    """Parse a size such as ``5Gi``, ``100M``, ``1.5Gi`` or ``1024`` into bytes.

    Fractions round up to a whole byte, as Kubernetes quantities do. A trailing ``B``
    (``5GiB``) is accepted.

    Raises:
        ArgumentError: for anything else, negative sizes and sizes beyond int64.
    """
    body = text.strip()
    body = body[:-1] if body.endswith("B") else body
    try:
        value = parse_quantity(body)
    except QuantityError:
        raise ArgumentError(
            f"invalid size {text!r}: use bytes or a quantity such as 512Mi, 5Gi, 100G"
        ) from None
    if value < 0:
        raise ArgumentError(f"invalid size {text!r}: sizes cannot be negative")
    whole = math.ceil(value)
    if whole > INT64_MAX:
        raise ArgumentError(f"size {text!r} does not fit in 64 bits")
    return whole


def format_size(value: int) -> str:
    """Bytes as the largest exact binary unit (``5Gi``), or the plain number when none fits."""
    return str(value) if value <= 0 else format_binary_si(value)


def _mode_name(text: str) -> str:
    key = text.strip().upper().replace("-", "_")
    if key.isdigit():
        index = int(key)
        if 0 <= index < len(ACCESS_MODES):
            return ACCESS_MODES[index]
    elif key in ACCESS_MODES:
        return key
    raise ArgumentError(
        f"unknown access mode {text!r}; use one of {', '.join(ACCESS_MODES[1:])} or its number"
    )


def parse_capability(text: str) -> dict[str, Any]:
    """Parse ``MODE,TYPE[,FS_TYPE[,MOUNT_FLAG...]]`` into a ``VolumeCapability`` dict.

    Examples: ``SINGLE_NODE_WRITER,mount``, ``5,mount,xfs,noatime``,
    ``single-node-writer,block``, ``MULTI_NODE_MULTI_WRITER,mount,ext4,volume_mount_group=1000``.

    Raises:
        ArgumentError: for an unknown mode or type, or options on a block capability.
    """
    parts = [p.strip() for p in text.split(",")]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise ArgumentError(
            f"invalid capability {text!r}: use MODE,TYPE[,FS_TYPE[,MOUNT_FLAG...]], "
            "e.g. SINGLE_NODE_WRITER,mount,ext4"
        )
    mode = _mode_name(parts[0])
    kind = parts[1].lower()
    out: dict[str, Any] = {"access_mode": {"mode": mode}}
    if kind == "block":
        if len(parts) > 2:
            raise ArgumentError(f"invalid capability {text!r}: a block volume takes no fs options")
        out["block"] = {}
        return out
    if kind != "mount":
        raise ArgumentError(f"invalid capability {text!r}: the type must be mount or block")
    mount: dict[str, Any] = {}
    if len(parts) > 2 and parts[2]:
        mount["fs_type"] = parts[2]
    flags = []
    for flag in parts[3:]:
        if flag.startswith("volume_mount_group="):
            mount["volume_mount_group"] = flag.partition("=")[2]
        elif flag:
            flags.append(flag)
    if flags:
        mount["mount_flags"] = flags
    out["mount"] = mount
    return out


def parse_capabilities(values: Iterable[str]) -> list[dict[str, Any]]:
    """Parse every ``--cap`` value (see :func:`parse_capability`)."""
    return [parse_capability(v) for v in values]


def parse_map(values: Iterable[str], what: str = "value") -> dict[str, str]:
    """Parse ``key=value,key2=value2`` items (repeatable) into one map; later keys win.

    A comma starts a new pair only when the text after it contains ``=``, so
    ``mountOptions=a,b,c=d`` is ``{"mountOptions": "a,b", "c": "d"}``.

    Raises:
        ArgumentError: for an item without ``=`` or with an empty key.
    """
    out: dict[str, str] = {}
    for value in values:
        pairs: list[str] = []
        for chunk in value.split(","):
            if "=" in chunk or not pairs:
                pairs.append(chunk)
            else:
                pairs[-1] += "," + chunk
        for pair in pairs:
            if not pair.strip():
                continue
            key, sep, val = pair.partition("=")
            if not sep or not key.strip():
                raise ArgumentError(f"invalid {what} {pair!r}: use key=value")
            out[key.strip()] = val
    return out


def parse_topologies(values: Iterable[str]) -> list[dict[str, Any]]:
    """Each value is one ``Topology`` (``zone=a,region=r``); returns ``[{"segments": ...}]``."""
    return [{"segments": parse_map([v], "topology segment")} for v in values]


def _is_pair_line(line: str) -> bool:
    eq, colon = line.find("="), line.find(":")
    return eq > 0 and (colon < 0 or eq < colon)


def _secrets_from_text(text: str, source: str) -> dict[str, str]:
    stripped = text.strip()
    lines = [ln.strip() for ln in stripped.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        return {}
    data: Any
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise ArgumentError(f"{source}: invalid JSON ({err.msg})") from None
    elif all(_is_pair_line(ln) for ln in lines):
        if len(lines) == 1:
            data = parse_map(lines, "secret")
        else:
            data = {ln.partition("=")[0].strip(): ln.partition("=")[2] for ln in lines}
    else:
        import yaml  # type: ignore[import-untyped]

        try:
            data = yaml.safe_load(stripped)
        except yaml.YAMLError:
            # Never quote the text: it holds the secrets.
            raise ArgumentError(f"{source}: not a YAML or JSON mapping") from None
    if not isinstance(data, Mapping):
        raise ArgumentError(f"{source}: secrets must be a mapping of key to value")
    out: dict[str, str] = {}
    for key, value in data.items():
        key_text = str(key)
        if not _SECRET_KEY.match(key_text):
            raise ArgumentError(
                f"{source}: secret key {key_text!r} may hold only letters, digits, '-', '_', '.'"
            )
        if isinstance(value, Mapping | list) or value is None:
            raise ArgumentError(f"{source}: secret {key_text!r} must be a string")
        out[key_text] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def load_secrets(path: str | None = None, env_var: str | None = None) -> dict[str, str] | None:
    """Read secrets from a file and/or an environment variable; the variable wins per key.

    Both accept a JSON object, a YAML mapping, ``key=value`` lines, or (the variable) a single
    ``key=value,key2=value2`` line. Error messages name the source, never a value.

    Returns:
        The secrets, or None when neither source was given.

    Raises:
        ArgumentError: for an unreadable file, an unset variable or a malformed mapping.
    """
    if path is None and env_var is None:
        return None
    out: dict[str, str] = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            raise ArgumentError(f"cannot read secrets file {path}: {err.strerror}") from None
        out.update(_secrets_from_text(text, f"secrets file {path}"))
    if env_var is not None:
        value = os.environ.get(env_var)
        if value is None:
            raise ArgumentError(f"environment variable {env_var} (--secrets-env) is not set")
        out.update(_secrets_from_text(value, f"environment variable {env_var}"))
    return out


def load_request(path: str) -> dict[str, Any]:
    """Read a whole request from a YAML or JSON file, or from standard input for ``-``.

    Keys are proto field names (``volume_capabilities``) or their JSON names
    (``volumeCapabilities``), as protobuf's JSON mapping accepts.

    Raises:
        ArgumentError: when the file cannot be read or is not a mapping.
    """
    import yaml

    source = "standard input" if path == "-" else path
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except OSError as err:
        raise ArgumentError(f"cannot read request file {source}: {err.strerror}") from None
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ArgumentError(f"request file {source}: invalid YAML/JSON{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ArgumentError(f"request file {source}: the request must be a mapping of fields")
    return data


def merge_request(
    defaults: Mapping[str, Any], from_file: Mapping[str, Any], explicit: Mapping[str, Any]
) -> dict[str, Any]:
    """The request data: ``defaults``, overridden by the file, overridden by explicit flags.

    Overriding is per top-level field; ``None`` values in ``explicit`` mean "not given".
    A field present in the file under its JSON name (``volumeId``) is replaced by the same field
    given as a flag (``volume_id``), and defaults yield to either spelling.
    """
    out: dict[str, Any] = {}
    for layer in (defaults, from_file, {k: v for k, v in explicit.items() if v is not None}):
        for key, value in layer.items():
            for other in (key, json_name(key), proto_name(key)):
                out.pop(other, None)
            out[key] = value
    return out


def json_name(name: str) -> str:
    """The protobuf JSON name of a proto field name: ``volume_id`` -> ``volumeId``."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def proto_name(name: str) -> str:
    """The proto field name of a JSON name: ``volumeId`` -> ``volume_id``."""
    return re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def has_field(data: Mapping[str, Any], name: str) -> bool:
    """Whether ``data`` sets the field ``name`` under its proto or JSON name."""
    return any(data.get(k) not in (None, "", [], {}) for k in (name, json_name(name)))


def normalize_endpoint(endpoint: str) -> str:
    """The gRPC target of an ``--endpoint``.

    ``unix:///abs``, ``unix:rel`` and ``dns:///h:p`` pass through; an absolute or ``./`` path
    becomes ``unix://`` + absolute path; ``tcp://host:port`` becomes ``host:port``.

    Raises:
        ArgumentError: when the endpoint is empty.
    """
    text = endpoint.strip()
    if not text:
        raise ArgumentError("no endpoint: pass --endpoint or set CSI_ENDPOINT")
    if text.startswith("tcp://"):
        return text[len("tcp://") :]
    if text.startswith(("/", "./", "../")):
        return "unix://" + os.path.abspath(text)
    if "://" not in text and ":" not in text and text.endswith(".sock"):
        return "unix://" + os.path.abspath(text)
    return text


_SIZE_FIELDS = {"required_bytes", "limit_bytes", "requiredBytes", "limitBytes"}


def expand_sizes(data: Any) -> Any:
    """Request data with quantity strings in ``required_bytes``/``limit_bytes`` turned into
    bytes, so a request file may say ``required_bytes: 5Gi``.

    Raises:
        ArgumentError: for a size string that is not a quantity.
    """
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in _SIZE_FIELDS and isinstance(value, str) and not value.strip().isdigit():
                out[key] = parse_size(value)
            else:
                out[key] = expand_sizes(value)
        return out
    if isinstance(data, list):
        return [expand_sizes(v) for v in data]
    return data
