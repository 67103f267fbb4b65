"""chain-complete: the chain the server presents builds to a trust anchor on its own,
without intermediates from anywhere else (clients that do not fetch or cache
intermediates fail against an incomplete chain), and the path it builds is valid
apart from dates (an intermediate that is not a CA, lacks keyCertSign or breaks a
path length constraint is rejected by every client, complete or not)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtls_audit.checks.base import Check, Evidence, Finding, Severity, Status
from mtls_audit.checks.common import describe_certificate, presented_chain, unscannable
from mtls_audit.scanner.model.certificates import issuer_text, subject_text

REMEDIATION = (
    "Serve the leaf followed by every intermediate up to (not including) the root: "
    "nginx `ssl_certificate` pointing at a fullchain file, HAProxy `crt` with the chain appended, "
    "Envoy `certificate_chain` with the intermediates."
)
REMEDIATION_INVALID = (
    "Serve the intermediates the CA really issued for this chain, and issue every intermediate as a CA: "
    "basicConstraints CA:TRUE (critical) with a pathLenConstraint that allows the certificates below it, "
    "keyUsage keyCertSign (and cRLSign), and no extendedKeyUsage that leaves out serverAuth."
)

# cryptography's x509.verification checks a certificate's validity period before
# anything else about it, and this is the only failure that depends on the
# validation time. A failure is put down to dates only when it says so AND some
# certificate on the path really is out of date at that moment.
DATE_FAILURE = "not valid at validation time"

# Paths followed by signature alone: a server may send any pile of certificates,
# so the search is bounded (cryptography bounds its own the same way).
_MAX_SIGNATURE_PATHS = 8
_MAX_SIGNATURE_CHECKS = 128


# The profile a CA certificate in a server's chain must meet: cryptography's
# CA/B Forum defaults, with the rules mainstream TLS clients (OpenSSL, Go, Java)
# do not apply put back to RFC 5280, so that a private PKI made the usual way
# (`openssl req -x509`, intermediates without keyUsage) is not reported as broken.
# What stays: basicConstraints cA, keyCertSign when keyUsage is present, an
# extendedKeyUsage that allows serverAuth (cryptography's client verifier, used
# so that names stay san-match's business, would demand clientAuth), and all of
# cryptography's own path building: signatures, pathLenConstraint, name
# constraints, algorithms, unknown critical extensions, dates.
def _basic_constraints(_policy: verification.Policy, _cert: x509.Certificate, value: x509.BasicConstraints) -> None:
    if not value.ca:
        raise ValueError("basicConstraints.cA must be asserted in a CA certificate")


def _key_usage(_policy: verification.Policy, _cert: x509.Certificate, value: x509.KeyUsage | None) -> None:
    if value is not None and not value.key_cert_sign:
        raise ValueError("keyUsage.keyCertSign must be asserted in a CA certificate")


def _extended_key_usage(
    _policy: verification.Policy, _cert: x509.Certificate, value: x509.ExtendedKeyUsage | None
) -> None:
    allowed = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if value is not None and not allowed & set(value):
        raise ValueError("extendedKeyUsage of a CA certificate in a server's chain must allow serverAuth")


_CA_POLICY = (
    verification.ExtensionPolicy.webpki_defaults_ca()
    .require_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC, _basic_constraints)
    .may_be_present(x509.KeyUsage, verification.Criticality.AGNOSTIC, _key_usage)
    .may_be_present(x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _extended_key_usage)
    .may_be_present(x509.AuthorityKeyIdentifier, verification.Criticality.AGNOSTIC, None)
)


@dataclass(frozen=True)
class _Attempt:
    moment: datetime
    built: list[x509.Certificate] | None
    error: verification.VerificationError | None


def evaluate(evidence: Evidence) -> Finding:
    reason = unscannable(evidence)
    if reason:
        return CHECK.finding(Status.ERROR, reason)
    chain = presented_chain(evidence)
    anchors = list(evidence.target.trust_anchors)
    facts: dict[str, Any] = {
        "presented": [describe_certificate(c) for c in chain],
        "trust_anchors": [subject_text(c) for c in anchors],
    }
    if not chain:
        return CHECK.finding(Status.ERROR, "the server presented no certificate", **facts)
    if not anchors:
        return CHECK.finding(Status.ERROR, "no trust anchors configured for this target", **facts)
    try:
        return _judge(chain, anchors, evidence.now, facts)
    except ValueError as problem:  # a certificate cryptography cannot read
        return CHECK.finding(Status.ERROR, f"cannot validate the presented chain: {problem}", **facts)


def _judge(
    chain: list[x509.Certificate], anchors: list[x509.Certificate], now: datetime, facts: dict[str, Any]
) -> Finding:
    # cryptography's path builder, at the first moment that works: dates are
    # expiry-soon's business, so an expired certificate must not pass for a
    # missing intermediate.
    moments = _candidate_times(chain, anchors, now)
    first_error: verification.VerificationError | None = None
    for moment in moments:
        attempt = _attempt(chain, anchors, moment)
        if attempt.built is not None:
            return _built(chain, attempt.built, facts)
        first_error = first_error or attempt.error
    paths = _signature_paths(chain, anchors)
    if not paths:
        return CHECK.finding(
            Status.FAIL,
            f"no path to a trust anchor from the presented chain: {_diagnose(chain, anchors, first_error)}",
            REMEDIATION,
            **facts,
        )

    # The links verify by signature. Only a path that fails for dates alone is
    # complete; anything else the verifier objects to is a real failure. Each
    # path is verified on its own (only its certificates, only its anchor), so
    # the verifier's reason is about that path and no other candidate's.
    dated: list[x509.Certificate] | None = None
    rejected: list[tuple[list[x509.Certificate], str]] = []
    for path in paths:
        attempts = []
        for moment in dict.fromkeys([*moments, _path_moment(path, now)]):
            attempt = _attempt(path[:-1], path[-1:], moment)
            if attempt.built is not None:
                return _built(chain, attempt.built, facts)
            attempts.append(attempt)
        problem = _not_about_dates(path, attempts)
        if problem is None:
            dated = dated or path
        else:
            rejected.append((path, problem))
    if dated is not None:
        # No single moment has the whole path in date: a dating problem
        # (expiry-soon reports it), not a missing intermediate.
        return CHECK.finding(
            Status.PASS,
            f"presented chain of {len(chain)} links to {subject_text(dated[-1])} "
            "(their validity periods never overlap; see expiry-soon)",
            signature_path=[subject_text(c) for c in dated],
            **facts,
        )
    path, problem = rejected[0]
    return CHECK.finding(
        Status.FAIL,
        f"the presented chain links to {subject_text(path[-1])} by signature, but the path is not valid: {problem}",
        REMEDIATION_INVALID,
        signature_path=[subject_text(c) for c in path],
        verifier_error=problem,
        **facts,
    )


def _built(chain: list[x509.Certificate], built: list[x509.Certificate], facts: dict[str, Any]) -> Finding:
    return CHECK.finding(
        Status.PASS,
        f"presented chain of {len(chain)} builds to {subject_text(built[-1])}",
        built_path=[subject_text(c) for c in built],
        **facts,
    )


def _attempt(chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], moment: datetime) -> _Attempt:
    """One run of cryptography's path builder at one moment."""
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors)))
        .time(moment)
        # Path building only: names are san-match's job.
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=verification.ExtensionPolicy.permit_all())
        .build_client_verifier()
    )
    try:
        return _Attempt(moment, list(verifier.verify(chain[0], list(chain[1:])).chain), None)
    except verification.VerificationError as failure:
        return _Attempt(moment, None, failure)


