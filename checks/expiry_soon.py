"""expiry-soon: every certificate involved stays valid beyond the warning horizon:
the server leaf and the rest of its presented chain, the scanner's own client
identity, and the trust anchors. Inside the horizon warns; expired or not yet
valid fails."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mtls_audit.checks.base import Check, Evidence, Finding, Severity, Status
from mtls_audit.checks.common import presented_chain, unscannable
from mtls_audit.scanner.model.certificates import subject_text

REMEDIATION = "Renew the certificate before it expires and automate renewal (ACME, cert-manager, Vault PKI)."


def evaluate(evidence: Evidence) -> Finding:
    target = evidence.target
    chain = presented_chain(evidence)
    reason = unscannable(evidence) if not chain else None
    involved = [("server leaf" if i == 0 else "server chain", c) for i, c in enumerate(chain)]
    if target.identity is not None:
        credential = target.identity.credential
        involved.append(("client identity", credential.certificate))
        involved += [("client identity chain", c) for c in credential.chain]
    involved += [("trust anchor", c) for c in target.trust_anchors]

    horizon = timedelta(days=target.expiry_warning_days)
    certificates: list[dict[str, Any]] = []
    expired: list[str] = []
    expiring: list[str] = []
    for role, certificate in involved:
        not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        left = not_after - evidence.now
        label = f"{role} {subject_text(certificate)}"
        certificates.append(
            {
                "role": role,
                "subject": subject_text(certificate),
                "not_before": not_before.isoformat(),
                "not_after": not_after.isoformat(),
                "days_left": round(left.total_seconds() / 86400, 1),
            }
        )
        if evidence.now < not_before:
            expired.append(f"{label} is not valid until {not_before.date()}")
        elif left.total_seconds() <= 0:
            expired.append(f"{label} expired on {not_after.date()}")
        elif left < horizon:
            days = round(left.total_seconds() / 86400)
            expiring.append(f"{label} expires in {days} day{'' if days == 1 else 's'} ({not_after.date()})")
    facts: dict[str, Any] = {"warning_days": target.expiry_warning_days, "certificates": certificates}
    if expired:
        return CHECK.finding(Status.FAIL, "; ".join(expired), REMEDIATION, **facts)
    if reason:
        return CHECK.finding(Status.ERROR, f"{reason}; server certificates not seen", **facts)
    if expiring:
        return CHECK.finding(Status.WARN, "; ".join(expiring), REMEDIATION, **facts)
    soonest = min(certificates, key=lambda c: c["days_left"])
    return CHECK.finding(
        Status.PASS,
        f"all {len(certificates)} certificates valid beyond {target.expiry_warning_days} days "
        f"(soonest: {soonest['role']}, {soonest['days_left']:.0f} days)",
        **facts,
    )


CHECK = Check(
    id="expiry-soon",
    title="Certificates not expiring soon",
    severity=Severity.HIGH,
    needs=frozenset(),
    description=(
        "the server leaf, every presented cert, the scanner's own identity and the trust anchors "
        "are valid beyond the warning horizon (warn inside it, fail when expired or not yet valid)"
    ),
    evaluate=evaluate,
)
