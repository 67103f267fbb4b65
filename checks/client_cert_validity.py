"""client-cert-validity: a certificate from the trusted CA that is expired, not yet
valid, or not meant for client authentication (EKU serverAuth only) is refused.

Needs the inventory's ``issuer`` (a test CA the server trusts) to mint the copies."""

from __future__ import annotations

from mtls_audit.checks.base import Check, Evidence, Finding, Needs, Severity
from mtls_audit.checks.minted_copies import evaluate_copies
from mtls_audit.scanner.model.observations import Presented

VARIANTS = (Presented.EXPIRED, Presented.NOT_YET_VALID, Presented.SERVER_AUTH_ONLY)

REMEDIATION = (
    "Verify client certificates with the standard chain verifier (validity dates and "
    "extendedKeyUsage clientAuth included): nginx `ssl_verify_client on`, Go "
    "`tls.RequireAndVerifyClientCert`; a custom VerifyPeerCertificate or verify callback "
    "must not skip the time or purpose checks."
)


def evaluate(evidence: Evidence) -> Finding:
    return evaluate_copies(evidence, CHECK, VARIANTS, REMEDIATION)


CHECK = Check(
    id="client-cert-validity",
    title="Expired, not-yet-valid and wrong-EKU client certificates rejected",
    severity=Severity.CRITICAL,
    needs=frozenset({Needs.MINTED}),
    description=(
        "copies of the identity from the issuer that are expired, not yet valid, or serverAuth-only "
        "are blocked (skips without an issuer)"
    ),
    evaluate=evaluate,
    mtls=True,
)
