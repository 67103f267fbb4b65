"""Make one TLS connection and record what happened: the trio loop around
``TLSClientConnection``.

Each phase runs under its own cancel scope. A phase that runs out of time is
recorded as ``timed_out`` and ends the probe; it is never taken as acceptance.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass, field

import trio

from mtls_audit.scanner.model.observations import (
    AfterHandshake,
    Alert,
    HttpExchange,
    Phase,
    ProbeObservation,
    ProbeSpec,
)
from mtls_audit.scanner.tls.client import (
    AlertReceived,
    AlertSent,
    ApplicationData,
    CertificateRequested,
    ClientCredential,
    ConnectionClosed,
    Event,
    HandshakeCompleted,
    ServerHelloReceived,
    SessionTicketReceived,
    TLSClientConnection,
    TLSFailed,
    build_context,
)

_RECEIVE_SIZE = 65536
_MAX_HTTP_HEAD = 16384  # enough for any status line; we read nothing more


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each phase of a probe."""

    connect: float = 5.0
    handshake: float = 5.0
    # How long to wait after a TLS 1.3 handshake for the server's verdict on our
    # certificate. On loopback a rejection arrives in under 2 ms; a remote server
    # adds one round trip. Servers that send no session ticket cost this much.
    post_handshake: float = 1.0
    http: float = 5.0


@dataclass(frozen=True)
class HttpRequest:
    path: str = "/"
    host: str = ""

    @property
    def request_line(self) -> str:
        return f"GET {self.path} HTTP/1.1"

    @property
    def host_header(self) -> str:
        # RFC 7230 section 5.4: an IPv6 literal goes in brackets.
        return f"[{self.host}]" if ":" in self.host else self.host

    def encode(self) -> bytes:
        return (
            f"{self.request_line}\r\nHost: {self.host_header}\r\nUser-Agent: mtls-audit\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n"
        ).encode("ascii")


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    server_name: str | None  # None: send no SNI (IP literal, RFC 6066 section 3)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def sni_for(name: str) -> str | None:
    """The SNI to send for a server name: none for IP literals (RFC 6066 section 3)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    return None


@dataclass
class _Recorder:
    """Collects facts while the probe runs; frozen into a ProbeObservation at the end."""

    spec: ProbeSpec
    endpoint: Endpoint
    client_certificate_sha256: str | None
    started: float = field(default_factory=trio.current_time)
    connected_at: float | None = None
    facts: dict = field(default_factory=dict)

    def elapsed_ms(self) -> float:
        base = self.connected_at if self.connected_at is not None else self.started
        return round((trio.current_time() - base) * 1000, 3)

    def note(self, events: list[Event], connection: TLSClientConnection) -> None:
        for event in events:
            match event:
                case ServerHelloReceived():
                    self.facts["server_hello_seen"] = True
                case CertificateRequested():
                    self.facts["certificate_request_seen"] = True
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
                    if "alert_sent" not in self.facts:
                        self.facts["alert_sent"] = Alert(code, self._alert_phase(), self.elapsed_ms())
                case ApplicationData():
                    self._first_after_handshake(AfterHandshake.DATA)
                case ConnectionClosed():
                    self._first_after_handshake(AfterHandshake.EOF)
                case TLSFailed(message=message):
                    self.facts.setdefault("tls_error", message)
        # Facts OpenSSL can answer for as soon as the server has spoken.
        if self.facts.get("server_hello_seen"):
            version = connection.negotiated_version()
            if version:
                self.facts["negotiated_version"] = version
            chain = connection.peer_chain()
            if chain and not self.facts.get("peer_chain_der"):
                from cryptography.hazmat.primitives.serialization import Encoding

                self.facts["peer_chain_der"] = tuple(c.public_bytes(Encoding.DER) for c in chain)
        if self.facts.get("certificate_request_seen") and "client_ca_names" not in self.facts:
            self.facts["client_ca_names"] = tuple(connection.client_ca_names())
        if self.facts.get("handshake_completed") and "cipher" not in self.facts:
            self.facts["cipher"] = connection.cipher()

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


async def run_probe(
    endpoint: Endpoint,
    spec: ProbeSpec,
    credential: ClientCredential | None,
    timeouts: Timeouts,
    http_request: HttpRequest | None,
) -> ProbeObservation:
    """Connect once, present ``credential`` at ``spec.version``, and record everything."""
    fingerprint = None
    if credential is not None:
        from cryptography.hazmat.primitives import hashes

        fingerprint = credential.certificate.fingerprint(hashes.SHA256()).hex()
    recorder = _Recorder(spec, endpoint, fingerprint)

    stream: trio.SocketStream | None = None
    with trio.move_on_after(timeouts.connect) as connect_scope:
        try:
            stream = await trio.open_tcp_stream(endpoint.host, endpoint.port)
        except OSError as error:
            recorder.facts["connect_error"] = _os_error_text(error)
            return recorder.freeze()
    if connect_scope.cancelled_caught or stream is None:
        recorder.facts["timed_out"] = Phase.CONNECT
        recorder.facts["connect_error"] = f"no TCP connection within {timeouts.connect:g}s"
        return recorder.freeze()

    recorder.connected_at = trio.current_time()
    recorder.facts["connected"] = True
    recorder.facts["connect_ms"] = round((recorder.connected_at - recorder.started) * 1000, 3)
    _close_with_reset(stream)
    try:
        connection = TLSClientConnection(build_context(spec.version, credential), endpoint.server_name)
        await _exchange(stream, connection, recorder, timeouts, http_request)
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()
    return recorder.freeze()


async def _exchange(
    stream: trio.SocketStream,
    connection: TLSClientConnection,
    recorder: _Recorder,
    timeouts: Timeouts,
    http_request: HttpRequest | None,
) -> None:
    recorder.note(connection.start(), connection)
    with trio.move_on_after(timeouts.handshake) as scope:
        while not connection.handshake_completed and not connection.finished:
            if not await _pump(stream, connection, recorder):
                break
    if scope.cancelled_caught:
        recorder.facts["timed_out"] = Phase.HANDSHAKE
        return
    if not connection.handshake_completed or connection.finished:
        return

    if connection.negotiated_version() == "TLSv1.3":
        # The client finished first; wait for the server's word on our certificate.
        with trio.move_on_after(timeouts.post_handshake):
            while "after_handshake" not in recorder.facts and not connection.finished:
                if not await _pump(stream, connection, recorder):
                    break
        recorder.facts.setdefault("after_handshake", AfterHandshake.TIMEOUT)
        if connection.finished:
            return

    if http_request is None:
        return
    await _http_exchange(stream, connection, recorder, timeouts, http_request)


async def _http_exchange(
    stream: trio.SocketStream,
    connection: TLSClientConnection,
    recorder: _Recorder,
    timeouts: Timeouts,
    http_request: HttpRequest,
) -> None:
    received = bytearray()
    status: tuple[int, str] | None = None
    error: str | None = None
    at_ms: float | None = None
    try:
        connection.send_application_data(http_request.encode())
    except Exception as exc:  # the connection died between handshake and request
        recorder.facts["http"] = HttpExchange(http_request.request_line, error=f"could not send: {exc}")
        return
    with trio.move_on_after(timeouts.http) as scope:
        await _flush(stream, connection, recorder)
        while error is None and status is None:
            events = await _receive(stream, connection, recorder)
            if events is None:
                break
            for event in events:
                if isinstance(event, ApplicationData):
                    received.extend(event.data)
            if b"\r\n" in received or len(received) > _MAX_HTTP_HEAD:
                status = parse_status_line(bytes(received))
                at_ms = recorder.elapsed_ms()
                if status is None:
                    error = "response is not HTTP"
            elif connection.finished:
                break
    if status is None and error is None:
        if scope.cancelled_caught:
            error = f"no HTTP response within {timeouts.http:g}s"
            recorder.facts["timed_out"] = Phase.HTTP
        else:
            error = "connection closed without an HTTP response"
    recorder.facts["http"] = HttpExchange(
        request_line=http_request.request_line,
        status=status[0] if status else None,
        reason=status[1] if status else "",
        at_ms=at_ms,
        error=error,
    )


def parse_status_line(head: bytes) -> tuple[int, str] | None:
    """``HTTP/1.1 400 Bad Request`` -> (400, "Bad Request"); None if it is not HTTP."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not (parts[1].isdigit() and len(parts[1]) == 3):
        return None
    return int(parts[1]), (parts[2] if len(parts) > 2 else "")


