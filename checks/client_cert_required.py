"""client-cert-required: a client without a certificate is blocked on every TLS
version the server accepts."""

from __future__ import annotations

from typing import Any

from mtls_audit.checks.base import Check, Evidence, Finding, Needs, Severity, Status
from mtls_audit.checks.common import probe_entry, refused_baseline, unscannable, versions_in_play
from mtls_audit.scanner.judge.verdicts import ClientAuth, classify_client_auth
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
    per_version = []
    failing, undecided = [], []
    for version in versions_in_play(evidence):
        valid = evidence.probe(Presented.VALID, version)
        no_cert = evidence.probe(Presented.NO_CERT, version)
        auth = classify_client_auth(version, valid, no_cert, evidence.target.app_protocol)
        entry: dict[str, Any] = {"version": version.value, "classification": auth.classification.value}
        entry["certificate_request_seen"] = auth.certificate_request_seen
        if no_cert is not None and auth.no_cert is not None:
            entry.update(probe_entry(evidence, no_cert, auth.no_cert))
        per_version.append(entry)
        if auth.classification in (ClientAuth.OPTIONAL, ClientAuth.NOT_REQUESTED):
            failing.append(f"{version.value}: {auth.classification.value}")
        elif auth.classification is ClientAuth.UNKNOWN:
            undecided.append(f"{version.value}: {auth.no_cert.reason if auth.no_cert else 'not probed'}")
    if failing:
        return CHECK.finding(
            Status.FAIL,
            "a client without a certificate gets in (" + "; ".join(failing) + ")",
            REMEDIATION,
            per_version=per_version,
        )
    if undecided:
        return CHECK.finding(Status.ERROR, "undecided: " + "; ".join(undecided), REMEDIATION, per_version=per_version)
    layers = sorted({entry["blocked_at"] for entry in per_version if entry.get("blocked_at")})
    return CHECK.finding(
        Status.PASS,
        f"a client without a certificate is blocked on {', '.join(e['version'] for e in per_version)}"
        f" (at {', '.join(layers)})",
        per_version=per_version,
    )


CHECK = Check(
    id="client-cert-required",
    title="Client certificate required",
    severity=Severity.CRITICAL,
    needs=frozenset({Needs.VERSIONS, Needs.NO_CERT}),
    description="a client without a certificate is blocked on every TLS version the server accepts",
    evaluate=evaluate,
    mtls=True,
)
