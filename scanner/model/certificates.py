"""Certificates as text for evidence and reports.

A server's certificate is attacker-controlled. Its names may hold markup, control
characters, or bytes `cryptography` refuses to decode (OpenSSL accepts a
TeletexString of any bytes; `cryptography` raises ValueError on first access to
the subject). Every place that shows a certificate goes through here, so an
undecodable name is shown as such instead of crashing a check.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from mtls_audit.scanner.model.report import CertificateSummary


def subject_text(certificate: x509.Certificate) -> str:
    try:
        # X.509-SVIDs may have an empty subject: the URI SAN is the identity.
        return certificate.subject.rfc4514_string() or "<empty subject>"
    except ValueError:
        return "<undecodable subject>"


def issuer_text(certificate: x509.Certificate) -> str:
    try:
        return certificate.issuer.rfc4514_string()
    except ValueError:
        return "<undecodable issuer>"


def alternative_names(certificate: x509.Certificate) -> list[str]:
    """``DNS:…``, ``IP:…``, ``URI:…`` entries of the subjectAltName, in that order."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    except ValueError:
        return ["<undecodable subjectAltName>"]
    names = [f"DNS:{n}" for n in san.get_values_for_type(x509.DNSName)]
    names += [f"IP:{n}" for n in san.get_values_for_type(x509.IPAddress)]
    names += [f"URI:{n}" for n in san.get_values_for_type(x509.UniformResourceIdentifier)]
    return names


def certificate_summary(certificate: x509.Certificate) -> CertificateSummary:
    """Public facts about a certificate, for reports (reporters must escape them)."""
    return CertificateSummary(
        subject=subject_text(certificate),
        issuer=issuer_text(certificate),
        serial=format(certificate.serial_number, "x"),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        subject_alternative_names=tuple(alternative_names(certificate)),
        sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        pem=certificate.public_bytes(Encoding.PEM).decode("ascii"),
    )
