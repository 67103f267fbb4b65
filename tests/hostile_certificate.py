"""A server certificate written by an attacker: markup, quotes, newlines and
terminal escapes in CN, O and SAN, and a chain certificate whose name holds bytes
that are not UTF-8 (a TeletexString OpenSSL accepts and `cryptography` cannot
decode)."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from mtls_audit.scanner.credentials.factory import SERVER_AUTH, issue
from mtls_audit.scanner.lab.pki import LabPKI

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '"><img src=x onerror="window.__pwned=1">'
ANSI = "\x1b[31m\x1b[2J"
HOSTILE_CN = f"{SCRIPT}\nline2 {ANSI}red"
HOSTILE_O = IMG
HOSTILE_SANS = (f"{SCRIPT}.example", "evil\nname\x1b[31m.example")
NOT_UTF8 = b"\xff\xfe\x80\x1b"


def hostile_chain(pki: LabPKI):
    """(chain as the server sends it, the leaf's key)."""
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE_CN),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, HOSTILE_O),
        ]
    )
    leaf = issue(
        subject,
        issuer=pki.server_intermediate,
        subject_alternative_names=[x509.DNSName(name) for name in HOSTILE_SANS],
        extended_key_usages=[SERVER_AUTH],
    )
    marker = b"QQQQ"
    odd = issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, "chain cert with a Teletex name"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, marker.decode(), _type=_ASN1Type.T61String),
            ]
        ),
        is_ca=True,
    )
    # Patch the bytes in after signing: the signature no longer verifies, which
    # nobody checks here; what matters is that the bytes reach the scanner.
    undecodable = x509.load_der_x509_certificate(odd.certificate.public_bytes(Encoding.DER).replace(marker, NOT_UTF8))
    return (leaf.certificate, undecodable), leaf.private_key
