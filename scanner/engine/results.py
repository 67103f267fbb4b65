"""Turning a target's observations into its report: the checks' findings, client
authentication per version, and the certificates as sent. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from mtls_audit.checks.base import Check, Evidence
from mtls_audit.scanner.judge import accepted_versions, classify_client_auth, identity_matrix
from mtls_audit.scanner.model.certificates import certificate_summary
from mtls_audit.scanner.model.finding import Finding
from mtls_audit.scanner.model.observations import Presented, ProbeObservation
from mtls_audit.scanner.model.report import TargetReport
from mtls_audit.scanner.model.status import Status, worst_status
from mtls_audit.scanner.model.target import Target


@dataclass(frozen=True)
class TargetResult:
    """A target's report, with the target and the live observations behind it (for
    `explain`, which needs the target's settings to word its lines)."""

    target: Target
    report: TargetReport

    @property
    def observations(self) -> tuple[ProbeObservation, ...]:
        return self.report.probes


def judge_target(
    evidence: Evidence,
    enabled: Sequence[Check],
    skipped: Sequence[tuple[Check, str]],
    presented: Sequence[x509.Certificate],
    scanned_at: datetime | None = None,
) -> TargetResult:
    target = evidence.target
    versions = accepted_versions(evidence.observations)
    error = None if versions else _unreachable_reason(evidence.observations)
    findings: list[Finding] = []
    for check in enabled:
        if error:
            findings.append(check.finding(Status.ERROR, f"target could not be scanned: {error}"))
        else:
            findings.append(_evaluate_safely(check, evidence))
    findings += [check.finding(Status.SKIP, reason) for check, reason in skipped]
    client_auth = tuple(
        classify_client_auth(
            version,
            evidence.probe(Presented.VALID, version),
            evidence.attempts(Presented.NO_CERT, version),
            target.app_protocol,
        ).entry()
        for version in versions
    )
    status = Status.ERROR if error else worst_status(f.status for f in findings)
    report = TargetReport(
        name=target.name,
        address=target.address,
        server_name=target.server_name,
        tags=target.tags,
        status=status,
        error=error,
        scanned_at=scanned_at or evidence.now,
        accepted_versions=tuple(v.value for v in versions),
        client_auth=client_auth,
        certificates=tuple(certificate_summary(c) for c in presented),
        findings=tuple(findings),
        probes=evidence.observations,
        identity_matrix=identity_matrix(target, evidence.observations),
        index=target.index,
        inventory_line=target.line,
    )
    return TargetResult(target, report)


def _evaluate_safely(check: Check, evidence: Evidence) -> Finding:
    # A plugin's bug must cost one finding, not the scan.
    try:
        return check.evaluate(evidence)
    except Exception as error:  # noqa: BLE001
        return check.finding(Status.ERROR, f"check crashed: {error.__class__.__name__}: {error}")


def _unreachable_reason(observations: Sequence[ProbeObservation]) -> str:
    for observation in observations:
        if not observation.connected:
            return observation.connect_error or "no connection"
    # PostgreSQL starts TLS only when its SSLRequest is answered with S.
    refusals = sorted(
        {o.postgres.error for o in observations if o.postgres and o.postgres.error and not o.server_hello_seen}
    )
    if refusals:
        return "no TLS: " + "; ".join(refusals)
    for observation in observations:
        if observation.timed_out:
            return f"no TLS answer within the {observation.timed_out.value} timeout"
    errors = sorted({o.tls_error for o in observations if o.tls_error})
    if errors:
        return "no TLS version could be negotiated: " + "; ".join(errors)
    if any(o.closed_by_server for o in observations):
        return "no TLS version could be negotiated: the server closed every connection without an answer"
    return "no TLS version could be negotiated"
