"""san-match: the server certificate's subjectAltName covers the name clients use
(DNS name, or IP address). A CN-only certificate fails: RFC 6125 and every modern
client ignore the CN."""

from __future__ import annotations

import ipaddress
from typing import Any

import service_identity
from service_identity.cryptography import verify_certificate_hostname, verify_certificate_ip_address

from mtls_audit.checks.base import Check, Evidence, Finding, Severity, Status
from mtls_audit.checks.common import presented_chain, unscannable
from mtls_audit.scanner.model.certificates import alternative_names, subject_text

REMEDIATION = (
    "Reissue the server certificate with the service's name in subjectAltName "
    "(e.g. `subjectAltName = DNS:api.internal`); clients ignore the CN."
)


def evaluate(evidence: Evidence) -> Finding:
    reason = unscannable(evidence)
    if reason:
        return CHECK.finding(Status.ERROR, reason)
    chain = presented_chain(evidence)
    if not chain:
        return CHECK.finding(Status.ERROR, "the server presented no certificate")
    leaf = chain[0]
    expected = evidence.target.server_name
    names = alternative_names(leaf)
    facts: dict[str, Any] = {"expected": expected, "subject": subject_text(leaf), "subject_alternative_names": names}
    try:
        try:
            address = ipaddress.ip_address(expected)
        except ValueError:
            verify_certificate_hostname(leaf, expected)
        else:
            verify_certificate_ip_address(leaf, str(address))
    except service_identity.CertificateError:
        return CHECK.finding(
            Status.FAIL, f"the certificate has no subjectAltName; {expected} is not covered", REMEDIATION, **facts
        )
    except service_identity.VerificationError:
        shown = ", ".join(names) or "none"
        return CHECK.finding(
            Status.FAIL, f"{expected} is not among the certificate's names ({shown})", REMEDIATION, **facts
        )
    return CHECK.finding(Status.PASS, f"the certificate covers {expected}", **facts)


CHECK = Check(
    id="san-match",
    title="SAN matches the server name",
    severity=Severity.HIGH,
    needs=frozenset(),
    description="the server certificate's SAN matches the expected name (DNS or IP; a CN-only cert fails)",
    evaluate=evaluate,
)
