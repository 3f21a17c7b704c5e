"""Secret templates: Go's os.Expand with a strict mapping and Go's messages, once for all roles."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.secretrefs import (
    SecretTemplateError,
    expand,
    go_expand,
    resolve_name,
    resolve_namespace,
)


def test_expand_is_strict_and_go_shaped() -> None:
    assert expand("${a}-$b-$$", {"a": "1", "b": "2", "$": "D"}) == "1-2-D"
    assert go_expand("x${}y", {}) == ("xy", set())
    with pytest.raises(SecretTemplateError, match=r'invalid tokens: \["c" "d"\]'):
        expand("${d}${c}", {})


@pytest.mark.parametrize(
    ("fn", "template", "lookup", "message"),
    [
        (
            resolve_namespace, "${ns}", {"ns": "Bad_NS"},
            '"${ns}" resolved to "Bad_NS" which is not a valid namespace name',
        ),
        (resolve_namespace, "Bad_NS", {}, '"Bad_NS" is not a valid namespace name'),
        (
            resolve_name, "${n}", {"n": "a/b"},
            '"${n}" resolved to "a/b" which is not a valid secret name',
        ),
        (resolve_name, "${x}", {}, 'error resolving value "${x}": invalid tokens: ["x"]'),
    ],
)  # fmt: skip
def test_resolve_messages(fn: object, template: str, lookup: dict[str, str], message: str) -> None:
    with pytest.raises(SecretTemplateError) as err:
        fn(template, lookup)  # type: ignore[operator]
    assert str(err.value) == message


def test_resolve_ok() -> None:
    assert resolve_namespace("${pvc.namespace}", {"pvc.namespace": "ns-1"}) == "ns-1"
    assert resolve_name("${pv.name}-s.x", {"pv.name": "pv"}) == "pv-s.x"
