"""Small purpose-built servers for the ``probe: postgres`` and ``probe: grpc`` probes:
a PostgreSQL 17 imitation speaking direct TLS (Debian 12 ships only PostgreSQL 15),
and servers that misbehave in the PostgreSQL SSLRequest, after the TLS handshake, or
in HTTP/2.

Each runs in a background thread of the test process on a free loopback port
(`serving`), one thread per connection, and stops at the end of its ``with`` block:
the listener closes, and every connection still held (a server that "hangs") is
released by the stop event, then closed. TLS is the stdlib ``ssl`` module with the
protocol PKI (`apache_servers.write_protocol_pki`): the server certificate
``server.pem`` (CN=mtls.test, IP:127.0.0.1) and the client CA ``client-ca.pem``.

Every TLS server here asks for a client certificate without requiring it
(``CERT_OPTIONAL``), speaks TLS 1.3 only and sends no session ticket (as PostgreSQL
does): the TLS layer then decides nothing for a client without a certificate, and
the verdict rests on what the misbehaving application says. A certificate from
another CA still fails the handshake (alert 48 unknown_ca), as on a real server.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from identity_servers import IdentityPKI

HOLD = 10.0  # the longest any connection is kept; the stop event ends it sooner
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
PROTOCOL_3_0 = 196608

Handler = Callable[[socket.socket, threading.Event], None]


# -- running --------------------------------------------------------------------------


@contextmanager
def serving(handler: Handler) -> Iterator[int]:
    """Serve ``handler`` on 127.0.0.1 (a free port, yielded) until the block ends."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    workers: list[threading.Thread] = []

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(HOLD)
            worker = threading.Thread(target=_guarded, args=(handler, connection, stop), daemon=True)
            worker.start()
            workers.append(worker)

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(timeout=5)
        listener.close()
        for worker in workers:
            worker.join(timeout=5)


def _guarded(handler: Handler, connection: socket.socket, stop: threading.Event) -> None:
    """Run one connection; whatever the client does to it ends it quietly."""
    try:
        handler(connection, stop)
    except (OSError, ValueError, h2.exceptions.H2Error):
        pass  # ssl.SSLError and TimeoutError are OSErrors
    finally:
        connection.close()


# -- TLS ------------------------------------------------------------------------------


