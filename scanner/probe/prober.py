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
from dataclasses import dataclass

import trio

from mtls_audit.scanner.model.observations import (
    AfterHandshake,
    Phase,
    PostgresExchange,
    ProbeObservation,
    ProbeSpec,
)
from mtls_audit.scanner.model.target import ClientCredential, PostgresNegotiation
from mtls_audit.scanner.probe.exchanges import application_exchange
from mtls_audit.scanner.probe.postgres import SSL_REQUEST, ssl_response_text
from mtls_audit.scanner.probe.requests import AppRequest, PostgresStartup, alpn_for
from mtls_audit.scanner.probe.wire import RECEIVE_SIZE, Endpoint, OurSideFailed, Recorder, Wire
from mtls_audit.scanner.tls.client import TLSClientConnection
from mtls_audit.scanner.tls.contexts import SHARED_CONTEXTS, ContextCache

__all__ = ["Endpoint", "OpenStream", "Timeouts", "open_tcp", "run_probe"]


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed for each phase of a probe."""

    connect: float = 5.0
    handshake: float = 5.0
    # How long to wait after a TLS 1.3 handshake for the server's verdict on our
    # certificate. On loopback a rejection arrives in under 2 ms; a remote server
    # adds one round trip. Servers that send no session ticket cost this much.
    post_handshake: float = 1.0
    http: float = 5.0  # the application exchange: HTTP, gRPC or PostgreSQL


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
    request: AppRequest | None,
    *,
    open_stream: OpenStream = open_tcp,
    contexts: ContextCache = SHARED_CONTEXTS,
) -> ProbeObservation:
    """Connect once, present ``credential`` at ``spec.version``, make ``request`` after
    the handshake (None: none, ``probe: none``), and record everything.

    ``open_stream`` makes the connection (tests hand in an in-memory one); ``contexts``
    holds the TLS contexts, built once per credential and version and shared by every
    probe (the process-wide cache unless one is given)."""
    recorder = Recorder(spec, endpoint, contexts.certificate_sha256(credential))

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
        if isinstance(request, PostgresStartup) and request.negotiation is PostgresNegotiation.POSTGRES:
            refusal = await _postgres_ssl_request(stream, recorder, timeouts.handshake)
            if refusal is not None:
                recorder.facts["postgres"] = PostgresExchange(
                    request.user, request.database, request.negotiation.value, error=refusal
                )
                return recorder.freeze()
        context = contexts.context(spec.version, credential, alpn_for(request))
        connection = TLSClientConnection(context, endpoint.server_name)
        await _exchange(Wire(stream, connection, recorder), timeouts, request)
    except OurSideFailed as failure:
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


async def _postgres_ssl_request(stream: trio.abc.Stream, recorder: Recorder, seconds: float) -> str | None:
    """PostgreSQL starts TLS only when asked in its own protocol: an SSLRequest in the
    clear, answered by one byte. None when the server said S, else why not."""
    recorder.phase = Phase.HANDSHAKE
    answer = b""
    with trio.move_on_after(seconds) as scope:
        try:
            await stream.send_all(SSL_REQUEST)
            answer = bytes(await stream.receive_some(RECEIVE_SIZE))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as error:
            why = _os_error_text(error) if isinstance(error, OSError) else "the connection broke"
            return f"no answer to the PostgreSQL SSLRequest: {why}"
    if scope.cancelled_caught:
        recorder.facts["timed_out"] = Phase.HANDSHAKE
        return f"no answer to the PostgreSQL SSLRequest within {seconds:g}s"
    return ssl_response_text(answer)


async def _exchange(wire: Wire, timeouts: Timeouts, request: AppRequest | None) -> None:
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

    if request is not None:
        await application_exchange(wire, timeouts.http, request)


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
