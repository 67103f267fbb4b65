"""client-cert-required: a client without a certificate is blocked on every TLS
version the server accepts, on every attempt."""

from __future__ import annotations

from typing import Any

from mtls_audit.checks.base import Check, Evidence, Finding, Needs, Severity, Status
from mtls_audit.checks.common import probe_entry, refused_baseline, unscannable, versions_in_play
from mtls_audit.scanner.judge import ClientAuth, classify_client_auth, repro_command
from mtls_audit.scanner.model.finding import ReproCommand
from mtls_audit.scanner.model.observations import Presented

REMEDIATION = (
    "Require a verified client certificate on every enabled protocol version: nginx "
    "`ssl_verify_client on;`, HAProxy `verify required`, Envoy `require_client_certificate: true`, "
    "Go `tls.RequireAndVerifyClientCert`, Node `requestCert: true, rejectUnauthorized: true`."
)


def evaluate(evidence: Evidence) -> Finding:
    reason = unscannable(evidence) or refused_baseline(evidence)
    if reason:
        return CHECK.finding(Status.ERROR, reason)
    target = evidence.target
    per_version: list[dict[str, Any]] = []
    commands: list[ReproCommand] = []
    failing, undecided = [], []
    for version in versions_in_play(evidence):
        attempts = evidence.attempts(Presented.NO_CERT, version)
        auth = classify_client_auth(version, evidence.probe(Presented.VALID, version), attempts, target.app_protocol)
        entry: dict[str, Any] = {
            "version": version.value,
            "classification": auth.classification.value,
            "certificate_request_seen": auth.certificate_request_seen,
            "blocked_at": auth.blocked_at.value if auth.blocked_at else None,
            "attempts": [probe_entry(o, v) for o, v in zip(attempts, auth.no_cert.verdicts, strict=True)],
        }
        per_version.append(entry)
        if attempts:
            commands.append(repro_command(target, attempts[0].spec))
        inconsistency = auth.no_cert.inconsistency
        if auth.classification in (ClientAuth.OPTIONAL, ClientAuth.NOT_REQUESTED):
            failing.append(
                f"{version.value}: {auth.classification.value}" + (f", {inconsistency}" if inconsistency else "")
            )
        elif auth.classification is ClientAuth.UNKNOWN:
            deciding = auth.no_cert.deciding
            undecided.append(f"{version.value}: {deciding.reason if deciding else 'not probed'}")
    if failing:
        return CHECK.finding(
            Status.FAIL,
            "a client without a certificate gets in (" + "; ".join(failing) + ")",
            REMEDIATION,
            commands=commands,
            per_version=per_version,
        )
    if undecided:
        return CHECK.finding(
            Status.ERROR, "undecided: " + "; ".join(undecided), REMEDIATION, commands=commands, per_version=per_version
        )
    layers = sorted({entry["blocked_at"] for entry in per_version if entry["blocked_at"]})
    return CHECK.finding(
        Status.PASS,
        f"a client without a certificate is blocked on {', '.join(e['version'] for e in per_version)}"
        f" (at {', '.join(layers)})",
        commands=commands,
        per_version=per_version,
    )


CHECK = Check(
    id="client-cert-required",
    title="Client certificate required",
    severity=Severity.CRITICAL,
    needs=frozenset({Needs.NO_CERT}),
    description="a client without a certificate is blocked on every TLS version the server accepts",
    evaluate=evaluate,
    mtls=True,
)
