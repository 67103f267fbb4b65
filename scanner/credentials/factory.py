"""Minting certificates in memory with ``cryptography``: the demo lab's PKI and the
impostor identities the prober presents."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: accepted everywhere, and fast enough to mint per run.
    return ec.generate_private_key(ec.SECP256R1())


def common_name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey


def issue(
    subject: x509.Name,
    *,
    issuer: Issued | None = None,
    is_ca: bool = False,
    subject_alternative_names: Sequence[x509.GeneralName] = (),
    extended_key_usages: Sequence[x509.ObjectIdentifier] = (),
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> Issued:
    """Issue a certificate; self-signed when ``issuer`` is None."""
    now = datetime.datetime.now(datetime.UTC)
    key = key or new_key()
    issuer_name = issuer.certificate.subject if issuer else subject
    signing_key = issuer.private_key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
        .not_valid_after(not_after or now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()),
            critical=False,
        )
    if is_ca:
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
    else:
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
    builder = builder.add_extension(usage, critical=True)
    if subject_alternative_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(subject_alternative_names)), critical=False)
    if extended_key_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usages)), critical=False)
    return Issued(builder.sign(signing_key, hashes.SHA256()), key)


SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
