"""`mtls-audit explain`: every probe as one line — what was presented, what came
back, and when — so a verdict can be followed step by step and replayed with
`openssl s_client`."""

from __future__ import annotations

from collections.abc import Sequence

from mtls_audit.scanner.judge import Outcome, VersionSupport, access_verdict, judge, version_support
from mtls_audit.scanner.model.certificates import subject_text
from mtls_audit.scanner.model.minting import DEFECTS
from mtls_audit.scanner.model.observations import AfterHandshake, Presented, ProbeObservation
from mtls_audit.scanner.model.target import Target
from mtls_audit.scanner.model.text import printable

_PRESENTED = {
    Presented.VALID: "our identity",
    Presented.NO_CERT: "no certificate",
    Presented.ROGUE_CA: "rogue-CA impostor",
    Presented.SELF_SIGNED: "self-signed impostor",
}


def presented_text(target: Target, observation: ProbeObservation) -> str:
    presented = observation.spec.presented
    if presented is Presented.IDENTITY:
        text = f"identity {observation.spec.identity}"
    elif presented in DEFECTS:
        text = f"issuer-minted copy ({DEFECTS[presented]})"
    else:
        text = _PRESENTED[presented]
    if presented is Presented.VALID and target.identity is not None:
        text += f" {subject_text(target.identity.credential.certificate)}"
    if observation.client_certificate_sha256:
        text += f" (sha256 {observation.client_certificate_sha256[:12]}…)"
    return text


def happened(observation: ProbeObservation) -> list[str]:
    """What came back, in the order it happened, with times since TCP connect."""
    o = observation
    if not o.connected:
        return [f"no TCP connection: {o.connect_error}"]
    events = []
    if o.server_hello_seen:
        events.append(f"ServerHello {o.negotiated_version or '?'}")
    if o.certificate_request_seen:
        names = ", ".join(o.client_ca_names) or "empty CA list"
        events.append(f"CertificateRequest ({names})")
    certificate = None
    if o.certificate_sent and o.spec.presented is not Presented.VALID:
        certificate = "Certificate sent" if o.client_certificate_sha256 else "empty Certificate sent"
    asked_later = o.certificate_requested_after_handshake and not o.certificate_request_seen
    if certificate and not asked_later:
        events.append(certificate)
    alert = o.alert_received
    if alert is not None and alert.phase.value == "handshake":
        events.append(f"alert {alert.code} {alert.name} in the handshake at {alert.at_ms:.1f} ms")
    elif o.tls_error and not o.handshake_completed:
        events.append(f"handshake failed: {o.tls_error}")
    if o.handshake_completed:
        alpn = f", ALPN {o.alpn}" if o.alpn else ""
        events.append(f"handshake done at {o.handshake_ms:.1f} ms{alpn}")
    if o.after_handshake is AfterHandshake.TICKET:
        events.append("session ticket")
    elif o.after_handshake is AfterHandshake.EOF:
        events.append("EOF after the handshake")
    elif o.after_handshake is AfterHandshake.TIMEOUT:
        events.append("no ticket, alert or EOF within the wait")
    if o.certificate_request_trigger:
        events.append(f"sent {o.certificate_request_trigger}")
    if o.certificate_requested_after_handshake:
        names = ", ".join(o.client_ca_names) or "empty CA list"
        # TLS 1.2 has no post-handshake messages: the server renegotiated to ask.
        how = "in a renegotiation" if o.negotiated_version == "TLSv1.2" else "after the handshake"
        events.append(f"CertificateRequest {how} ({names})")
        if certificate and asked_later:
            events.append(certificate)
    if alert is not None and alert.phase.value == "post-handshake":
        after = alert.at_ms - (o.handshake_ms or 0)
        events.append(f"alert {alert.code} {alert.name} {after:.1f} ms after the handshake")
    events += _application_answer(o)
    if o.closed_by_server is not None and o.after_handshake is not AfterHandshake.EOF:
        events.append(f"server closed the connection without an alert ({o.closed_by_server.value})")
    if o.alert_sent is not None:
        events.append(f"we sent alert {o.alert_sent.code} {o.alert_sent.name}")
    if o.local_error:
        events.append(f"our side failed: {o.local_error}")
    if o.timed_out is not None:
        events.append(f"timed out in {o.timed_out.value}")
    return events or ["nothing"]


def _application_answer(o: ProbeObservation) -> list[str]:
    """What HTTP, gRPC or PostgreSQL answered, and when, if a request was made."""
    answer = o.application_answer
    if answer is None:
        return []
    exchange = o.http or o.grpc or o.postgres
    at_ms = exchange.at_ms if exchange is not None else None
    return [answer + (f" at {at_ms:.1f} ms" if at_ms is not None else "")]


def conclusion(target: Target, observation: ProbeObservation, reference: ProbeObservation | None = None) -> str:
    support, why = version_support(observation)
    if support is VersionSupport.REFUSED:
        return f"{observation.spec.version.value} refused"
    judging = access_verdict if observation.spec.presented is Presented.IDENTITY else judge
    verdict = judging(observation, target.app_protocol, reference)
    if verdict.outcome is Outcome.BLOCKED:
        assert verdict.layer is not None  # judge() names the layer of every block and admission
        return f"blocked at {verdict.layer.value}"
    if verdict.outcome is Outcome.ACCEPTED:
        assert verdict.layer is not None
        return f"accepted ({verdict.layer.value} layer)"
    return f"{verdict.outcome.value}: {verdict.reason}"


def explain_lines(target: Target, observations: Sequence[ProbeObservation]) -> list[str]:
    width = max((len(o.spec.id) for o in observations), default=0)
    own = {o.spec.version: o for o in observations if o.spec.presented is Presented.VALID}
    control = {o.spec.version: o for o in observations if o.spec.presented is Presented.MINTED}
    lines = []
    for observation in observations:
        # A minted copy is measured against the issuer's defect-free copy, as the checks do.
        references = control if observation.spec.presented.minted else own
        verdict = conclusion(target, observation, references.get(observation.spec.version))
        line = (
            f"{observation.spec.id:<{width}}  presented {presented_text(target, observation)}: "
            f"{'; '.join(happened(observation))} => {verdict}"
        )
        lines.append(printable(line))
    return lines
