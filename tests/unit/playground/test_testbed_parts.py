"""Pure parts of the testbed: RBAC data, object builders, sidecar command lines, keys, paths."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from csi_sidecars.playground import binaries, objects, pki, rbac, sidecars


def _rules(role_name: str, identity: str) -> list[dict[str, object]]:
    for role in rbac.cluster_roles(identity):
        if role["metadata"]["name"] == role_name:
            return list(role["rules"])
    raise AssertionError(f"no ClusterRole {role_name}")


def _allows(rules: list[dict[str, object]], group: str, resource: str, verb: str) -> bool:
    return any(
        group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"]  # type: ignore[operator]
        for r in rules
    )


# identity, ClusterRole, API group ("core" = ""), resource, verb, allowed
RULE_CASES = """
csi-provisioner external-provisioner-runner core persistentvolumes create yes
csi-provisioner external-provisioner-runner core persistentvolumeclaims update yes
csi-provisioner external-provisioner-runner core persistentvolumeclaims delete no
csi-provisioner external-provisioner-cfg storage.k8s.io csistoragecapacities create yes
csi-attacher external-attacher-runner core persistentvolumes create no
csi-attacher external-attacher-runner storage.k8s.io volumeattachments/status patch yes
csi-resizer external-resizer-runner core persistentvolumeclaims/status patch yes
csi-snapshotter external-snapshotter-runner snapshot.storage.k8s.io volumesnapshotcontents patch yes
snapshot-controller snapshot-controller-runner snapshot.storage.k8s.io volumesnapshots delete yes
snapshot-controller snapshot-controller-runner core persistentvolumes update no
"""


@pytest.mark.parametrize("case", RULE_CASES.strip().splitlines())
def test_rbac_rules_match_the_go_sidecars(case: str) -> None:
    identity, role, group, resource, verb, allowed = case.split()
    group = "" if group == "core" else group
    assert _allows(_rules(role, identity), group, resource, verb) is (allowed == "yes")


def test_every_identity_has_a_file_and_cluster_roles_get_bindings() -> None:
    for identity in rbac.IDENTITIES:
        objs = rbac.cluster_objects(identity)
        roles = [o for o in objs if o["kind"] == "ClusterRole"]
        bindings = [o for o in objs if o["kind"] == "ClusterRoleBinding"]
        namespaced = rbac.namespace_bindings(identity, "ns1")
        # every ClusterRole is bound exactly once, either cluster-wide or per namespace
        assert len(bindings) + len(namespaced) == len(roles)
        for b in bindings + namespaced:
            assert b["subjects"] == [
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": identity}
            ]
        for b in namespaced:
            assert b["metadata"]["namespace"] == "ns1"
            assert (
                rbac.api_path(b) == "/apis/rbac.authorization.k8s.io/v1/namespaces/ns1/rolebindings"
            )
    assert rbac.cluster_objects("node-driver-registrar") == []


def test_leases_are_namespaced_not_cluster_wide() -> None:
    for identity in ("csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter"):
        for obj in rbac.cluster_objects(identity):
            if obj["kind"] != "ClusterRole":
                continue
            scope = obj["metadata"]["annotations"][rbac.BIND_ANNOTATION]
            has_leases = _allows(obj["rules"], "coordination.k8s.io", "leases", "create")
            assert has_leases == (scope == "namespace"), obj["metadata"]["name"]


def test_node_is_shaped_like_kubelet_registers_it() -> None:
    node = objects.node("node-7")
    assert node["metadata"]["labels"][objects.TOPOLOGY_KEY] == "node-7"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node-7"
    assert node["metadata"]["annotations"][objects.CONTROLLER_MANAGED_ATTACH] == "true"
    status = objects.node_status()["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert status["allocatable"]["pods"] == "110"


def test_csinode_driver_entry_replaces_its_namesake() -> None:
    csinode = objects.csinode("n", "uid-1")
    assert csinode["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    csinode["spec"]["drivers"] = [
        objects.csinode_driver("other", "x"),
        objects.csinode_driver("d", "old"),
    ]
    entry = objects.csinode_driver("d", "n", [objects.TOPOLOGY_KEY], allocatable_count=3)
    drivers = objects.with_driver(csinode, entry)
    assert [d["name"] for d in drivers] == ["other", "d"]
    assert drivers[1] == {
        "name": "d",
        "nodeID": "n",
        "topologyKeys": [objects.TOPOLOGY_KEY],
        "allocatable": {"count": 3},
    }


def test_sidecar_argv_python_and_go_differ_only_in_the_program(tmp_path: Path) -> None:
    go = tmp_path / "csi-provisioner"
    go.write_text("#!/bin/sh\n")
    go.chmod(0o755)
    common = {"csi_address": "/s/csi.sock", "kubeconfig": Path("/k/p.kubeconfig")}
    py = sidecars.argv("provisioner", ["--timeout=30s"], **common)  # type: ignore[arg-type]
    gov = sidecars.argv(
        "provisioner",
        ["--timeout=30s"],
        implementation="go",
        bin_dir=tmp_path,
        **common,  # type: ignore[arg-type]
    )
    assert py[:4] == [sys.executable, "-m", "csi_sidecars", "provisioner"]
    assert gov[0] == str(go)
    assert (
        py[4:]
        == gov[1:]
        == [
            "--csi-address=/s/csi.sock",
            "--kubeconfig=/k/p.kubeconfig",
            "-v=5",
            "--timeout=30s",
        ]
    )
    # snapshot-controller takes no --csi-address
    assert not any(
        a.startswith("--csi-address")
        for a in sidecars.argv("snapshot-controller", csi_address="/x")
    )
    with pytest.raises(ValueError, match="no Go binary"):
        sidecars.argv("livenessprobe", implementation="go")
    with pytest.raises(FileNotFoundError, match=r"build\.sh"):
        sidecars.argv("attacher", implementation="go", bin_dir=tmp_path)


def test_bin_dir_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CSI_SIDECARS_BIN_DIR", raising=False)
    monkeypatch.delenv("CSI_SIDECARS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert binaries.default_bin_dir() == tmp_path / "xdg" / "csi-sidecars" / "bin"
    monkeypatch.setenv("CSI_SIDECARS_CACHE", str(tmp_path / "cache"))
    assert binaries.default_bin_dir() == tmp_path / "cache" / "bin"
    monkeypatch.setenv("CSI_SIDECARS_BIN_DIR", str(tmp_path / "bin"))
    assert binaries.default_bin_dir() == tmp_path / "bin"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "etcd").write_text("")
    (tmp_path / "bin" / "etcd").chmod(0o755)
    (tmp_path / "bin" / "kubectl").write_text("")  # not executable
    assert binaries.missing(["etcd", "kubectl", "kube-apiserver"]) == ["kubectl", "kube-apiserver"]


def test_pki_serving_cert_is_signed_by_ca_for_loopback(tmp_path: Path) -> None:
    files = pki.generate(tmp_path / "pki")
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(files.serving_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC)
    assert files.serving_key.stat().st_mode & 0o077 == 0
    assert files.sa_key.stat().st_mode & 0o077 == 0
    assert b"PUBLIC KEY" in files.sa_pub.read_bytes()
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_kcm_client_qps_and_burst_only_when_asked(tmp_path: Path) -> None:
    from csi_sidecars.playground.controlplane import ControlPlane

    def kcm_flags(cp: ControlPlane) -> list[str]:
        cp._pki = pki.generate(tmp_path / "pki")
        cp.work_dir = tmp_path
        cp._write_identities()
        return [a for a in cp._kcm_args(1234) if a.startswith("--kube-api-")]

    assert kcm_flags(ControlPlane(bin_dir=tmp_path)) == []
    fast = ControlPlane(bin_dir=tmp_path, kcm_qps=500, kcm_burst=1000)
    assert kcm_flags(fast) == ["--kube-api-qps=500", "--kube-api-burst=1000"]
