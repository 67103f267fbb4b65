"""san-match: the server certificate's subjectAltName covers the name clients use
(DNS name, or IP address). A CN-only certificate fails: RFC 6125 and every modern
client ignore the CN.

With ``server_identity: spiffe://...`` the leaf is also read as an X.509-SVID: it
must carry exactly one URI SAN, and that must be the expected SPIFFE ID (compared by
the SPIFFE rules, never as a substring). The DNS/IP match then applies only when the
inventory gives a server_name: Istio-style leaves carry no DNS name."""

from __future__ import annotations

import ipaddress
from typing import Any

import service_identity
from cryptography import x509
from service_identity.cryptography import verify_certificate_hostname, verify_certificate_ip_address

from mtls_audit.checks.base import Check, Evidence, Finding, Severity, Status
from mtls_audit.checks.common import presented_chain, unscannable
from mtls_audit.scanner.model.certificates import alternative_names, subject_text
from mtls_audit.scanner.model.minting import subject_alternative_names
from mtls_audit.scanner.model.spiffe import parse_spiffe_id, same_spiffe_id

SPIFFE_REMEDIATION = (
    "Issue the workload's X.509-SVID with exactly one URI SAN, its SPIFFE ID "
    "(SPIRE registration entry, Istio service account, cert-manager `uris`)."
)

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
    target = evidence.target
    expected = target.server_name
    names = alternative_names(leaf)
    facts: dict[str, Any] = {"subject": subject_text(leaf), "subject_alternative_names": names}
    spiffe_passed = ""
    if target.server_identity is not None:
        facts["expected_spiffe_id"] = target.server_identity
        problem = _spiffe_problem(leaf, target.server_identity)
        if problem:
            return CHECK.finding(Status.FAIL, problem, SPIFFE_REMEDIATION, **facts)
        spiffe_passed = f"the certificate is an X.509-SVID for {target.server_identity}"
        if not target.match_server_name:
            return CHECK.finding(Status.PASS, spiffe_passed, **facts)
    facts["expected"] = expected
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
    covered = f"the certificate covers {expected}"
    return CHECK.finding(Status.PASS, f"{spiffe_passed} and {covered}" if spiffe_passed else covered, **facts)


def _spiffe_problem(leaf, expected: str) -> str | None:
    """Why ``leaf`` is not an X.509-SVID for ``expected``, or None."""
    uris = [n.value for n in subject_alternative_names(leaf) if isinstance(n, x509.UniformResourceIdentifier)]
    if not uris:
        return f"the certificate has no URI SAN; expected the SPIFFE ID {expected}"
    if len(uris) > 1:
        return f"an X.509-SVID carries exactly one URI SAN; this certificate has {len(uris)} ({', '.join(uris)})"
    if not same_spiffe_id(uris[0], parse_spiffe_id(expected)):
        return f"the certificate's SPIFFE ID is {uris[0]}, not {expected}"
    return None


CHECK = Check(
    id="san-match",
    title="SAN matches the server name",
    severity=Severity.HIGH,
    needs=frozenset(),
    description="the server certificate's SAN matches the expected name (DNS or IP; a CN-only cert fails)",
    evaluate=evaluate,
)
