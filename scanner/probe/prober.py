"""Make one TLS connection and record what happened: the trio loop around
``TLSClientConnection``.

Each phase runs under its own cancel scope. A phase that runs out of time is
recorded as ``timed_out`` and ends the probe; it is never taken as acceptance.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from mtls_audit.scanner.model.observations import (
    AfterHandshake,
    Alert,
    HttpExchange,
    Phase,
    ProbeObservation,
    ProbeSpec,
)
from mtls_audit.scanner.model.target import ClientCredential
from mtls_audit.scanner.probe.http import MAX_HTTP_HEAD, HttpRequest, parse_status_line
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
from mtls_audit.scanner.tls.contexts import SHARED_CONTEXTS, ContextCache

_RECEIVE_SIZE = 65536
# Bytes taken out of OpenSSL must reach the wire: OpenSSL has already moved on (a
# KeyUpdate switches our keys the moment it is written), so a send cut short by a
# phase deadline would turn every later record into garbage for the server. Sends
# are shielded from the phase's deadline and get this long of their own.
_SEND_TIMEOUT = 5.0


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
class Endpoint:
    host: str
    port: int
    server_name: str | None  # None: send no SNI (IP literal, RFC 6066 section 3)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class _OurSideFailed(Exception):
    """Sending failed for a reason of ours (not the server closing)."""


@dataclass
class _Recorder:
    """Collects facts while the probe runs; frozen into a ProbeObservation at the end."""

    spec: ProbeSpec
    endpoint: Endpoint
    client_certificate_sha256: str | None
    started: float = field(default_factory=trio.current_time)
    connected_at: float | None = None
    phase: Phase = Phase.CONNECT
    facts: dict[str, Any] = field(default_factory=dict)

    def elapsed_ms(self) -> float:
        base = self.connected_at if self.connected_at is not None else self.started
        return round((trio.current_time() - base) * 1000, 3)

    def note(self, events: list[Event], connection: TLSClientConnection, *, at_eof: bool = False) -> None:
        for event in events:
            match event:
                case ServerHelloReceived():
                    self.facts["server_hello_seen"] = True
                case CertificateRequested():
                    self.facts["certificate_request_seen"] = True
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


OpenStream = Callable[[str, int], Awaitable[trio.abc.Stream]]


@functools.lru_cache(maxsize=4096)
def _literal_family(host: str) -> int | None:
    """AF_INET or AF_INET6 for an IP literal, None for a name (parsed once per host)."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return None


async def open_tcp(host: str, port: int) -> trio.abc.Stream:
    """``trio.open_tcp_stream``, minus its machinery where it has nothing to do.

    For a host name, it is ``trio.open_tcp_stream`` (resolution, happy eyeballs). An
    IP literal has one address and nothing to race, so one socket connects to it
    directly: no resolver call, no nursery, no task per attempt, which a scan of
    thousands of short connections pays for on every probe. Errors are the socket's
    own (``ConnectionRefusedError``...), the same ones ``open_tcp_stream`` keeps as
    the cause of its wrapper error."""
    family = _literal_family(host)
    if family is None:
        return await trio.open_tcp_stream(host, port)
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        await sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def run_probe(
    endpoint: Endpoint,
    spec: ProbeSpec,
    credential: ClientCredential | None,
    timeouts: Timeouts,
    http_request: HttpRequest | None,
    *,
    open_stream: OpenStream = open_tcp,
    contexts: ContextCache = SHARED_CONTEXTS,
) -> ProbeObservation:
    """Connect once, present ``credential`` at ``spec.version``, and record everything.

    ``open_stream`` makes the connection (tests hand in an in-memory one); ``contexts``
    holds the TLS contexts, built once per credential and version and shared by every
    probe (the process-wide cache unless one is given)."""
    recorder = _Recorder(spec, endpoint, contexts.certificate_sha256(credential))

    stream: trio.abc.Stream | None = None
    with trio.move_on_after(timeouts.connect) as connect_scope:
        try:
            stream = await open_stream(endpoint.host, endpoint.port)
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
        connection = TLSClientConnection(contexts.context(spec.version, credential), endpoint.server_name)
        await _exchange(_Wire(stream, connection, recorder), timeouts, http_request)
    except _OurSideFailed as failure:
        recorder.facts["local_error"] = str(failure)
    finally:
        if isinstance(stream, trio.SocketStream):
            # What SocketStream.aclose does, without its checkpoint: closing a socket
            # waits for nothing, so there is nothing to shield from a deadline either.
            stream.socket.close()
        else:
            with trio.CancelScope(shield=True):
                await stream.aclose()
    return recorder.freeze()


