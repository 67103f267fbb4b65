"""wrong-ca-rejected: clients presenting a certificate the server must not trust
(issued by a rogue CA, or self-signed, with the real identity's names) are blocked."""

from __future__ import annotations

from mtls_audit.checks.base import Check, Evidence, Finding, Needs, Severity, Status
from mtls_audit.checks.common import probe_entry, refused_baseline, unscannable, versions_in_play
from mtls_audit.scanner.judge.verdicts import Outcome, judge
from mtls_audit.scanner.model.observations import Presented

IMPOSTORS = (Presented.ROGUE_CA, Presented.SELF_SIGNED)

REMEDIATION = (
    "Trust only the CA that issues your client certificates: nginx `ssl_client_certificate`, "
    "HAProxy `ca-file` without `ca-ignore-err`, Envoy `trusted_ca`, Go `ClientCAs`; "
    "remove any verify callback that accepts every certificate."
)


def evaluate(evidence: Evidence) -> Finding:
    reason = unscannable(evidence) or refused_baseline(evidence)
    if reason:
        return CHECK.finding(Status.ERROR, reason)
    probes, admitted, undecided = [], [], []
    for version in versions_in_play(evidence):
        for presented in IMPOSTORS:
            observation = evidence.probe(presented, version)
            if observation is None:
                undecided.append(f"{presented.value}@{version.value}: not probed")
                continue
            verdict = judge(observation, evidence.target.app_protocol)
            probes.append(probe_entry(evidence, observation, verdict))
            label = f"{presented.value} on {version.value}"
            if verdict.outcome is Outcome.ACCEPTED:
                asked = "" if observation.certificate_request_seen else " (the server never asked for a certificate)"
                admitted.append(f"{label}: {verdict.reason}{asked}")
            elif verdict.outcome is not Outcome.BLOCKED:
                undecided.append(f"{label}: {verdict.reason}")
    if admitted:
        return CHECK.finding(
            Status.FAIL, "an untrusted client certificate gets in: " + "; ".join(admitted), REMEDIATION, probes=probes
        )
    if undecided:
        return CHECK.finding(Status.ERROR, "undecided: " + "; ".join(undecided), REMEDIATION, probes=probes)
    layers = sorted({p["blocked_at"] for p in probes if p["blocked_at"]})
    return CHECK.finding(
        Status.PASS,
        f"rogue-CA and self-signed client certificates are blocked (at {', '.join(layers)})",
        probes=probes,
    )


CHECK = Check(
    id="wrong-ca-rejected",
    title="Untrusted client CA rejected",
    severity=Severity.CRITICAL,
    needs=frozenset({Needs.VERSIONS, Needs.ROGUE_CA, Needs.SELF_SIGNED}),
    description="clients presenting a certificate from an untrusted CA (or self-signed) are blocked",
    evaluate=evaluate,
    mtls=True,
)
