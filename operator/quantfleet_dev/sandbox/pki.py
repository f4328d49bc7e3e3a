"""The sandbox's PKI, generated in Python so `sandbox up` needs no openssl, cfssl or kubeadm.

One CA signs the API server's serving certificate (127.0.0.1, localhost, kubernetes.default...)
and one client certificate per identity: the admin (O=system:masters), kube-controller-manager
and kube-scheduler (the users their bootstrap RBAC roles are bound to) and KWOK (masters: it
writes node and pod status on behalf of every fake kubelet). A separate RSA key signs service
account tokens. Existing files are kept, so a second `up` reuses the same identities.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=3650)
SERVICE_IP = "10.96.0.1"  # first address of the service CIDR the API server is started with


@dataclass(frozen=True)
class ClientIdentity:
    file: str  # <file>.crt / <file>.key
    common_name: str
    organizations: tuple[str, ...] = ()


CLIENTS = (
    ClientIdentity("admin", "quantfleet-admin", ("system:masters",)),
    ClientIdentity("kube-controller-manager", "system:kube-controller-manager"),
    ClientIdentity("kube-scheduler", "system:kube-scheduler"),
    ClientIdentity("kwok", "kwok-controller", ("system:masters",)),
    # Identities of their own so the API server's audit log can tell the operator's requests (and the fleet
    # benchmark's floor client's) from everyone else's.
    ClientIdentity("operator", "quantfleet-operator", ("system:masters",)),
    ClientIdentity("floor", "quantfleet-floor", ("system:masters",)),
)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("sandbox CA key is not an EC key")
    return cert, key


def _ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if (directory / "ca.crt").exists() and (directory / "ca.key").exists():
        return _load_ca(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name("quantfleet-sandbox-ca")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(directory / "ca.key", key)
    _write_cert(directory / "ca.crt", cert)
    return cert, key


def _leaf(
    directory: Path,
    file: str,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    sans: list[x509.GeneralName] | None = None,
) -> None:
    if (directory / f"{file}.crt").exists() and (directory / f"{file}.key").exists():
        return
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    _write_key(directory / f"{file}.key", key)
    _write_cert(directory / f"{file}.crt", builder.sign(ca_key, hashes.SHA256()))


def serving_sans() -> list[x509.GeneralName]:
    dns = [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    ips = ["127.0.0.1", SERVICE_IP]
    return [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]


def ensure_pki(directory: Path) -> Path:
    """Create (or keep) every key and certificate the sandbox needs under `directory`; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca = _ca(directory)
    _leaf(directory, "apiserver", _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, ca, serving_sans())
    for client in CLIENTS:
        subject = _name(client.common_name, client.organizations)
        _leaf(directory, client.file, subject, ExtendedKeyUsageOID.CLIENT_AUTH, ca)
    if not (directory / "sa.key").exists():
        sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(directory / "sa.key", sa)
        pub = sa.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        (directory / "sa.pub").write_bytes(pub)
    return directory


def kubeconfig(server: str, ca_file: Path, cert_file: Path, key_file: Path, user: str) -> dict[str, object]:
    """A self-contained kubeconfig (certificates embedded), readable by kubectl, client-go and the Python client."""

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "quantfleet-sandbox", "cluster": {"server": server, "certificate-authority-data": b64(ca_file)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate-data": b64(cert_file), "client-key-data": b64(key_file)}}
        ],
        "contexts": [{"name": "quantfleet-sandbox", "context": {"cluster": "quantfleet-sandbox", "user": user}}],
        "current-context": "quantfleet-sandbox",
        "preferences": {},
    }
