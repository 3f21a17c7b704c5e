"""Go-style formatting of values inside the provisioner's error messages.

Object bodies are read with :mod:`csi_sidecars.kube.objects`, like every role. What stays here
is provisioner-specific: its error texts and events quote values the way Go's ``%q`` / ``%v``
print them, so they read like external-provisioner's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any


def go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` prints it (a double-quoted string with escapes)."""
    return json.dumps(text, ensure_ascii=False)


def go_list(items: Iterable[Any]) -> str:
    """A list as Go's ``%v`` prints a slice of strings: ``[a b c]``."""
    return "[" + " ".join(str(i) for i in items) + "]"


def go_quoted_list(items: Iterable[str]) -> str:
    """A list as Go's ``%q`` prints a slice of strings: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def go_map(mapping: Mapping[str, str] | None) -> str:
    """A map as Go's ``%v`` prints it: ``map[a:1 b:2]`` with sorted keys."""
    items = sorted((mapping or {}).items())
    return "map[" + " ".join(f"{k}:{v}" for k, v in items) + "]"
