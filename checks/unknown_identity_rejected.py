"""unknown-identity-rejected: where access rules exist, a valid certificate from the
trusted CA that names no known identity is refused ("default deny"): one with no
SAN at all (the identity only in the CN), and one with a SPIFFE ID no rule names.

A server that lets these in authorizes on the CN, or lets any certificate from its
CA in. Needs the inventory's ``issuer``."""

from __future__ import annotations

from mtls_audit.checks.base import Check, Evidence, Finding, Needs, Severity, Status
from mtls_audit.checks.minted_copies import NO_ISSUER, evaluate_copies
from mtls_audit.scanner.model.observations import Presented

VARIANTS = (Presented.CN_ONLY, Presented.UNKNOWN_SPIFFE_ID)

REMEDIATION = (
    "Authorize on the certificate's SAN (the SPIFFE ID) with an explicit allow list and deny "
    'everything else: not on the subject CN, and not on "any certificate from our CA".'
)


def evaluate(evidence: Evidence) -> Finding:
    if evidence.target.issuer is None:
        return CHECK.finding(Status.SKIP, NO_ISSUER)
    if not evidence.target.access:
        return CHECK.finding(Status.SKIP, "the target declares no access rules, so no identity is unknown to it")
    return evaluate_copies(evidence, CHECK, VARIANTS, REMEDIATION)


CHECK = Check(
    id="unknown-identity-rejected",
    title="Unknown identities from the trusted CA rejected",
    severity=Severity.HIGH,
    needs=frozenset({Needs.MINTED}),
    description=(
        "copies of the identity from the issuer without a SAN, or with a SPIFFE ID no rule names, "
        "are blocked (skips without an issuer or access rules)"
    ),
    evaluate=evaluate,
    mtls=True,
)
