"""Which protocol versions does the server speak?"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from mtls_audit.scanner.judge.verdicts import failure_text
from mtls_audit.scanner.model.observations import Presented, ProbeObservation, TLSVersion


class VersionSupport(enum.StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNKNOWN = "unknown"


def version_support(observation: ProbeObservation) -> tuple[VersionSupport, str]:
    """Did the server negotiate the version this probe was pinned to?

    Support is read from the ServerHello, not from the handshake's end, so a server
    that refuses our certificate still counts as speaking that version. Refused
    means the server said so (an alert, or a ServerHello for another version); a
    connection closed before any answer proves nothing."""
    o = observation
    if not o.connected:
        return VersionSupport.UNKNOWN, f"no TCP connection: {o.connect_error}"
    if o.server_hello_seen and o.negotiated_version == o.spec.version.value:
        return VersionSupport.ACCEPTED, f"server negotiated {o.negotiated_version}"
    if o.timed_out:
        return VersionSupport.UNKNOWN, f"timed out during {o.timed_out.value}"
    if o.local_error:
        return VersionSupport.UNKNOWN, f"our side failed: {o.local_error}"
    if o.postgres is not None and o.postgres.error and not o.server_hello_seen:
        # No TLS was started (no SSL, or not PostgreSQL): no version was offered.
        return VersionSupport.UNKNOWN, f"no TLS: {o.postgres.error}"
    if o.alert_sent and not o.alert_received and not o.server_hello_seen and "no protocols" in (o.tls_error or ""):
        return VersionSupport.UNKNOWN, f"this OpenSSL cannot offer {o.spec.version.value}: {o.tls_error}"
    if o.closed_by_server and o.alert_received is None and not o.server_hello_seen:
        return VersionSupport.UNKNOWN, "connection closed before the ServerHello, without an alert: ambiguous"
    return VersionSupport.REFUSED, failure_text(o)


def accepted_versions(observations: Iterable[ProbeObservation]) -> list[TLSVersion]:
    """Versions the server negotiated with our version probes, oldest first."""
    found = {
        o.spec.version
        for o in observations
        if o.spec.presented in (Presented.VALID, Presented.NO_CERT) and version_support(o)[0] is VersionSupport.ACCEPTED
    }
    return sorted(found, key=lambda v: v.rank)
