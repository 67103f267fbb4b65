"""Reading one probe: was the client let in, blocked, or is it undecided?

The rules follow how real servers say no (README, "How a server says no"): inside the handshake on TLS
1.2, with an alert or EOF right after it on TLS 1.3, after a CertificateRequest sent
only once the request was read (Apache's per-location client auth), or in the
application where it enforces: an HTTP status (nginx answers 400), a gRPC status
(UNAUTHENTICATED), a PostgreSQL ErrorResponse (SQLSTATE 28000). Anything that does not decide
is UNKNOWN, and a failure on *our* side of the connection is ERROR: neither is ever
taken as a refusal, because a false "blocked" is the worst answer an audit can give.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mtls_audit.scanner.model.observations import (
    AfterHandshake,
    Alert,
    Phase,
    ProbeObservation,
    TLSVersion,
    grpc_status_name,
)
from mtls_audit.scanner.model.target import AppProtocol

# Statuses that mean "the application refused this client". 495/496 are nginx's
# "SSL certificate error" and "SSL certificate required".
HTTP_BLOCKING_STATUSES = frozenset({400, 401, 403, 495, 496})

# Alerts a server sends to refuse a client's certificate (or its absence): RFC 8446
# section 6.2, plus handshake_failure, which OpenSSL sends on TLS 1.2 when a required
# certificate is missing. Every other fatal alert (bad_record_mac, decode_error,
# unexpected_message, internal_error, ...) says the session broke, not that the
# server judged the client: it is an error, never a refusal.
REJECTION_ALERTS = frozenset({40, 41, 42, 43, 44, 45, 46, 48, 49, 116})


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    BLOCKED = "blocked"
    UNKNOWN = "unknown"  # the evidence does not decide
    ERROR = "error"  # the probe could not run, or our side of it failed


class Layer(enum.StrEnum):
    TLS_HANDSHAKE = "tls-handshake"
    TLS_POST_HANDSHAKE = "tls-post-handshake"
    HTTP = "http"
    GRPC = "grpc"  # a gRPC status (UNAUTHENTICATED, PERMISSION_DENIED, or any answer)
    APPLICATION = "application"  # the PostgreSQL protocol: an ErrorResponse or an auth request
    TLS = "tls"  # accepted by the TLS layer (ticket, or a completed TLS 1.2 handshake)


# gRPC statuses that refuse the caller: UNAUTHENTICATED and PERMISSION_DENIED. Any
# other status came from a service the call reached (UNIMPLEMENTED and NOT_FOUND too).
GRPC_REFUSING_STATUSES = frozenset({16, 7})

# SQLSTATEs PostgreSQL refuses a client with before authentication completes:
# invalid_authorization_specification ("connection requires a valid client
# certificate", "certificate authentication failed") and invalid_password.
POSTGRES_REFUSING_SQLSTATES = frozenset({"28000", "28P01"})


@dataclass(frozen=True, slots=True)
class ProbeVerdict:
    outcome: Outcome
    layer: Layer | None
    reason: str  # one line a person can check against `openssl s_client`


def judge(
    observation: ProbeObservation,
    app_protocol: AppProtocol,
    reference: ProbeObservation | None = None,
) -> ProbeVerdict:
    """Did the server let this client in?

    ``reference`` is our own identity's probe on the same version, when there is one:
    a server that closes without an alert right after our Certificate refuses that
    certificate only if it lets the legitimate one through the same handshake.
    """
    o = observation
    if not o.connected:
        return ProbeVerdict(Outcome.ERROR, None, f"no TCP connection: {o.connect_error}")
    if o.local_error:
        return ProbeVerdict(Outcome.ERROR, None, f"our side failed, not the server: {o.local_error}")
    if not o.server_hello_seen:
        if o.postgres is not None and o.postgres.error:
            return ProbeVerdict(Outcome.ERROR, None, f"no TLS: {o.postgres.error}")
        return _before_server_hello(o)
    if not o.handshake_completed:
        return _in_handshake(o, reference)
    return _after_handshake(o, app_protocol)


def _before_server_hello(o: ProbeObservation) -> ProbeVerdict:
    if o.timed_out:
        return ProbeVerdict(Outcome.UNKNOWN, None, "no ServerHello before the handshake timeout")
    if o.closed_by_server and o.alert_received is None:
        # A listener going away, a firewall, a crashed worker: nothing says why.
        return ProbeVerdict(
            Outcome.ERROR, None, "connection closed before the ServerHello, without an alert: ambiguous"
        )
    return ProbeVerdict(Outcome.ERROR, None, f"no {o.spec.version.value} handshake: {failure_text(o)}")


def _in_handshake(o: ProbeObservation, reference: ProbeObservation | None) -> ProbeVerdict:
    if o.timed_out:
        return ProbeVerdict(Outcome.UNKNOWN, None, "handshake stalled until the timeout")
    alert = o.alert_received
    if alert is not None and not _we_alerted_first(o, alert):
        if alert.code in REJECTION_ALERTS:
            return ProbeVerdict(
                Outcome.BLOCKED, Layer.TLS_HANDSHAKE, f"rejected in the handshake: alert {alert.code} {alert.name}"
            )
        return ProbeVerdict(
            Outcome.ERROR, None, f"the handshake broke (alert {alert.code} {alert.name}), which is not a refusal"
        )
    if o.closed_by_server and alert is None:
        return _closed_in_handshake(o, reference)
    if o.alert_sent is not None:
        return ProbeVerdict(Outcome.ERROR, None, f"our client aborted the handshake: {failure_text(o)}")
    return ProbeVerdict(Outcome.ERROR, None, f"the handshake failed on our side: {failure_text(o)}")


def _closed_in_handshake(o: ProbeObservation, reference: ProbeObservation | None) -> ProbeVerdict:
    """A close without an alert (Node.js with rejectUnauthorized does this on TLS 1.2)."""
    own_completes = reference is not None and reference is not o and reference.handshake_completed
    if o.certificate_sent and own_completes:
        return ProbeVerdict(
            Outcome.BLOCKED,
            Layer.TLS_HANDSHAKE,
            "connection closed without an alert right after our Certificate, "
            "where our own identity completes the handshake",
        )
    why = (
        "before we sent a Certificate"
        if not o.certificate_sent
        else "and our own identity's handshake on this version is no yardstick"
    )
    return ProbeVerdict(Outcome.UNKNOWN, None, f"connection closed in the handshake without an alert, {why}")


def _after_handshake(o: ProbeObservation, app_protocol: AppProtocol) -> ProbeVerdict:
    alert = o.alert_received
    if alert is not None and alert.phase is not Phase.HANDSHAKE and alert.code != 0:
        if _we_alerted_first(o, alert):
            return _our_session_broke(o)
        if alert.code in REJECTION_ALERTS:
            after = _ms_after_handshake(o, alert.at_ms)
            return ProbeVerdict(
                Outcome.BLOCKED,
                Layer.TLS_POST_HANDSHAKE,
                f"alert {alert.code} {alert.name} {after} after the handshake{_asked_after(o)}",
            )
        return ProbeVerdict(
            Outcome.ERROR,
            None,
            f"the session broke after the handshake (the server sent alert {alert.code} {alert.name}): "
            "a broken session is not a refusal",
        )
    if o.alert_sent is not None and o.alert_sent.phase is not Phase.HANDSHAKE:
        return _our_session_broke(o)
    if app_protocol is AppProtocol.GRPC and o.alpn != "h2":
        # grpcio closes on every client that did not get h2: a close says nothing here.
        chose = f"chose {o.alpn!r}" if o.alpn else "chose no protocol"
        return ProbeVerdict(
            Outcome.ERROR, None, f"probe: grpc needs HTTP/2, and the server {chose} by ALPN: not a gRPC endpoint"
        )
    if o.after_handshake is AfterHandshake.EOF:
        return ProbeVerdict(
            Outcome.BLOCKED, Layer.TLS_POST_HANDSHAKE, "connection closed right after the handshake, no data"
        )
    tls13 = o.negotiated_version == TLSVersion.TLS1_3.value
    # A server that asked for a certificate only after the handshake judged it later
    # than its ticket (or its TLS 1.2 Finished): those say nothing about it.
    tls_accepted = not o.certificate_requested_after_handshake and (
        not tls13 or o.after_handshake in (AfterHandshake.TICKET, AfterHandshake.DATA)
    )
    tls_how = (
        "TLS 1.2 handshake completed with the server's Finished"
        if not tls13
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
        return _no_answer(o, tls_accepted, tls_how, f"HTTP: {o.http.error}")
    if o.grpc is not None:
        return _grpc_verdict(o, tls_accepted, tls_how)
    if o.postgres is not None:
        return _postgres_verdict(o, tls_accepted, tls_how)

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


def _no_answer(o: ProbeObservation, tls_accepted: bool, tls_how: str, why: str) -> ProbeVerdict:
    """The application gave no answer: the TLS layer decides, if it did. A close is a
    refusal only if the server sent nothing first: one that wrote bytes the protocol
    could not read, then closed, talked to the client and decided nothing."""
    if not tls_accepted and o.closed_by_server is Phase.HTTP and not o.application_data_received:
        return ProbeVerdict(
            Outcome.BLOCKED, Layer.TLS_POST_HANDSHAKE, "connection closed after the handshake, no response"
        )
    if tls_accepted:
        return ProbeVerdict(Outcome.ACCEPTED, Layer.TLS, f"{tls_how}; {why}")
    return ProbeVerdict(Outcome.UNKNOWN, None, f"no session ticket, alert or EOF after the handshake; {why}")


def _grpc_verdict(o: ProbeObservation, tls_accepted: bool, tls_how: str) -> ProbeVerdict:
    g = o.grpc
    assert g is not None
    if g.grpc_status is not None:
        name = grpc_status_name(g.grpc_status)
        said = f"gRPC status {g.grpc_status} {name}" + (f" ({g.grpc_message})" if g.grpc_message else "")
        if g.grpc_status in GRPC_REFUSING_STATUSES:
            return ProbeVerdict(Outcome.BLOCKED, Layer.GRPC, f"TLS let the client in, gRPC refused it: {said}")
        return ProbeVerdict(Outcome.ACCEPTED, Layer.GRPC, f"the call reached the service: {said}")
    if g.http_status in HTTP_BLOCKING_STATUSES:
        return ProbeVerdict(Outcome.BLOCKED, Layer.GRPC, f"HTTP/2 status {g.http_status} without a gRPC status")
    return _no_answer(o, tls_accepted, tls_how, f"gRPC: {g.error}")


def _postgres_verdict(o: ProbeObservation, tls_accepted: bool, tls_how: str) -> ProbeVerdict:
    pg = o.postgres
    assert pg is not None
    if pg.authentication is not None:
        if pg.authentication == "AuthenticationOk":
            return ProbeVerdict(Outcome.ACCEPTED, Layer.APPLICATION, "PostgreSQL let the client in: AuthenticationOk")
        return ProbeVerdict(
            Outcome.ACCEPTED,
            Layer.APPLICATION,
            f"PostgreSQL asked for {pg.authentication}: the certificate was accepted (no password sent)",
        )
    if pg.sqlstate is not None:
        said = f"{pg.severity or 'ERROR'} {pg.sqlstate} {pg.message or ''}".rstrip()
        if pg.sqlstate in POSTGRES_REFUSING_SQLSTATES:
            return ProbeVerdict(
                Outcome.BLOCKED, Layer.APPLICATION, f"TLS let the client in, PostgreSQL refused it: {said}"
            )
        return ProbeVerdict(
            Outcome.UNKNOWN,
            Layer.APPLICATION,
            f"PostgreSQL answered {said}, which neither admits nor refuses the client",
        )
    if pg.error is None:
        return ProbeVerdict(
            Outcome.UNKNOWN,
            Layer.APPLICATION,
            "PostgreSQL answered with neither an error nor an authentication request",
        )
    return _no_answer(o, tls_accepted, tls_how, f"PostgreSQL: {pg.error}")


def _asked_after(o: ProbeObservation) -> str:
    """ ", after a CertificateRequest it sent after the handshake (on GET /secure)"."""
    if not o.certificate_requested_after_handshake:
        return ""
    trigger = f" on {o.certificate_request_trigger}" if o.certificate_request_trigger else ""
    return f", which asked for a certificate only after the handshake{trigger}"


def _our_session_broke(o: ProbeObservation) -> ProbeVerdict:
    sent = o.alert_sent
    what = f"our client sent alert {sent.code} {sent.name}" if sent else "our client failed"
    detail = f" ({o.tls_error})" if o.tls_error else ""
    return ProbeVerdict(Outcome.ERROR, None, f"our side of the session broke: {what}{detail}; not a refusal")


def _we_alerted_first(o: ProbeObservation, received: Alert) -> bool:
    """Our client sent a fatal alert before the server's arrived: whatever the server
    said next answers our failure, not our certificate."""
    sent = o.alert_sent
    return sent is not None and sent.code != 0 and sent.at_ms <= received.at_ms


def _ms_after_handshake(o: ProbeObservation, at_ms: float) -> str:
    if o.handshake_ms is None:
        return ""
    return f"{max(at_ms - o.handshake_ms, 0):.1f} ms"


def failure_text(o: ProbeObservation) -> str:
    if o.alert_received is not None:
        return f"alert {o.alert_received.code} {o.alert_received.name} received"
    if o.tls_error:
        return o.tls_error
    if o.closed_by_server:
        return "connection closed by the server"
    return "no reason given"
