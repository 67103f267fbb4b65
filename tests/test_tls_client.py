"""The sans-I/O TLS client, driven byte by byte against an in-memory pyOpenSSL
server: no sockets, no clocks, every event the prober records."""

from __future__ import annotations

from memory_tls import OPTIONAL, REQUIRED, ServerSide, server_context
from observation_builders import PKI
from OpenSSL import SSL

from mtls_audit.scanner.model.observations import TLSVersion
from mtls_audit.scanner.model.target import ClientCredential
from mtls_audit.scanner.tls.client import (
    AlertReceived,
    ApplicationData,
    CertificateRequested,
    CertificateSent,
    ConnectionClosed,
    Event,
    HandshakeCompleted,
    ServerHelloReceived,
    SessionTicketReceived,
    TLSClientConnection,
    TLSFailed,
    build_context,
)

OWN = ClientCredential(PKI.client.certificate, (), PKI.client.private_key)


def client(version: TLSVersion, credential: ClientCredential | None = OWN) -> TLSClientConnection:
    return TLSClientConnection(build_context(version, credential), "api.test")


def converse(client: TLSClientConnection, server: ServerSide, rounds: int = 6) -> list[Event]:
    """Shuttle bytes both ways until neither side has anything left to say."""
    events = client.start()
    for _ in range(rounds):
        outgoing = client.bytes_to_send()
        server.receive(outgoing)
        incoming = server.outgoing()
        if not outgoing and not incoming:
            break
        if incoming:
            events += client.receive_data(incoming)
    return events


def kinds(events: list[Event]) -> list[type]:
    return [type(event) for event in events]


def test_tls13_refusal_arrives_after_the_client_finished():
    connection = client(TLSVersion.TLS1_3, None)
    events = converse(connection, ServerSide(server_context(REQUIRED)))
    order = kinds(events)
    assert order.index(ServerHelloReceived) < order.index(CertificateRequested) < order.index(HandshakeCompleted)
    assert CertificateSent in order  # an empty Certificate message
    alerts = [e for e in events if isinstance(e, AlertReceived)]
    assert alerts == [AlertReceived(code=116, fatal=True)]
    assert order.index(HandshakeCompleted) < order.index(AlertReceived)
    assert connection.finished


def test_tls12_refusal_arrives_inside_the_handshake():
    connection = client(TLSVersion.TLS1_2, None)
    events = converse(connection, ServerSide(server_context(REQUIRED)))
    assert HandshakeCompleted not in kinds(events)
    assert AlertReceived(code=40, fatal=True) in events
    assert connection.negotiated_version() == "TLSv1.2"


def test_accepted_identity_gets_tickets_and_data():
    connection = client(TLSVersion.TLS1_3)
    server = ServerSide(server_context(REQUIRED))
    events = converse(connection, server)
    assert HandshakeCompleted in kinds(events)
    assert SessionTicketReceived in kinds(events)
    assert not connection.finished
    connection.send_application_data(b"GET / HTTP/1.1\r\n\r\n")
    server.receive(connection.bytes_to_send())
    assert server.received == b"GET / HTTP/1.1\r\n\r\n"
    server.send(b"HTTP/1.1 200 OK\r\n\r\n")
    answered = connection.receive_data(server.outgoing())
    assert ApplicationData(b"HTTP/1.1 200 OK\r\n\r\n") in answered


def test_untrusted_certificate_on_tls13_gets_unknown_ca():
    rogue = ClientCredential(PKI.server.certificate, (), PKI.server.private_key)  # not issued for clients by the CA
    connection = client(TLSVersion.TLS1_3, rogue)
    server_ctx = server_context(REQUIRED)
    server_ctx.set_verify(REQUIRED, lambda *args: False)  # the verifier refuses whatever it is shown
    events = converse(connection, ServerSide(server_ctx))
    assert CertificateSent in kinds(events)
    received = [e.code for e in events if isinstance(e, AlertReceived)]
    assert received and received[0] in (42, 46, 48)


def test_optional_server_lets_a_client_without_a_certificate_finish():
    connection = client(TLSVersion.TLS1_3, None)
    events = converse(connection, ServerSide(server_context(OPTIONAL)))
    assert CertificateRequested in kinds(events)
    assert SessionTicketReceived in kinds(events)
    assert not any(isinstance(e, (AlertReceived, TLSFailed)) for e in events)


def test_version_the_server_refuses_ends_with_its_alert():
    connection = client(TLSVersion.TLS1_2)
    events = converse(connection, ServerSide(server_context(REQUIRED, minimum=SSL.TLS1_3_VERSION)))
    assert ServerHelloReceived not in kinds(events)
    assert AlertReceived(code=70, fatal=True) in events
    assert connection.finished


def test_eof_before_any_answer_is_a_close_not_an_alert():
    connection = client(TLSVersion.TLS1_3)
    connection.start()
    connection.bytes_to_send()
    events = connection.receive_eof()
    assert not any(isinstance(e, AlertReceived) for e in events)
    assert any(isinstance(e, (ConnectionClosed, TLSFailed)) for e in events)
    assert connection.finished


def test_garbage_from_the_server_is_our_failure_to_read_it():
    connection = client(TLSVersion.TLS1_3)
    connection.start()
    connection.bytes_to_send()
    events = connection.receive_data(b"SSH-2.0-OpenSSH_9.6\r\n")
    assert any(isinstance(e, TLSFailed) for e in events)
    assert not any(isinstance(e, AlertReceived) for e in events)
    assert connection.finished


def test_only_the_first_failure_is_reported():
    connection = client(TLSVersion.TLS1_3)
    connection.start()
    first = connection.receive_data(b"\x16\x03\x01\x00\x05garbage")
    later = connection.receive_data(b"more garbage")
    assert sum(isinstance(e, TLSFailed) for e in first + later) == 1
