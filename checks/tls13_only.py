"""tls13-only: the server refuses every protocol version below the policy minimum
(TLS 1.3 by default; a target's `min_tls_version` changes it)."""

from __future__ import annotations

from mtls_audit.checks.base import Check, Evidence, Finding, Severity, Status
from mtls_audit.checks.common import unscannable
from mtls_audit.scanner.judge import VersionSupport, repro_command, version_support
from mtls_audit.scanner.model.observations import Presented, TLSVersion

REMEDIATION = (
    "Disable old protocol versions: nginx `ssl_protocols TLSv1.3;`, HAProxy `ssl-min-ver TLSv1.3`, "
    "Envoy `tls_minimum_protocol_version: TLSv1_3`, Go `MinVersion: tls.VersionTLS13`."
)


def evaluate(evidence: Evidence) -> Finding:
    reason = unscannable(evidence)
    if reason:
        return CHECK.finding(Status.ERROR, reason)
    minimum = evidence.target.min_tls_version
    versions, commands, too_old, undecided = [], [], [], []
    for version in TLSVersion:
        observation = evidence.probe(Presented.VALID, version) or evidence.probe(Presented.NO_CERT, version)
        if observation is None:
            undecided.append(f"{version.value}: not probed")
            continue
        support, why = version_support(observation)
        versions.append({"version": version.value, "support": support.value, "reason": why})
        commands.append(repro_command(evidence.target, observation.spec))
        if version.rank >= minimum.rank:
            continue
        if support is VersionSupport.ACCEPTED:
            too_old.append(version.value)
        elif support is VersionSupport.UNKNOWN:
            undecided.append(f"{version.value}: {why}")
    if too_old:
        return CHECK.finding(
            Status.FAIL,
            f"accepts {', '.join(too_old)} (policy minimum {minimum.value})",
            REMEDIATION,
            commands=commands,
            minimum=minimum.value,
            versions=versions,
        )
    if undecided:
        return CHECK.finding(
            Status.ERROR,
            "undecided: " + "; ".join(undecided),
            REMEDIATION,
            commands=commands,
            minimum=minimum.value,
            versions=versions,
        )
    return CHECK.finding(
        Status.PASS,
        f"refuses every version below {minimum.value}",
        commands=commands,
        minimum=minimum.value,
        versions=versions,
    )


CHECK = Check(
    id="tls13-only",
    title="TLS 1.3 only",
    severity=Severity.MEDIUM,
    needs=frozenset(),
    description="the server refuses TLS 1.0, 1.1 and 1.2 (or whatever is below the target's min_tls_version)",
    evaluate=evaluate,
)
