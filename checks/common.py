"""Helpers the built-in checks share: baseline sanity and evidence entries."""

from __future__ import annotations

from typing import Any

from cryptography import x509

from mtls_audit.checks.base import Evidence
from mtls_audit.scanner.judge import Outcome, ProbeVerdict, accepted_versions, judge
from mtls_audit.scanner.model.certificates import issuer_text, subject_text
from mtls_audit.scanner.model.finding import probe_evidence
from mtls_audit.scanner.model.observations import Presented, ProbeObservation, TLSVersion


def probe_entry(observation: ProbeObservation, verdict: ProbeVerdict) -> dict[str, Any]:
    """One probe's facts as they appear in a finding's evidence."""
    blocked_at = verdict.layer.value if verdict.outcome is Outcome.BLOCKED and verdict.layer else None
    return probe_evidence(observation, verdict.outcome.value, blocked_at, verdict.reason)


def versions_in_play(evidence: Evidence) -> list[TLSVersion]:
    return accepted_versions(evidence.observations)


def refused_baseline(evidence: Evidence) -> str | None:
    """Why our own identity's verdicts cannot be trusted, or None.

    If the legitimate client does not get in, "the impostor was blocked" proves
    nothing: the server may be refusing everyone, or nothing was decided at all.
    """
    if evidence.target.identity is None:
        return None
    for version in versions_in_play(evidence):
        valid = evidence.probe(Presented.VALID, version)
        if valid is None:
            continue
        verdict = judge(valid, evidence.target.app_protocol)
        if verdict.outcome is not Outcome.ACCEPTED:
            return f"our own identity was not let in on {version.value} ({verdict.outcome.value}: {verdict.reason})"
    return None


def unscannable(evidence: Evidence) -> str | None:
    """Why the target could not be probed at all, or None."""
    if versions_in_play(evidence):
        return None
    if not evidence.observations:
        return "no probes ran"
    last = evidence.observations[-1]
    verdict = judge(last, evidence.target.app_protocol)
    return f"no TLS version could be negotiated ({verdict.reason})"


def presented_chain(evidence: Evidence) -> list[x509.Certificate]:
    """The certificates the server sent, leaf first: from our own identity's probe
    on the newest version when there is one, else from any probe that got them."""

    def newest_first(o: ProbeObservation) -> tuple[bool, int]:
        return (o.spec.presented is Presented.VALID, o.spec.version.rank)

    for observation in sorted(evidence.observations, key=newest_first, reverse=True):
        if observation.peer_chain_der:
            return [x509.load_der_x509_certificate(der) for der in observation.peer_chain_der]
    return []


def describe_certificate(certificate: x509.Certificate) -> dict[str, Any]:
    return {
        "subject": subject_text(certificate),
        "issuer": issuer_text(certificate),
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
    }
