"""Reading observations: was a probe let in, blocked, or is it undecided?

Pure functions shared by the checks and by the result summary. The rules follow how
real servers say no (DESIGN.md): inside the handshake on TLS 1.2, with an alert or
EOF right after it on TLS 1.3, or with an HTTP status where the application layer
enforces (nginx answers 400). Anything that does not decide is UNKNOWN: a timeout is
never taken as acceptance.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from mtls_audit.scanner.model.observations import (
    AfterHandshake,
    Phase,
    Presented,
    ProbeObservation,
    TLSVersion,
)
from mtls_audit.scanner.model.target import AppProtocol, Target
from mtls_audit.scanner.probe.prober import HttpRequest, sni_for

# Statuses that mean "the application refused this client". 495/496 are nginx's
# "SSL certificate error" and "SSL certificate required".
HTTP_BLOCKING_STATUSES = frozenset({400, 401, 403, 495, 496})


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"  # the evidence does not decide
    ERROR = "error"  # the probe could not run (no connection, no TLS)


class Layer(enum.StrEnum):
    TLS_HANDSHAKE = "tls-handshake"
    TLS_POST_HANDSHAKE = "tls-post-handshake"
    HTTP = "http"
    TLS = "tls"  # accepted by the TLS layer (ticket, or a completed TLS 1.2 handshake)


@dataclass(frozen=True)
class ProbeVerdict:
    outcome: Outcome
    layer: Layer | None
    reason: str  # one line a person can check against `openssl s_client`


def judge(observation: ProbeObservation, app_protocol: AppProtocol) -> ProbeVerdict:
    """Did the server let this client in?"""
    o = observation
    if not o.connected:
        return ProbeVerdict(Outcome.ERROR, None, f"no TCP connection: {o.connect_error}")
    if not o.server_hello_seen:
        if o.timed_out:
            return ProbeVerdict(Outcome.UNKNOWN, None, "no ServerHello before the handshake timeout")
        return ProbeVerdict(Outcome.ERROR, None, f"no {o.spec.version.value} handshake: {_failure_text(o)}")
    if not o.handshake_completed:
        if o.timed_out:
            return ProbeVerdict(Outcome.UNKNOWN, None, "handshake stalled until the timeout")
        if o.alert_sent and not o.alert_received:
            return ProbeVerdict(Outcome.ERROR, None, f"our client aborted the handshake: {_failure_text(o)}")
        return ProbeVerdict(Outcome.BLOCKED, Layer.TLS_HANDSHAKE, f"rejected in the handshake: {_failure_text(o)}")

    # The handshake completed on our side.
    alert = o.alert_received
    if alert is not None and alert.phase is Phase.POST_HANDSHAKE and alert.code != 0:
        after = _ms_after_handshake(o, alert.at_ms)
        return ProbeVerdict(
            Outcome.BLOCKED,
            Layer.TLS_POST_HANDSHAKE,
            f"alert {alert.code} {alert.name} {after} after the handshake",
        )
    if o.after_handshake is AfterHandshake.EOF:
        return ProbeVerdict(
            Outcome.BLOCKED, Layer.TLS_POST_HANDSHAKE, "connection closed right after the handshake, no data"
        )
    tls_accepted = o.negotiated_version != TLSVersion.TLS1_3.value or o.after_handshake in (
        AfterHandshake.TICKET,
        AfterHandshake.DATA,
    )
    tls_how = (
        "TLS 1.2 handshake completed with the server's Finished"
        if o.negotiated_version != TLSVersion.TLS1_3.value
        else "session ticket after the handshake"
        if o.after_handshake is AfterHandshake.TICKET
        else "application data after the handshake"
    )

    if o.http is not None:
        status = o.http.status
        if status is not None:
            line = f"{status} {o.http.reason}".rstrip()
            if status in HTTP_BLOCKING_STATUSES:
                return ProbeVerdict(Outcome.BLOCKED, Layer.HTTP, f"TLS let the client in, HTTP refused it: {line}")
            if 200 <= status < 400 or status == 404:
                return ProbeVerdict(Outcome.ACCEPTED, Layer.HTTP, f"HTTP answered {line}")
            return ProbeVerdict(Outcome.UNKNOWN, Layer.HTTP, f"HTTP {line} neither admits nor refuses the client")
        if not tls_accepted and o.after_handshake is AfterHandshake.TIMEOUT and _closed_during_http(o):
            return ProbeVerdict(
                Outcome.BLOCKED, Layer.TLS_POST_HANDSHAKE, "connection closed after the handshake, no response"
            )
        if tls_accepted:
            return ProbeVerdict(Outcome.ACCEPTED, Layer.TLS, f"{tls_how}; HTTP: {o.http.error}")
        return ProbeVerdict(
            Outcome.UNKNOWN, None, f"no session ticket, alert or EOF after the handshake; HTTP: {o.http.error}"
        )

    if tls_accepted:
        return ProbeVerdict(Outcome.ACCEPTED, Layer.TLS, tls_how)
    if app_protocol is AppProtocol.NONE:
        return ProbeVerdict(
            Outcome.UNKNOWN,
            None,
            "TLS 1.3 handshake completed but no session ticket, alert or EOF followed, "
            "and probe: none allows no application check",
        )
    return ProbeVerdict(Outcome.UNKNOWN, None, "no session ticket, alert or EOF after the TLS 1.3 handshake")


def _closed_during_http(o: ProbeObservation) -> bool:
    return o.http is not None and o.http.error == "connection closed without an HTTP response"


def _ms_after_handshake(o: ProbeObservation, at_ms: float) -> str:
    if o.handshake_ms is None:
        return ""
    return f"{max(at_ms - o.handshake_ms, 0):.1f} ms"


def _failure_text(o: ProbeObservation) -> str:
    if o.alert_received is not None:
        return f"alert {o.alert_received.code} {o.alert_received.name} received"
    if o.tls_error:
        return o.tls_error
    return "connection closed by the server"


# -- protocol versions ---------------------------------------------------------------


class VersionSupport(enum.StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNKNOWN = "unknown"


def version_support(observation: ProbeObservation) -> tuple[VersionSupport, str]:
    """Did the server negotiate the version this probe was pinned to?

    Support is read from the ServerHello, not from the handshake's end, so a server
    that refuses our certificate still counts as speaking that version."""
    o = observation
    if not o.connected:
        return VersionSupport.UNKNOWN, f"no TCP connection: {o.connect_error}"
    if o.server_hello_seen and o.negotiated_version == o.spec.version.value:
        return VersionSupport.ACCEPTED, f"server negotiated {o.negotiated_version}"
    if o.timed_out:
        return VersionSupport.UNKNOWN, f"timed out during {o.timed_out.value}"
    if o.alert_sent and not o.alert_received and not o.server_hello_seen and "no protocols" in (o.tls_error or ""):
        return VersionSupport.UNKNOWN, f"this OpenSSL cannot offer {o.spec.version.value}: {o.tls_error}"
    return VersionSupport.REFUSED, _failure_text(o)


def accepted_versions(observations: Iterable[ProbeObservation]) -> list[TLSVersion]:
    """Versions the server negotiated with our version probes, oldest first."""
    found = {
        o.spec.version
        for o in observations
        if o.spec.presented in (Presented.VALID, Presented.NO_CERT) and version_support(o)[0] is VersionSupport.ACCEPTED
    }
    return sorted(found, key=lambda v: v.rank)


# -- reproducing by hand ----------------------------------------------------------------

_S_CLIENT_VERSION_FLAGS = {
    TLSVersion.TLS1_0: ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
    TLSVersion.TLS1_1: ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
    TLSVersion.TLS1_2: ["-tls1_2"],
    TLSVersion.TLS1_3: ["-tls1_3"],
}

_PLACEHOLDER_CERTS = {
    Presented.ROGUE_CA: ("rogue-client.pem", "rogue-client.key"),
    Presented.SELF_SIGNED: ("self-signed-client.pem", "self-signed-client.key"),
}


def openssl_command(target: Target, presented: Presented, version: TLSVersion) -> str:
    """The `openssl s_client` line that repeats a probe by hand.

    Impostor keys live only in the scanner's memory, so their commands name
    placeholder files: any certificate from a CA the server must not trust will do
    (`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
    -subj /CN=impostor -keyout self-signed-client.key -out self-signed-client.pem`).
    """
    arguments = ["openssl", "s_client", "-connect", target.address]
    sni = sni_for(target.server_name)
    arguments += ["-servername", sni] if sni else ["-noservername"]
    arguments += _S_CLIENT_VERSION_FLAGS[version]
    if presented is Presented.VALID and target.identity is not None:
        arguments += ["-cert", str(target.identity.cert_path), "-key", str(target.identity.key_path)]
        if target.identity.credential.chain:
            arguments += ["-cert_chain", str(target.identity.cert_path)]
    elif presented in _PLACEHOLDER_CERTS:
        cert, key = _PLACEHOLDER_CERTS[presented]
        arguments += ["-cert", cert, "-key", key]
    command = shlex.join(arguments)
    if target.app_protocol is AppProtocol.HTTP:
        host = HttpRequest(target.http_path, target.server_name).host_header
        request = f"GET {target.http_path} HTTP/1.1\\r\\nHost: {host}\\r\\nConnection: close\\r\\n\\r\\n"
        # The request is printf's format string: a % in the path must stay literal.
        request = request.replace("%", "%%")
        return f"printf {shlex.quote(request)} | {command} -ign_eof"
    # Keep stdin open a moment so a TLS 1.3 rejection after the handshake is printed.
    return f"sleep 1 | {command}"


# -- client authentication per version -----------------------------------------------


class ClientAuth(enum.StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"
    NOT_REQUESTED = "not-requested"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class VersionClientAuth:
    """Client authentication as observed on one TLS version."""

    version: TLSVersion
    classification: ClientAuth
    certificate_request_seen: bool
    no_cert: ProbeVerdict | None

    @property
    def blocked_at(self) -> Layer | None:
        if self.no_cert is not None and self.no_cert.outcome is Outcome.BLOCKED:
            return self.no_cert.layer
        return None

    @property
    def detail(self) -> str:
        asked = "CertificateRequest seen" if self.certificate_request_seen else "no CertificateRequest"
        if self.no_cert is None:
            return f"{asked}; no-cert probe not run"
        return f"{asked}; without a certificate: {self.no_cert.outcome.value} ({self.no_cert.reason})"

    def to_dict(self) -> dict:
        return {
            "version": self.version.value,
            "classification": self.classification.value,
            "blocked_at": self.blocked_at.value if self.blocked_at else None,
            "certificate_request_seen": self.certificate_request_seen,
            "detail": self.detail,
        }


def classify_client_auth(
    version: TLSVersion,
    valid: ProbeObservation | None,
    no_cert: ProbeObservation | None,
    app_protocol: AppProtocol,
) -> VersionClientAuth:
    requested = any(o is not None and o.certificate_request_seen for o in (valid, no_cert))
    if no_cert is None:
        return VersionClientAuth(version, ClientAuth.UNKNOWN, requested, None)
    verdict = judge(no_cert, app_protocol)
    if verdict.outcome is Outcome.ACCEPTED:
        classification = ClientAuth.OPTIONAL if requested else ClientAuth.NOT_REQUESTED
    elif verdict.outcome is Outcome.BLOCKED and requested:
        classification = ClientAuth.REQUIRED
    else:
        # Blocked without ever asking for a certificate is not client-cert
        # enforcement we can attribute (it may be post-handshake auth, or a
        # server that refuses everyone): leave it undecided.
        classification = ClientAuth.UNKNOWN
    return VersionClientAuth(version, classification, requested, verdict)
