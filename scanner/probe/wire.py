"""What a probe holds while it runs: the recorder of facts, and the wire that moves
bytes between the socket and the sans-I/O TLS connection."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from mtls_audit.scanner.model.observations import AfterHandshake, Alert, Phase, ProbeObservation, ProbeSpec
from mtls_audit.scanner.tls.client import (
    AlertReceived,
    AlertSent,
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
)

RECEIVE_SIZE = 65536
# Bytes taken out of OpenSSL must reach the wire: OpenSSL has already moved on (a
# KeyUpdate switches our keys the moment it is written), so a send cut short by a
# phase deadline would turn every later record into garbage for the server. Sends
# are shielded from the phase's deadline and get this long of their own.
SEND_TIMEOUT = 5.0


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    server_name: str | None  # None: send no SNI (IP literal, RFC 6066 section 3)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class OurSideFailed(Exception):
    """Sending failed for a reason of ours (not the server closing)."""


@dataclass
class Recorder:
    """Collects facts while the probe runs; frozen into a ProbeObservation at the end."""

    spec: ProbeSpec
    endpoint: Endpoint
    client_certificate_sha256: str | None
    started: float = field(default_factory=trio.current_time)
    connected_at: float | None = None
    phase: Phase = Phase.CONNECT
    # The application request once it is on its way: a CertificateRequest that
    # arrives after it was triggered by it (Apache's per-<Location> client auth).
    request_sent: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def elapsed_ms(self) -> float:
        base = self.connected_at if self.connected_at is not None else self.started
        return round((trio.current_time() - base) * 1000, 3)

    def note(self, events: list[Event], connection: TLSClientConnection, *, at_eof: bool = False) -> None:
        for event in events:
            match event:
                case ServerHelloReceived():
                    self.facts["server_hello_seen"] = True
                case CertificateRequested(after_handshake=False):
                    self.facts["certificate_request_seen"] = True
                case CertificateRequested():
                    if "certificate_requested_after_handshake" not in self.facts:
                        self.facts["certificate_requested_after_handshake"] = True
                        if self.request_sent is not None:
                            self.facts["certificate_request_trigger"] = self.request_sent
                case CertificateSent():
                    self.facts["certificate_sent"] = True
                case HandshakeCompleted():
                    self.facts["handshake_completed"] = True
                    self.facts["handshake_ms"] = self.elapsed_ms()
                case SessionTicketReceived():
                    self.facts["session_ticket_received"] = True
                    self._first_after_handshake(AfterHandshake.TICKET)
                case AlertReceived(code=0):
                    # close_notify is an orderly close, reported as ConnectionClosed.
                    pass
                case AlertReceived(code=code):
                    if "alert_received" not in self.facts:
                        self.facts["alert_received"] = Alert(code, self._alert_phase(), self.elapsed_ms())
                    self._first_after_handshake(AfterHandshake.ALERT)
                case AlertSent(code=code):
                    # At EOF OpenSSL "sends" decode_error about the truncation: that is
                    # its reading of the server's close, not a failure of ours.
                    if not at_eof and "alert_sent" not in self.facts:
                        self.facts["alert_sent"] = Alert(code, self._alert_phase(), self.elapsed_ms())
                case ApplicationData():
                    self.facts["application_data_received"] = True
                    self._first_after_handshake(AfterHandshake.DATA)
                case ConnectionClosed():
                    self._first_after_handshake(AfterHandshake.EOF)
                case TLSFailed(message=message):
                    self.facts.setdefault("tls_error", message)
        if at_eof and "alert_received" not in self.facts:
            self.facts.setdefault("closed_by_server", self.phase)
            self._first_after_handshake(AfterHandshake.EOF)
        # Facts OpenSSL can answer for as soon as the server has spoken.
        if self.facts.get("server_hello_seen"):
            if "negotiated_version" not in self.facts:  # fixed by the ServerHello
                version = connection.negotiated_version()
                if version:
                    self.facts["negotiated_version"] = version
            if not self.facts.get("peer_chain_der"):
                chain = connection.peer_chain_der()
                if chain:
                    self.facts["peer_chain_der"] = chain
        asked = self.facts.get("certificate_request_seen") or self.facts.get("certificate_requested_after_handshake")
        if asked and "client_ca_names" not in self.facts:
            self.facts["client_ca_names"] = tuple(connection.client_ca_names())
        if self.facts.get("handshake_completed") and "cipher" not in self.facts:
            self.facts["cipher"] = connection.cipher()
            alpn = connection.alpn_protocol()
            if alpn:
                self.facts["alpn"] = alpn

    def _alert_phase(self) -> Phase:
        return Phase.POST_HANDSHAKE if self.facts.get("handshake_completed") else Phase.HANDSHAKE

    def _first_after_handshake(self, what: AfterHandshake) -> None:
        if self.facts.get("handshake_completed") and "after_handshake" not in self.facts:
            self.facts["after_handshake"] = what

    def freeze(self) -> ProbeObservation:
        return ProbeObservation(
            spec=self.spec,
            address=self.endpoint.address,
            sni=self.endpoint.server_name,
            client_certificate_sha256=self.client_certificate_sha256,
            total_ms=round((trio.current_time() - self.started) * 1000, 3),
            **self.facts,
        )


@dataclass
class Wire:
    """Moves bytes between the socket and the sans-I/O connection, recording events."""

    stream: trio.abc.Stream
    connection: TLSClientConnection
    recorder: Recorder
    eof: bool = False
    # Application data not read yet: a server may speak before our request (an HTTP/2
    # server's SETTINGS arrives during the post-handshake wait), and the exchange must
    # see those bytes first.
    unread: list[bytes] = field(default_factory=list)

    @property
    def over(self) -> bool:
        return self.eof or self.connection.finished

    async def flush(self) -> None:
        """Send what OpenSSL wants sent. A server that hung up is not an error here:
        what it sent before (often the alert that explains why) is still to be read."""
        outgoing = self.connection.bytes_to_send()
        if not outgoing:
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + SEND_TIMEOUT
            try:
                await self.stream.send_all(outgoing)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
        if scope.cancelled_caught:
            raise OurSideFailed(f"could not send {len(outgoing)} bytes within {SEND_TIMEOUT:g}s")

    async def receive(self) -> list[Event]:
        """Read once, feed OpenSSL, and send whatever it answers (key updates, alerts,
        our Certificate when the server asks after the handshake)."""
        try:
            data = await self.stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            data = b""
        if data:
            events = self.connection.receive_data(data)
            self.recorder.note(events, self.connection)
        else:
            self.eof = True
            events = self.connection.receive_eof()
            self.recorder.note(events, self.connection, at_eof=True)
        self.unread += [event.data for event in events if isinstance(event, ApplicationData)]
        await self.flush()
        return events

    def take_unread(self) -> list[bytes]:
        """The application data received and not taken yet, oldest first."""
        unread, self.unread = self.unread, []
        return unread

    async def pump(self) -> None:
        """Send what TLS wants sent, then receive once."""
        await self.flush()
        await self.receive()

    async def send_application_data(self, data: bytes) -> None:
        self.connection.send_application_data(data)
        await self.flush()