def server_context(pki: IdentityPKI, alpn: list[str] | None = None) -> ssl.SSLContext:
    """TLS 1.3 only, client certificate asked for (from the client CA) but optional,
    no session tickets, ``alpn`` offered by the server when given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(pki.pem("server"), pki.key("server"))
    context.load_verify_locations(pki.pem("client-ca"))
    context.verify_mode = ssl.CERT_OPTIONAL
    context.num_tickets = 0
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def has_certificate(tls: ssl.SSLSocket) -> bool:
    """The client sent a certificate and the handshake verified it (with
    ``CERT_OPTIONAL`` an untrusted one fails the handshake before this)."""
    return tls.getpeercert(binary_form=True) is not None


def recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def hold(stop: threading.Event) -> None:
    """Say nothing and keep the connection open until the servers stop."""
    stop.wait(HOLD)


# -- PostgreSQL -----------------------------------------------------------------------


def read_startup(tls: ssl.SSLSocket) -> bytes | None:
    """The StartupMessage (length-prefixed, protocol 3.0); None when the client left
    or sent something else."""
    head = recv_exactly(tls, 4)
    if head is None:
        return None
    (length,) = struct.unpack("!i", head)
    if not 8 <= length <= 10_000:
        return None
    body = recv_exactly(tls, length - 4)
    if body is None or struct.unpack("!i", body[:4])[0] != PROTOCOL_3_0:
        return None
    return body


def error_response(sqlstate: str, message: str, severity: str = "FATAL") -> bytes:
    fields = b"".join(
        kind + value.encode() + b"\0"
        for kind, value in ((b"S", severity), (b"V", severity), (b"C", sqlstate), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


def authentication_sasl(*mechanisms: str) -> bytes:
    body = struct.pack("!i", 10) + b"".join(m.encode() + b"\0" for m in mechanisms) + b"\0"
    return b"R" + struct.pack("!i", len(body) + 4) + body


NO_CERTIFICATE = error_response("28000", "connection requires a valid client certificate")
SCRAM = authentication_sasl("SCRAM-SHA-256")


def answer_startup(tls: ssl.SSLSocket, stop: threading.Event) -> None:
    """What ``hostssl ... scram-sha-256 clientcert=verify-full`` answers: FATAL 28000
    without a certificate, the SCRAM challenge with one from the client CA."""
    if read_startup(tls) is None:
        return
    if not has_certificate(tls):
        tls.sendall(NO_CERTIFICATE)
        return
    tls.sendall(SCRAM)
    # A real server waits for the SASLInitialResponse; the probe never sends one.
    tls.settimeout(2)
    try:
        tls.recv(1)
    except TimeoutError:
        pass


def direct_postgres(pki: IdentityPKI, connection: socket.socket, stop: threading.Event) -> None:
    """PostgreSQL 17's direct TLS (``sslnegotiation=direct``): the ClientHello comes at
    once, without an SSLRequest, and must offer ALPN ``postgresql`` (the server closes
    on one that does not). Anything that is not TLS fails the handshake."""
    with server_context(pki, ["postgresql"]).wrap_socket(connection, server_side=True) as tls:
        if tls.selected_alpn_protocol() != "postgresql":
            return
        answer_startup(tls, stop)


def _after_ssl_request(connection: socket.socket) -> bool:
    return recv_exactly(connection, len(SSL_REQUEST)) == SSL_REQUEST


def answers_n(connection: socket.socket, stop: threading.Event) -> None:
    """No SSL here: N, then (as a real server) wait for a plaintext StartupMessage."""
    if _after_ssl_request(connection):
        connection.sendall(b"N")
        connection.recv(4096)


def s_with_plaintext(connection: socket.socket, stop: threading.Event) -> None:
    """S and, in the same packet, an unencrypted AuthenticationOk: what a man in the
    middle injects (CVE-2021-23222). A client must refuse it, not read it as TLS."""
    if _after_ssl_request(connection):
        connection.sendall(b"S" + b"R" + struct.pack("!ii", 8, 0))
        connection.recv(4096)


def ssl_request_silence(connection: socket.socket, stop: threading.Event) -> None:
    """Reads the SSLRequest and never answers."""
    if _after_ssl_request(connection):
        hold(stop)


def s_then_close(connection: socket.socket, stop: threading.Event) -> None:
    """S, then hangs up before any TLS."""
    if _after_ssl_request(connection):
        connection.sendall(b"S")


GARBAGE = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"  # 'H' is a backend type; its length is not


def postgres_after_tls(
    pki: IdentityPKI, behaviour: Callable[[ssl.SSLSocket, threading.Event], None], misbehave_for: str
) -> Handler:
    """SSLRequest, S, TLS, StartupMessage; then ``behaviour`` for every client
    (``misbehave_for="everyone"``) or only for one without a certificate
    (``"no-cert"``; the valid identity then gets the SCRAM challenge)."""

    def handle(connection: socket.socket, stop: threading.Event) -> None:
        if not _after_ssl_request(connection):
            return
        connection.sendall(b"S")
        with server_context(pki).wrap_socket(connection, server_side=True) as tls:
            if misbehave_for == "no-cert" and has_certificate(tls):
                answer_startup(tls, stop)
                return
            if read_startup(tls) is not None:
                behaviour(tls, stop)

    return handle


def send_garbage(tls: ssl.SSLSocket, stop: threading.Event) -> None:
    tls.sendall(GARBAGE)


def send_a_scrap(tls: ssl.SSLSocket, stop: threading.Event) -> None:
    """Two bytes that are no message (a type byte and half a length), then a close."""
    tls.sendall(b"H\x00")


def say_nothing(tls: ssl.SSLSocket, stop: threading.Event) -> None:
    hold(stop)


# -- gRPC (HTTP/2 over TLS with ALPN h2) ----------------------------------------------


H2Behaviour = Callable[[h2.connection.H2Connection, h2.events.RequestReceived, ssl.SSLSocket], bool]


def grpc_server(
    pki: IdentityPKI,
    on_request: H2Behaviour | None,
    *,
    eager: bool = False,
    window_update_first: bool = False,
    for_no_cert: Callable[[ssl.SSLSocket], None] | None = None,
) -> Handler:
    """An HTTP/2 server (``h2``, server side) behind ALPN h2. Its SETTINGS go out when
    the client's preface has arrived, or at once after the handshake (``eager``, as
    grpcio, Go and nginx do); ``window_update_first``: the first answer to the
    client is a WINDOW_UPDATE, before the SETTINGS ACK. ``on_request`` answers the call and says whether to close; None: never
    answer (SETTINGS, then silence). ``for_no_cert``: what a client without a
    certificate gets instead of HTTP/2."""

    def handle(connection: socket.socket, stop: threading.Event) -> None:
        with server_context(pki, ["h2"]).wrap_socket(connection, server_side=True) as tls:
            if tls.selected_alpn_protocol() != "h2":
                return
            if for_no_cert is not None and not has_certificate(tls):
                for_no_cert(tls)
                return
            config = h2.config.H2Configuration(client_side=False, header_encoding=None)
            conn = h2.connection.H2Connection(config=config)
            conn.initiate_connection()
            if eager:
                tls.sendall(conn.data_to_send())
            update_pending = window_update_first
            while True:
                data = tls.recv(65536)
                if not data:
                    return
                if update_pending:
                    # Before the SETTINGS ACK: a connection-level WINDOW_UPDATE in a
                    # write of its own (servers enlarge the connection window early).
                    update_pending = False
                    conn.increment_flow_control_window(1 << 20)
                    tls.sendall(conn.data_to_send())
                close = False
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived) and on_request is not None:
                        close = on_request(conn, event, tls) or close
                tls.sendall(conn.data_to_send())
                if close:
                    return
                if on_request is None and not eager:
                    hold(stop)
                    return

    return handle


def goaway(conn: h2.connection.H2Connection, request: h2.events.RequestReceived, tls: ssl.SSLSocket) -> bool:
    """A graceful GOAWAY (NO_ERROR) that names no stream: the call is never answered."""
    conn.close_connection(last_stream_id=0)
    return True


def status_200_without_grpc_status(
    conn: h2.connection.H2Connection, request: h2.events.RequestReceived, tls: ssl.SSLSocket
) -> bool:
    """:status 200 with END_STREAM, no grpc-status, then a close."""
    conn.send_headers(
        request.stream_id, [(b":status", b"200"), (b"content-type", b"application/grpc")], end_stream=True
    )
    return True


def unauthenticated_without_certificate(
    conn: h2.connection.H2Connection, request: h2.events.RequestReceived, tls: ssl.SSLSocket
) -> bool:
    """A well-behaved gRPC server enforcing in the application: trailers-only
    UNAUTHENTICATED (16) without a client certificate, OK (0) with one."""
    status = b"0" if has_certificate(tls) else b"16"
    headers = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-status", status)]
    conn.send_headers(request.stream_id, headers, end_stream=True)
    return False


HTTP1_ANSWER = b"HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def grpc_http1_text(pki: IdentityPKI, connection: socket.socket, stop: threading.Event, *, at_once: bool) -> None:
    """Agrees to h2 by ALPN, then speaks HTTP/1.1 and closes: after reading the
    client's preface (whose "PRI * HTTP/2.0" is no request it knows), or ``at_once``
    after the handshake, before the client has said anything."""
    with server_context(pki, ["h2"]).wrap_socket(connection, server_side=True) as tls:
        if at_once or tls.recv(65536):
            tls.sendall(HTTP1_ANSWER)
        if at_once:
            tls.recv(65536)


def text_then_close(tls: ssl.SSLSocket) -> None:
    """Six bytes of HTTP/1.1, less than one HTTP/2 frame header, then a close."""
    if tls.recv(65536):
        tls.sendall(b"HTTP/1")


def grpc_mute_close(pki: IdentityPKI, connection: socket.socket, stop: threading.Event) -> None:
    """Agrees to h2 by ALPN and closes right after the TLS 1.3 handshake, whoever the
    client is: the legitimate identity is turned away exactly like the others."""
    with server_context(pki, ["h2"]).wrap_socket(connection, server_side=True):
        pass


# -- the catalogue --------------------------------------------------------------------

KINDS: dict[str, Callable[[IdentityPKI], Handler]] = {
    # A: PostgreSQL 17 direct TLS
    "direct-postgres": lambda pki: partial(direct_postgres, pki),
    # B: the SSLRequest and what follows it
    "answers-n": lambda pki: answers_n,
    "s-with-plaintext": lambda pki: s_with_plaintext,
    "ssl-request-silence": lambda pki: ssl_request_silence,
    "s-then-close": lambda pki: s_then_close,
    "garbage-after-tls": lambda pki: postgres_after_tls(pki, send_garbage, "everyone"),
    "silence-after-tls": lambda pki: postgres_after_tls(pki, say_nothing, "everyone"),
    "garbage-for-no-cert": lambda pki: postgres_after_tls(pki, send_garbage, "no-cert"),
    "silence-for-no-cert": lambda pki: postgres_after_tls(pki, say_nothing, "no-cert"),
    "scrap-for-no-cert": lambda pki: postgres_after_tls(pki, send_a_scrap, "no-cert"),
    # C: gRPC
    "grpc-http1-text": lambda pki: partial(grpc_http1_text, pki, at_once=False),
    "grpc-http1-text-at-once": lambda pki: partial(grpc_http1_text, pki, at_once=True),
    "grpc-settings-then-goaway": lambda pki: grpc_server(pki, goaway),
    "grpc-settings-then-hang": lambda pki: grpc_server(pki, None),
    "grpc-200-without-status": lambda pki: grpc_server(pki, status_200_without_grpc_status),
    "grpc-mute-close": lambda pki: partial(grpc_mute_close, pki),
    # Well-behaved controls, the second with its SETTINGS sent at once.
    "grpc-unauthenticated": lambda pki: grpc_server(pki, unauthenticated_without_certificate),
    "grpc-unauthenticated-eager": lambda pki: grpc_server(pki, unauthenticated_without_certificate, eager=True),
    "grpc-unauthenticated-eager-split": lambda pki: grpc_server(
        pki, unauthenticated_without_certificate, eager=True, window_update_first=True
    ),
    "grpc-scrap-for-no-cert": lambda pki: grpc_server(
        pki, unauthenticated_without_certificate, for_no_cert=text_then_close
    ),
}


@contextmanager
def running(kind: str, pki: IdentityPKI) -> Iterator[int]:
    """The server ``kind`` of `KINDS` on a free loopback port (yielded)."""
    with serving(KINDS[kind](pki)) as port:
        yield port