async def _pump(stream: trio.SocketStream, connection: TLSClientConnection, recorder: _Recorder) -> bool:
    """Send what TLS wants sent, then receive once. False when the transport is done."""
    await _flush(stream, connection, recorder)
    return await _receive(stream, connection, recorder) is not None


async def _flush(stream: trio.SocketStream, connection: TLSClientConnection, recorder: _Recorder) -> bool:
    outgoing = connection.bytes_to_send()
    if not outgoing:
        return True
    try:
        await stream.send_all(outgoing)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        # The server hung up. What it sent before (often the alert that explains
        # why) may still be in our receive buffer, so the caller reads on.
        return False
    return True


async def _receive(
    stream: trio.SocketStream, connection: TLSClientConnection, recorder: _Recorder
) -> list[Event] | None:
    try:
        data = await stream.receive_some(_RECEIVE_SIZE)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        data = b""
    events = connection.receive_data(data) if data else connection.receive_eof()
    recorder.note(events, connection)
    # Answer whatever the server's data asks of us (key updates, alerts to send).
    if data and not connection.finished:
        await _flush(stream, connection, recorder)
    if not data or connection.finished:
        return events if events else None
    return events


def _close_with_reset(stream: trio.SocketStream) -> None:
    """Close with RST (SO_LINGER 0): thousands of probes would otherwise fill the
    ephemeral port range with TIME_WAIT sockets."""
    try:
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


def _os_error_text(error: OSError) -> str:
    """The reason a person needs ("Connection refused"), not trio's wrapper text
    ("all attempts to connect ... failed"), which keeps the real errors as its cause."""
    cause = error.__cause__
    if isinstance(cause, BaseExceptionGroup):
        causes = [e for e in cause.exceptions if isinstance(e, OSError)]
        if causes:
            error = causes[0]
    if isinstance(error, socket.gaierror):
        return f"cannot resolve host: {error.strerror or error}"
    if error.errno and error.errno > 0:
        return os.strerror(error.errno)
    return str(error) or error.__class__.__name__