def _not_about_dates(path: list[x509.Certificate], attempts: list[_Attempt]) -> str | None:
    """The verifier's reason when some failure on this path is not a dating problem,
    else None. The attempt with the fewest certificates out of date comes first:
    the verifier stops at the first certificate out of date, so that attempt saw
    the most of the path."""

    def out_of_date(attempt: _Attempt) -> int:
        return sum(not _in_date(c, attempt.moment) for c in path)

    for attempt in sorted(attempts, key=out_of_date):
        message = str(attempt.error)
        if out_of_date(attempt) == 0 or DATE_FAILURE not in message:
            return message
    return None


def _in_date(certificate: x509.Certificate, moment: datetime) -> bool:
    return certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc


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


def _path_moment(path: list[x509.Certificate], now: datetime) -> datetime:
    """The moment nearest now at which the longest run of the path's certificates,
    from the leaf up, is in date: the verifier goes up from the leaf and stops at
    the first certificate out of date, so at this moment it sees the most."""
    for length in range(len(path), 1, -1):
        low = max(c.not_valid_before_utc for c in path[:length])
        high = min(c.not_valid_after_utc for c in path[:length])
        if low <= high:
            return min(max(now, low), high)
    return min(max(now, path[0].not_valid_before_utc), path[0].not_valid_after_utc)


def _signature_paths(chain: list[x509.Certificate], anchors: list[x509.Certificate]) -> list[list[x509.Certificate]]:
    """The paths from the leaf to an anchor following issuer signatures through the
    presented certificates, ignoring everything else (dates, extensions), the
    anchor last; shortest first, at most a handful."""
    found: list[list[x509.Certificate]] = []
    budget = [_MAX_SIGNATURE_CHECKS]

    def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
        if len(found) >= _MAX_SIGNATURE_PATHS or budget[0] <= 0 or certificate.issuer != issuer.subject:
            return False
        budget[0] -= 1
        return _issued_by(certificate, issuer)

    def extend(path: list[x509.Certificate], remaining: list[x509.Certificate]) -> None:
        current = path[-1]
        found.extend([*path, anchor] for anchor in anchors if issued_by(current, anchor))
        for parent in remaining:
            if issued_by(current, parent):
                extend([*path, parent], [c for c in remaining if c is not parent])

    extend([chain[0]], list(chain[1:]))
    return sorted(found, key=len)


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
    needs=frozenset(),
    description="the presented chain builds to the trust anchor without outside intermediates",
    evaluate=evaluate,
)
