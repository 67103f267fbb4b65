"""wrong-ca-rejected: clients presenting a certificate the server must not trust
(issued by a rogue CA, or self-signed, with the real identity's names) are blocked,
on every attempt."""

from __future__ import annotations

from typing import Any

from mtls_audit.checks.base import Check, Evidence, Finding, Needs, Severity, Status
from mtls_audit.checks.common import probe_entry, refused_baseline, unscannable, versions_in_play
from mtls_audit.scanner.judge import Outcome, judge_attempts, repro_command
from mtls_audit.scanner.model.finding import ReproCommand
from mtls_audit.scanner.model.observations import Presented, ProbeSpec

IMPOSTORS = (Presented.ROGUE_CA, Presented.SELF_SIGNED)

REMEDIATION = (
    "Trust only the CA that issues your client certificates: nginx `ssl_client_certificate`, "
    "HAProxy `ca-file` without `ca-ignore-err`, Envoy `trusted_ca`, Go `ClientCAs`; "
    "remove any verify callback that accepts every certificate."
)

NEVER_ASKED = "the server never asked for a certificate, so the impostor's was never sent"


def evaluate(evidence: Evidence) -> Finding:
    reason = unscannable(evidence) or refused_baseline(evidence)
    if reason:
        return CHECK.finding(Status.ERROR, reason)
    target = evidence.target
    probes: list[dict[str, Any]] = []
    commands: list[ReproCommand] = []
    admitted, undecided = [], []
    for version in versions_in_play(evidence):
        reference = evidence.probe(Presented.VALID, version)
        for presented in IMPOSTORS:
            label = f"{presented.value} on {version.value}"
            attempts = evidence.attempts(presented, version)
            if not attempts:
                undecided.append(f"{ProbeSpec(presented, version).id}: not probed")
                continue
            commands.append(repro_command(target, attempts[0].spec))
            verdicts = judge_attempts(attempts, target.app_protocol, reference)
            probes += [probe_entry(o, v) for o, v in zip(attempts, verdicts.verdicts, strict=True)]
            if verdicts.got_in:
                deciding = verdicts.deciding
                assert deciding is not None  # got_in counts at least one verdict
                asked = "" if any(o.certificate_requested for o in attempts) else f" ({NEVER_ASKED})"
                inconsistency = f" ({verdicts.inconsistency})" if verdicts.inconsistency else ""
                admitted.append(f"{label}: {deciding.reason}{asked}{inconsistency}")
                continue
            for observation, verdict in zip(attempts, verdicts.verdicts, strict=True):
                if verdict.outcome is not Outcome.BLOCKED:
                    undecided.append(f"{observation.spec.id}: {verdict.reason}")
                elif not observation.certificate_requested:
                    # Refusing a certificate the server never asked for proves nothing
                    # about its trust store: it may refuse everyone.
                    undecided.append(f"{observation.spec.id}: blocked, but {NEVER_ASKED}")
    if admitted:
        return CHECK.finding(
            Status.FAIL,
            "an untrusted client certificate gets in: " + "; ".join(admitted),
            REMEDIATION,
            commands=commands,
            probes=probes,
        )
    if undecided:
        return CHECK.finding(
            Status.ERROR, "undecided: " + "; ".join(undecided), REMEDIATION, commands=commands, probes=probes
        )
    layers = sorted({p["blocked_at"] for p in probes if p["blocked_at"]})
    return CHECK.finding(
        Status.PASS,
        f"rogue-CA and self-signed client certificates are blocked (at {', '.join(layers)})",
        commands=commands,
        probes=probes,
    )


CHECK = Check(
    id="wrong-ca-rejected",
    title="Untrusted client CA rejected",
    severity=Severity.CRITICAL,
    needs=frozenset({Needs.ROGUE_CA, Needs.SELF_SIGNED}),
    description="clients presenting a certificate from an untrusted CA (or self-signed) are blocked",
    evaluate=evaluate,
    mtls=True,
)
