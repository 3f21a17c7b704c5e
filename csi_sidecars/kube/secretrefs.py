"""Secret references from templates: the one implementation every role uses.

StorageClasses and snapshot classes name Secrets with templates such as
``${pvc.namespace}/${pvc.name}-secret``; the Go sidecars expand them with ``os.Expand`` and a
strict mapping (an unknown token is an error, not an empty string), then check that the results
are a namespace (DNS-1123 label) and a Secret name (DNS-1123 subdomain). :func:`expand` and
:func:`resolve_ref` do exactly that with Go's error texts, so the provisioner, the snapshot roles
and the resizer report the same messages for the same mistakes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

_SPECIAL = set("*#$@!?-0123456789")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class SecretTemplateError(ValueError):
    """A secret template that cannot be resolved, or resolves to an invalid name."""


def _quote(text: str) -> str:
    """Go's ``%q``."""
    return json.dumps(text, ensure_ascii=False)


def is_dns1123_label(value: str) -> bool:
    """Whether ``value`` is a DNS-1123 label (namespace names)."""
    return len(value) <= 63 and bool(_LABEL.match(value))


def is_dns1123_subdomain(value: str) -> bool:
    """Whether ``value`` is a DNS-1123 subdomain (Secret and PV names)."""
    return len(value) <= 253 and bool(_SUBDOMAIN.match(value))


def _shell_name(s: str) -> tuple[str, int]:
    """Go's ``getShellName``: the variable name after ``$`` and how many bytes it used."""
    if s[0] == "{":
        if len(s) > 2 and s[1] in _SPECIAL and s[2] == "}":
            return s[1:2], 3
        for i in range(1, len(s)):
            if s[i] == "}":
                return ("", 2) if i == 1 else (s[1:i], i + 1)
        return "", 1
    if s[0] in _SPECIAL:
        return s[0:1], 1
    i = 0
    while i < len(s) and (s[i] == "_" or (s[i].isascii() and s[i].isalnum())):
        i += 1
    return s[:i], i


def go_expand(template: str, lookup: Mapping[str, str]) -> tuple[str, set[str]]:
    """Expand ``$x`` / ``${x}`` exactly like Go's ``os.Expand``.

    Returns:
        The expanded string and the names that were not in ``lookup`` (expanded to "").
    """
    out: list[str] = []
    missing: set[str] = set()
    i = j = 0
    while j < len(template):
        if template[j] == "$" and j + 1 < len(template):
            out.append(template[i:j])
            var, width = _shell_name(template[j + 1 :])
            if var == "" and width > 0:
                pass  # bad syntax: the characters are eaten, as in Go
            elif var == "":
                out.append("$")
            else:
                if var not in lookup:
                    missing.add(var)
                out.append(lookup.get(var, ""))
            j += width
            i = j + 1
        j += 1
    out.append(template[i:])
    return "".join(out), missing


def expand(template: str, lookup: Mapping[str, str]) -> str:
    """Expand ``template``; unknown tokens are an error.

    Raises:
        SecretTemplateError: ``invalid tokens: ["..."]`` naming every unknown token, sorted.
    """
    resolved, missing = go_expand(template, lookup)
    if missing:
        listed = " ".join(_quote(m) for m in sorted(missing))
        raise SecretTemplateError(f"invalid tokens: [{listed}]")
    return resolved


def _resolved(template: str, lookup: Mapping[str, str]) -> str:
    try:
        return expand(template, lookup)
    except SecretTemplateError as err:
        raise SecretTemplateError(f"error resolving value {_quote(template)}: {err}") from None


def resolve_namespace(template: str, lookup: Mapping[str, str]) -> str:
    """Expand a namespace template and check the result, with Go's messages.

    Raises:
        SecretTemplateError: an unknown token, or a result that is not a namespace name.
    """
    namespace = _resolved(template, lookup)
    if not is_dns1123_label(namespace):
        if namespace != template:
            raise SecretTemplateError(
                f"{_quote(template)} resolved to {_quote(namespace)} which is not a valid "
                "namespace name"
            )
        raise SecretTemplateError(f"{_quote(template)} is not a valid namespace name")
    return namespace


def resolve_name(template: str, lookup: Mapping[str, str]) -> str:
    """Expand a Secret name template and check the result, with Go's messages.

    Raises:
        SecretTemplateError: an unknown token, or a result that is not a Secret name.
    """
    name = _resolved(template, lookup)
    if not is_dns1123_subdomain(name):
        if name != template:
            raise SecretTemplateError(
                f"{_quote(template)} resolved to {_quote(name)} which is not a valid secret name"
            )
        raise SecretTemplateError(f"{_quote(template)} is not a valid secret name")
    return name
