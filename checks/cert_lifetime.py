"""cert-lifetime: the server leaf is short-lived. The guide recommends 24-72 hour
certificates with automatic rotation; the default ceiling is 398 days, the public
web's, and a mesh sets ``max_cert_lifetime_days: 3``."""

from __future__ import annotations

from typing import Any

from mtls_audit.checks.base import Check, Evidence, Finding, Severity, Status
from mtls_audit.checks.common import presented_chain, unscannable
from mtls_audit.scanner.model.certificates import subject_text

REMEDIATION = (
    "Issue short-lived server certificates and rotate them automatically "
    "(cert-manager `duration`, SPIRE `default_x509_svid_ttl`, Vault PKI `ttl`)."
)


def evaluate(evidence: Evidence) -> Finding:
    chain = presented_chain(evidence)
    if not chain:
        return CHECK.finding(Status.ERROR, unscannable(evidence) or "the server presented no certificate")
    leaf = chain[0]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    days = lifetime.total_seconds() / 86400
    ceiling = evidence.target.max_cert_lifetime_days
    facts: dict[str, Any] = {
        "subject": subject_text(leaf),
        "not_before": leaf.not_valid_before_utc.isoformat(),
        "not_after": leaf.not_valid_after_utc.isoformat(),
        "lifetime_days": round(days, 2),
        "max_cert_lifetime_days": ceiling,
    }
    if days > ceiling:
        return CHECK.finding(
            Status.WARN,
            f"the server certificate is valid for {days:.1f} days, more than the {ceiling} allowed",
            REMEDIATION,
            **facts,
        )
    return CHECK.finding(
        Status.PASS, f"the server certificate is valid for {days:.1f} days (at most {ceiling})", **facts
    )


CHECK = Check(
    id="cert-lifetime",
    title="Server certificate is short-lived",
    severity=Severity.LOW,
    needs=frozenset(),
    description="the server leaf's total validity is at most max_cert_lifetime_days (default 398)",
    evaluate=evaluate,
)
