"""chain-complete: the chain the server presents builds to a trust anchor on its own,
without intermediates from anywhere else (clients that do not fetch or cache
intermediates fail against an incomplete chain)."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.x509 import verification

from checks.base import Check, Evidence, Finding, Needs, Severity, Status
from checks.common import describe_certificate, presented_chain, unscannable

REMEDIATION = (
    "Serve the leaf followed by every intermediate up to (not including) the root: "
    "nginx `ssl_certificate` pointing at a fullchain file, HAProxy `crt` with the chain appended, "
    "Envoy `certificate_chain` with the intermediates."
)


def evaluate(evidence: Evidence) -> Finding:
    reason = unscannable(evidence)
    if reason:
        return CHECK.finding(Status.ERROR, reason)
    chain = presented_chain(evidence)
    anchors = list(evidence.target.trust_anchors)
    facts = {
        "presented": [describe_certificate(c) for c in chain],
        "trust_anchors": [c.subject.rfc4514_string() for c in anchors],
    }
    if not chain:
        return CHECK.finding(Status.ERROR, "the server presented no certificate", **facts)
    if not anchors:
        return CHECK.finding(Status.ERROR, "no trust anchors configured for this target", **facts)
    try:
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(anchors))
            .time(_validation_time(chain + anchors, evidence.now))
            # Path building only: names are san-match's job, dates expiry-soon's.
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=verification.ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        built = verifier.verify(chain[0], chain[1:])
    except verification.VerificationError as error:
        return CHECK.finding(
            Status.FAIL,
            f"no path to a trust anchor from the presented chain: {_diagnose(chain, anchors, error)}",
            REMEDIATION,
            **facts,
        )
    except ValueError as error:  # a certificate cryptography cannot read
        return CHECK.finding(Status.ERROR, f"cannot validate the presented chain: {error}", **facts)
    return CHECK.finding(
        Status.PASS,
        f"presented chain of {len(chain)} builds to {built.chain[-1].subject.rfc4514_string()}",
        built_path=[c.subject.rfc4514_string() for c in built.chain],
        **facts,
    )


def _validation_time(certificates: list[x509.Certificate], now: datetime) -> datetime:
    """A moment at which every certificate involved is within its validity period,
    so an expired certificate does not mask a missing intermediate. Falls back to
    now when no such moment exists."""
    start = max(c.not_valid_before_utc for c in certificates)
    end = min(c.not_valid_after_utc for c in certificates)
    if start > end:
        return now
    return min(max(now, start), end)


def _diagnose(chain: list[x509.Certificate], anchors: list[x509.Certificate], error: Exception) -> str:
    last = chain[-1]
    known = {c.subject for c in chain} | {c.subject for c in anchors}
    if last.issuer not in known:
        return (
            f"the chain ends at {last.subject.rfc4514_string()}, whose issuer "
            f"{last.issuer.rfc4514_string()} is neither presented nor a trust anchor"
        )
    return str(error)


CHECK = Check(
    id="chain-complete",
    title="Chain complete",
    severity=Severity.MEDIUM,
    needs=frozenset({Needs.VERSIONS}),
    description="the presented chain builds to the trust anchor without outside intermediates",
    evaluate=evaluate,
)
