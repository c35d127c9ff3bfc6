"""Self-signed certificate written by `merpati init`."""

from __future__ import annotations

import ipaddress
import stat

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from merpati.admin.certs import generate_self_signed


def test_certificate_names_key_mode_and_pairing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cert_path, key_path = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    generate_self_signed(cert_path, key_path, "mail.example.test")

    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mail.example.test", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


def test_existing_key_file_is_narrowed_to_0600(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key_path = tmp_path / "key.pem"
    key_path.write_text("old")
    key_path.chmod(0o644)
    generate_self_signed(tmp_path / "cert.pem", key_path, "localhost")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((tmp_path / "cert.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
