"""A third-party check, as a plugin package would ship it.

It imports only the plugin API, ``mtls_audit.checks`` (its ``__all__``), never the
scanner's internals. test_registry installs a copy of this file with a ``dist-info``
entry point, the way pip leaves a plugin wheel, and checks the registry finds it.
"""

from mtls_audit.checks import Check, Evidence, Finding, Severity, Status


def evaluate(evidence: Evidence) -> Finding:
    ticketed = [o.spec.id for o in evidence.observations if o.session_ticket_received]
    if ticketed:
        return CHECK.finding(Status.PASS, "server issues session tickets", probes=ticketed)
    return CHECK.finding(Status.WARN, "no session tickets seen")


CHECK = Check(
    id="example-session-tickets",
    title="Session tickets issued",
    severity=Severity.LOW,
    needs=frozenset(),
    description="the server issues TLS session tickets",
    evaluate=evaluate,
)

NOT_A_CHECK = "just a string"
