"""chain-complete: the chain the server presents builds to a trust anchor on its own,
without intermediates from anywhere else (clients that do not fetch or cache
intermediates fail against an incomplete chain)."""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509 import verification

from mtls_audit.checks.base import Check, Evidence, Finding, Needs, Severity, Status
from mtls_audit.checks.common import describe_certificate, presented_chain, unscannable
from mtls_audit.scanner.model.certificates import issuer_text, subject_text

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
        "trust_anchors": [subject_text(c) for c in anchors],
    }
    if not chain:
        return CHECK.finding(Status.ERROR, "the server presented no certificate", **facts)
    if not anchors:
        return CHECK.finding(Status.ERROR, "no trust anchors configured for this target", **facts)
    try:
        built, error = _build_path(chain, anchors, evidence.now)
    except ValueError as problem:  # a certificate cryptography cannot read
        return CHECK.finding(Status.ERROR, f"cannot validate the presented chain: {problem}", **facts)
    if built is not None:
        return CHECK.finding(
            Status.PASS,
            f"presented chain of {len(chain)} builds to {subject_text(built[-1])}",
            built_path=[subject_text(c) for c in built],
            **facts,
        )
    anchor = _signature_path_to_anchor(chain, anchors)
    if anchor is not None:
        # Every link verifies, but no single moment has all of them in date: a
        # dating problem (expiry-soon reports it), not a missing intermediate.
        return CHECK.finding(
            Status.PASS,
            f"presented chain of {len(chain)} links to {subject_text(anchor)} "
            "(their validity periods never overlap; see expiry-soon)",
            **facts,
        )
    return CHECK.finding(
        Status.FAIL,
        f"no path to a trust anchor from the presented chain: {_diagnose(chain, anchors, error)}",
        REMEDIATION,
        **facts,
    )


def _build_path(
    chain: list[x509.Certificate], anchors: list[x509.Certificate], now: datetime
) -> tuple[list[x509.Certificate] | None, Exception | None]:
    """cryptography's path builder, at the first moment that works: dates are
    expiry-soon's business, so an expired certificate must not pass for a missing
    intermediate."""
    error: Exception | None = None
    for moment in _candidate_times(chain, anchors, now):
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(anchors))
            .time(moment)
            # Path building only: names are san-match's job.
            .extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=verification.ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        try:
            return list(verifier.verify(chain[0], chain[1:]).chain), None
        except verification.VerificationError as failure:
            error = error or failure
    return None, error


def _candidate_times(chain: list[x509.Certificate], anchors: list[x509.Certificate], now: datetime) -> list[datetime]:
    """Now, then a moment inside the presented chain's common validity, then the
    middle of each anchor's validity clipped to that window."""
    start = max(c.not_valid_before_utc for c in chain)
    end = min(c.not_valid_after_utc for c in chain)
    moments = [now]
    if start <= end:
        moments.append(min(max(now, start), end))
        for anchor in anchors:
            low, high = max(start, anchor.not_valid_before_utc), min(end, anchor.not_valid_after_utc)
            if low <= high:
                moments.append(low + (high - low) / 2)
    return list(dict.fromkeys(moments))


def _signature_path_to_anchor(
    chain: list[x509.Certificate], anchors: list[x509.Certificate]
) -> x509.Certificate | None:
    """The anchor reached by following issuer signatures through the presented
    certificates, ignoring dates; None when the links break."""
    current, remaining = chain[0], list(chain[1:])
    for _ in range(len(chain)):
        for anchor in anchors:
            if _issued_by(current, anchor):
                return anchor
        parent = next((c for c in remaining if _issued_by(current, c)), None)
        if parent is None:
            return None
        remaining.remove(parent)
        current = parent
    return None


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _diagnose(chain: list[x509.Certificate], anchors: list[x509.Certificate], error: Exception | None) -> str:
    last = chain[-1]
    known = {subject_text(c) for c in chain} | {subject_text(c) for c in anchors}
    if issuer_text(last) not in known:
        return (
            f"the chain ends at {subject_text(last)}, whose issuer "
            f"{issuer_text(last)} is neither presented nor a trust anchor"
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