@dataclass
class _Wire:
    """Moves bytes between the socket and the sans-I/O connection, recording events."""

    stream: trio.abc.Stream
    connection: TLSClientConnection
    recorder: _Recorder
    eof: bool = False

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
            scope.deadline = trio.current_time() + _SEND_TIMEOUT
            try:
                await self.stream.send_all(outgoing)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                return
        if scope.cancelled_caught:
            raise _OurSideFailed(f"could not send {len(outgoing)} bytes within {_SEND_TIMEOUT:g}s")

    async def receive(self) -> list[Event]:
        """Read once, feed OpenSSL, and send whatever it answers (key updates, alerts)."""
        try:
            data = await self.stream.receive_some(_RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            data = b""
        if data:
            events = self.connection.receive_data(data)
            self.recorder.note(events, self.connection)
        else:
            self.eof = True
            events = self.connection.receive_eof()
            self.recorder.note(events, self.connection, at_eof=True)
        await self.flush()
        return events

    async def pump(self) -> None:
        """Send what TLS wants sent, then receive once."""
        await self.flush()
        await self.receive()


async def _exchange(wire: _Wire, timeouts: Timeouts, http_request: HttpRequest | None) -> None:
    connection, recorder = wire.connection, wire.recorder
    recorder.phase = Phase.HANDSHAKE
    recorder.note(connection.start(), connection)
    with trio.move_on_after(timeouts.handshake) as scope:
        while not connection.handshake_completed and not wire.over:
            await wire.pump()
    if scope.cancelled_caught:
        recorder.facts["timed_out"] = Phase.HANDSHAKE
        return
    if not connection.handshake_completed or wire.over:
        return

    recorder.phase = Phase.POST_HANDSHAKE
    if connection.negotiated_version() == "TLSv1.3":
        # The client finished first; wait for the server's word on our certificate.
        with trio.move_on_after(timeouts.post_handshake):
            while "after_handshake" not in recorder.facts and not wire.over:
                await wire.pump()
        recorder.facts.setdefault("after_handshake", AfterHandshake.TIMEOUT)
        if wire.over:
            return

    if http_request is not None:
        recorder.phase = Phase.HTTP
        await _http_exchange(wire, timeouts, http_request)


async def _http_exchange(wire: _Wire, timeouts: Timeouts, http_request: HttpRequest) -> None:
    connection, recorder = wire.connection, wire.recorder
    received = bytearray()
    status: tuple[int, str] | None = None
    error: str | None = None
    at_ms: float | None = None
    try:
        connection.send_application_data(http_request.encode())
    except Exception as exc:  # noqa: BLE001 - the session died between handshake and request
        recorder.facts["http"] = HttpExchange(http_request.request_line, error=f"could not send: {exc}")
        return
    with trio.move_on_after(timeouts.http) as scope:
        await wire.flush()
        while error is None and status is None:
            for event in await wire.receive():
                if isinstance(event, ApplicationData):
                    received.extend(event.data)
            if b"\r\n" in received or len(received) > MAX_HTTP_HEAD:
                status = parse_status_line(bytes(received))
                at_ms = recorder.elapsed_ms()
                if status is None:
                    error = "response is not HTTP"
            elif wire.over:
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


def _close_with_reset(stream: trio.abc.Stream) -> None:
    """Close with RST (SO_LINGER 0): thousands of probes would otherwise fill the
    ephemeral port range with TIME_WAIT sockets."""
    if not isinstance(stream, trio.SocketStream):
        return
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
