"""A throwaway PKI and the shipped router_config/ files pointed at it, for mTLS tests."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from zflow.transport.session import SessionOptions

CONFIGS = Path(__file__).resolve().parent.parent / "router_config"


def make_pki(root: Path, names: list[str]) -> None:
    """A throwaway CA and one certificate per common name (SAN localhost/127.0.0.1)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    root.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=2))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("zflow test CA")).issuer_name(name("zflow test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(valid[0]).not_valid_after(valid[1])
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for cn in names:
        key = ec.generate_private_key(ec.SECP256R1())
        san = x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                           x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        cert = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(valid[0]).not_valid_after(valid[1])
                .add_extension(san, critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(ca_key, hashes.SHA256()))
        (root / f"{cn}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (root / f"{cn}-key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def localized(name: str, tmp: Path) -> str:
    """The shipped config with its relative ``certs/`` paths pointing into ``tmp``."""
    text = (CONFIGS / name).read_text().replace('"certs/', f'"{tmp}/certs/')
    out = tmp / name
    out.write_text(text)
    return str(out)


def tls_client(endpoint: str, tmp: Path, cn: str | None) -> SessionOptions:
    extra: dict[str, object] = {"transport/link/tls/root_ca_certificate": str(tmp / "certs/ca.pem")}
    if cn:
        extra.update({"transport/link/tls/connect_certificate": str(tmp / f"certs/{cn}.pem"),
                      "transport/link/tls/connect_private_key": str(tmp / f"certs/{cn}-key.pem"),
                      "transport/link/tls/enable_mtls": True})
    return SessionOptions(mode="client", connect=[endpoint], extra=extra)
