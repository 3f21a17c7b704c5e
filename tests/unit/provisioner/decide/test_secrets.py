"""StorageClass secret parameters and templates."""

from __future__ import annotations

import pytest

from csi_sidecars.kube.secretrefs import go_expand
from csi_sidecars.provisioner.decide import secrets
from csi_sidecars.provisioner.decide.secrets import (
    RESERVED_PARAMETER_KEYS,
    SecretParamError,
    SecretRef,
    secret_reference,
)

P = "csi.storage.k8s.io/"


def ref(params: dict[str, str], kind: secrets.SecretParams = secrets.PROVISIONER,
        annotations: dict[str, str] | None = None) -> SecretRef | None:  # fmt: skip
    return secret_reference(
        kind,
        sc_params=params,
        pv_name="pvc-123",
        pvc_name="data",
        pvc_namespace="team-a",
        pvc_annotations={} if annotations is None else annotations,
    )


def test_reserved_keys_exact_list() -> None:
    kinds = [
        "provisioner", "controller-publish", "node-stage", "node-publish", "controller-expand",
        "node-expand", "controller-modify",
    ]  # fmt: skip
    expected = {P + "fstype", P + "secret-name", P + "secret-namespace"}
    for k in kinds:
        expected |= {f"{P}{k}-secret-name", f"{P}{k}-secret-namespace"}
    assert expected == RESERVED_PARAMETER_KEYS


@pytest.mark.parametrize(
    ("params", "kind", "expected"),
    [
        ({}, secrets.PROVISIONER, None),
        (
            {P + "provisioner-secret-name": "s", P + "provisioner-secret-namespace": "ns"},
            secrets.PROVISIONER,
            SecretRef("s", "ns"),
        ),
        (
            {"csiProvisionerSecretName": "old", "csiProvisionerSecretNamespace": "ns"},
            secrets.PROVISIONER,
            SecretRef("old", "ns"),
        ),
        (
            {P + "secret-name": "d", P + "secret-namespace": "dns"},
            secrets.NODE_EXPAND,
            SecretRef("d", "dns"),
        ),
        (
            {
                P + "secret-name": "d",
                P + "secret-namespace": "dns",
                P + "node-stage-secret-name": "own",
                P + "node-stage-secret-namespace": "ons",
            },
            secrets.NODE_STAGE,
            SecretRef("own", "ons"),
        ),
        (
            {
                P + "controller-modify-secret-name": "${pv.name}-m",
                P + "controller-modify-secret-namespace": "${pvc.namespace}",
            },
            secrets.CONTROLLER_MODIFY,
            SecretRef("pvc-123-m", "team-a"),
        ),
        (
            {
                P + "node-publish-secret-name": "${pvc.name}-${pvc.namespace}",
                P + "node-publish-secret-namespace": "$pv.name",  # "$pv" is the token
            },
            secrets.NODE_PUBLISH,
            "error",
        ),
    ],
)
def test_secret_reference(
    params: dict[str, str], kind: secrets.SecretParams, expected: SecretRef | str | None
) -> None:
    if expected == "error":
        with pytest.raises(SecretParamError, match=r'invalid tokens: \["pv"\]'):
            ref(params, kind)
    else:
        assert ref(params, kind) == expected


def test_annotation_token_in_name() -> None:
    params = {
        P + "node-publish-secret-name": "${pvc.annotations['team.io/secret']}",
        P + "node-publish-secret-namespace": "${pvc.namespace}",
    }
    got = ref(params, secrets.NODE_PUBLISH, annotations={"team.io/secret": "my-secret"})
    assert got == SecretRef("my-secret", "team-a")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {P + "provisioner-secret-name": "s", "csiProvisionerSecretName": "t",
             P + "provisioner-secret-namespace": "ns"},
            'failed to get name and namespace template from params: Provisioner secrets '
            'specified in parameters with both "csi" and "csi.storage.k8s.io/" keys',
        ),
        (
            {P + "provisioner-secret-name": "s"},
            "failed to get name and namespace template from params: either name and namespace "
            "for Provisioner secrets specified, Both must be specified",
        ),
        (
            {P + "provisioner-secret-name": "", P + "provisioner-secret-namespace": "ns"},
            "failed to get name and namespace template from params: Provisioner secrets "
            "specified in parameters but value of either namespace or name is empty",
        ),
        (
            {P + "secret-name": "s"},
            "failed to get default name and namespace template from params: either name and "
            "namespace for Default secrets specified, Both must be specified",
        ),
        (
            {P + "provisioner-secret-name": "s",
             P + "provisioner-secret-namespace": "${pvc.name}"},
            'error resolving value "${pvc.name}": invalid tokens: ["pvc.name"]',
        ),
        (
            {P + "provisioner-secret-name": "s",
             P + "provisioner-secret-namespace": "${pvc.annotations['x']}"},
            "error resolving value \"${pvc.annotations['x']}\": invalid tokens: "
            "[\"pvc.annotations['x']\"]",
        ),
        (
            {P + "provisioner-secret-name": "${pvc.annotations['missing']}${foo}",
             P + "provisioner-secret-namespace": "ns"},
            "error resolving value \"${pvc.annotations['missing']}${foo}\": invalid tokens: "
            "[\"foo\" \"pvc.annotations['missing']\"]",
        ),
        (
            {P + "provisioner-secret-name": "s", P + "provisioner-secret-namespace": "Bad_NS"},
            '"Bad_NS" is not a valid namespace name',
        ),
        (
            {P + "provisioner-secret-name": "s",
             P + "provisioner-secret-namespace": "${pvc.namespace}-X"},
            '"${pvc.namespace}-X" resolved to "team-a-X" which is not a valid namespace name',
        ),
        (
            {P + "provisioner-secret-name": "${pvc.name}_x",
             P + "provisioner-secret-namespace": "ns"},
            '"${pvc.name}_x" resolved to "data_x" which is not a valid secret name',
        ),
    ],
)  # fmt: skip
def test_secret_reference_errors(params: dict[str, str], message: str) -> None:
    with pytest.raises(SecretParamError) as exc:
        ref(params)
    assert str(exc.value) == message


def test_no_annotations_at_deletion_time() -> None:
    params = {
        P + "provisioner-secret-name": "${pvc.annotations['a']}",
        P + "provisioner-secret-namespace": "ns",
    }
    with pytest.raises(SecretParamError, match="invalid tokens"):
        secret_reference(
            secrets.PROVISIONER, sc_params=params, pv_name="p", pvc_name="n",
            pvc_namespace="ns", pvc_annotations=None,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("template", "expanded", "missing"),
    [
        ("plain", "plain", set()),
        ("${a}-${b}", "1-2", set()),
        ("$a$b", "12", set()),
        ("x$", "x$", set()),  # trailing $ stays
        ("${}", "", set()),  # bad syntax eaten
        ("${a", "a", set()),  # unterminated: "${" eaten
        ("$-x", "x", {"-"}),  # special variable
        ("$a.b", "1.b", set()),
        ("${c}", "", {"c"}),
        ("$$", "", {"$"}),
    ],
)
def test_go_expand(template: str, expanded: str, missing: set[str]) -> None:
    got, unknown = go_expand(template, {"a": "1", "b": "2"})
    assert (got, unknown) == (expanded, missing)
