"""A third-party check, as a plugin package would ship it (used by test_registry)."""

from mtls_audit.checks.base import Check, Evidence, Finding, Needs, Severity, Status


def evaluate(evidence: Evidence) -> Finding:
    ticketed = [o.spec.id for o in evidence.observations if o.session_ticket_received]
    if ticketed:
        return CHECK.finding(Status.PASS, "server issues session tickets", probes=ticketed)
    return CHECK.finding(Status.WARN, "no session tickets seen")


CHECK = Check(
    id="example-session-tickets",
    title="Session tickets issued",
    severity=Severity.LOW,
    needs=frozenset({Needs.VERSIONS}),
    description="the server issues TLS session tickets",
    evaluate=evaluate,
)

NOT_A_CHECK = "just a string"
