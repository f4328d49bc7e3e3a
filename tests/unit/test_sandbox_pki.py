"""The sandbox PKI: certificates chain to the CA, carry the identities RBAC expects, and are kept on re-run."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from quantfleet_dev.sandbox import pki


def _cert(d: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((d / f"{name}.crt").read_bytes())


def test_every_leaf_is_signed_by_the_ca(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path)
    ca = _cert(tmp_path, "ca")
    ca_key = ca.public_key()
    assert isinstance(ca_key, ec.EllipticCurvePublicKey)
    for name in ["apiserver", *(c.file for c in pki.CLIENTS)]:
        leaf = _cert(tmp_path, name)
        leaf.verify_directly_issued_by(ca)


def test_identities(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path)
    admin = _cert(tmp_path, "admin")
    assert [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    kcm = _cert(tmp_path, "kube-controller-manager")
    assert kcm.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-controller-manager"
    usage = kcm.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage


def test_serving_cert_names(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path)
    san = _cert(tmp_path, "apiserver").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    assert {"localhost", "kubernetes.default"} <= set(san.get_values_for_type(x509.DNSName))


def test_second_run_keeps_existing_keys(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    pki.ensure_pki(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert (tmp_path / "ca.key").stat().st_mode & 0o077 == 0


def test_kubeconfig_embeds_credentials(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path)
    cfg = pki.kubeconfig(
        "https://127.0.0.1:1", tmp_path / "ca.crt", tmp_path / "admin.crt", tmp_path / "admin.key", "a"
    )
    user = cfg["users"][0]["user"]  # type: ignore[index]
    assert set(user) == {"client-certificate-data", "client-key-data"}
