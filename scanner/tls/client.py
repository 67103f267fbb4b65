"""A TLS client with no I/O: bytes in, events out.

pyOpenSSL's ``Connection(context, None)`` works on memory BIOs. This class feeds it
the bytes the network delivered, runs the handshake or reads, and turns what OpenSSL
did into events. It never touches a socket or a clock, so the trio loop around it
(``scanner.prober``) stays small, and everything OpenSSL reports can be recorded.

Why not ``trio.SSLStream``: it only takes a stdlib ``ssl`` context, which hides the
CertificateRequest, the alerts and TLS 1.3 session tickets; those are the evidence.

One context serves many connections (``scanner.tls.contexts`` builds each once per
credential and version), so nothing about one connection may live on the context:
the context's info callback only dispatches to the connection's own observer, which
rides on the connection as its app data.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509
from OpenSSL import SSL, crypto
from OpenSSL._util import lib as _openssl

from mtls_audit.scanner.model.observations import TLSVersion
from mtls_audit.scanner.model.target import ClientCredential

OPENSSL_VERSIONS = {
    TLSVersion.TLS1_0: SSL.TLS1_VERSION,
    TLSVersion.TLS1_1: SSL.TLS1_1_VERSION,
    TLSVersion.TLS1_2: SSL.TLS1_2_VERSION,
    TLSVersion.TLS1_3: SSL.TLS1_3_VERSION,
}

# State strings from OpenSSL's SSL_state_string_long(); stable since OpenSSL 1.1.0.
# Compared as the bytes OpenSSL returns: the info callback runs some twenty times
# per connection.
_STATE_SERVER_HELLO = b"SSLv3/TLS read server hello"
_STATE_CERTIFICATE_REQUEST = b"SSLv3/TLS read server certificate request"
_STATE_CLIENT_CERTIFICATE = b"SSLv3/TLS write client certificate"
_STATE_SESSION_TICKET = b"SSLv3/TLS read server session ticket"

_READ_SIZE = 65536

T = TypeVar("T")


@dataclass(frozen=True)
class HandshakeCompleted:
    pass


@dataclass(frozen=True)
class ServerHelloReceived:
    pass


@dataclass(frozen=True)
class CertificateRequested:
    """A CertificateRequest was read: in the handshake, or after it (TLS 1.3
    post-handshake authentication, or a TLS 1.2 renegotiation the server started)."""

    after_handshake: bool = False


@dataclass(frozen=True)
class CertificateSent:
    """Our Certificate message went out (empty when we have no certificate)."""


@dataclass(frozen=True)
class SessionTicketReceived:
    pass


@dataclass(frozen=True)
class AlertReceived:
    code: int
    fatal: bool


@dataclass(frozen=True)
class AlertSent:
    code: int
    fatal: bool


@dataclass(frozen=True)
class ApplicationData:
    data: bytes


@dataclass(frozen=True)
class ConnectionClosed:
    """The peer closed: close_notify, or EOF on the transport."""

    clean: bool


@dataclass(frozen=True)
class TLSFailed:
    """OpenSSL gave up. Only the first failure is reported: later calls raise
    ``SSL.Error([])`` with nothing useful in it."""

    message: str


Event = (
    HandshakeCompleted
    | ServerHelloReceived
    | CertificateRequested
    | CertificateSent
    | SessionTicketReceived
    | AlertReceived
    | AlertSent
    | ApplicationData
    | ConnectionClosed
    | TLSFailed
)


def build_context(
    version: TLSVersion, credential: ClientCredential | None, alpn: tuple[bytes, ...] = ()
) -> SSL.Context:
    """A client context pinned to exactly one protocol version, offering ``alpn``.

    The server's certificate is deliberately not verified here: an audit must see a
    misconfigured server's handshake through to the end. Path validation and name
    matching run afterwards, on the chain the server presented.

    Nothing in it belongs to one connection, and nothing changes it once built, so one
    context may serve any number of connections, concurrently (see ``contexts``).
    """
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_min_proto_version(OPENSSL_VERSIONS[version])
    context.set_max_proto_version(OPENSSL_VERSIONS[version])
    if version in (TLSVersion.TLS1_0, TLSVersion.TLS1_1):
        # OpenSSL 3 refuses to offer TLS 1.0/1.1 at the default security level 1.
        context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    context.set_verify(SSL.VERIFY_NONE)
    # Every probe is a full handshake: a resumed TLS 1.3 session has no CertificateRequest
    # and would hide the server's verdict on our certificate. OpenSSL clients resume only
    # when told to (SSL_set_session); keep even the cache off, so sharing a context
    # can never make one probe resume another's session.
    context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
    if version is TLSVersion.TLS1_3:
        # Offer post-handshake authentication: Apache with SSLVerifyClient inside a
        # <Location> asks for the certificate only once it has read the request. A
        # client that does not offer it gets a 403 for every identity, which reads as
        # "refused" without the server ever judging a certificate. Offering it changes
        # nothing for servers that ask in the handshake. (TLS 1.2's equivalent, the
        # server-initiated renegotiation, OpenSSL clients accept by default.)
        # pyOpenSSL has no wrapper for SSL_CTX_set_post_handshake_auth.
        _openssl.SSL_CTX_set_post_handshake_auth(context._context, 1)  # noqa: SLF001
    if alpn:
        context.set_alpn_protos(list(alpn))
    if credential is not None:
        context.use_certificate(credential.certificate)
        context.use_privatekey(credential.private_key)
        for certificate in credential.chain:
            context.add_extra_chain_cert(certificate)
    _dispatch_info_from(context)
    return context


# Contexts whose info callback dispatches to each connection's observer. A context
# from elsewhere gets the dispatcher when its first connection is made.
_DISPATCHING: weakref.WeakSet[SSL.Context] = weakref.WeakSet()


def _dispatch_info_from(context: SSL.Context) -> None:
    context.set_info_callback(_dispatch_info)
    _DISPATCHING.add(context)


def _dispatch_info(connection: SSL.Connection, where: int, ret: int) -> None:
    """The context's info callback: it fires for every connection made from the
    context, so it hands the call to that connection's own observer."""
    # cffi swallows exceptions raised here, so nothing may escape.
    try:
        observer = connection.get_app_data()
        if isinstance(observer, _InfoObserver):
            observer.on_info(connection, where, ret)
    except Exception:  # noqa: BLE001 - see above
        pass


class _InfoObserver:
    """One connection's events as OpenSSL's info callback reports them (its app data).

    It holds no reference back to the connection, so a connection and its observer
    form no reference cycle and are freed as soon as the probe drops them."""

    __slots__ = ("events", "handshake_completed", "seen_states")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.seen_states: set[bytes] = set()
        self.handshake_completed = False

    def on_info(self, connection: SSL.Connection, where: int, ret: int) -> None:
        # cffi swallows exceptions raised here, so nothing may escape.
        try:
            if where & SSL.SSL_CB_ALERT:
                # ret: alert level in the high byte, description in the low byte.
                fatal = (ret >> 8) == 2
                if where & SSL.SSL_CB_READ:
                    self.events.append(AlertReceived(code=ret & 0xFF, fatal=fatal))
                else:
                    self.events.append(AlertSent(code=ret & 0xFF, fatal=fatal))
                return
            state = connection.get_state_string()
            if state == _STATE_SESSION_TICKET:
                # Every ticket is an event: a server may send several.
                self.events.append(SessionTicketReceived())
            elif state == _STATE_CERTIFICATE_REQUEST and where & SSL.SSL_CB_LOOP:
                # Every request is an event too: a server may ask again after the
                # handshake. Only the state machine's per-message callback counts; the
                # exit callback repeats the state while OpenSSL waits for more bytes.
                self.events.append(CertificateRequested(after_handshake=self.handshake_completed))
            elif state not in self.seen_states:
                self.seen_states.add(state)
                if state == _STATE_SERVER_HELLO:
                    self.events.append(ServerHelloReceived())
                elif state == _STATE_CLIENT_CERTIFICATE:
                    self.events.append(CertificateSent())
        except Exception:  # noqa: BLE001 - see above
            pass


class TLSClientConnection:
    """One client-side TLS connection, driven by the bytes it is given."""

    def __init__(self, context: SSL.Context, server_name: str | None) -> None:
        self._observer = _InfoObserver()
        self._failed = False
        self._closed = False
        if context not in _DISPATCHING:
            _dispatch_info_from(context)
        self._connection = SSL.Connection(context, None)
        self._connection.set_app_data(self._observer)
        self._connection.set_connect_state()
        if server_name:
            self._connection.set_tlsext_host_name(server_name.encode("idna"))
        self.handshake_completed = False

    # -- inputs ---------------------------------------------------------------

    def start(self) -> list[Event]:
        """Produce the ClientHello (fetch it with ``bytes_to_send``)."""
        return self._advance()

    def receive_data(self, data: bytes | bytearray) -> list[Event]:
        if data:
            self._connection.bio_write(data)
        return self._advance()

    def receive_eof(self) -> list[Event]:
        self._connection.bio_shutdown()
        events = self._advance()
        if not self._closed and not self._failed:
            self._closed = True
            events.append(ConnectionClosed(clean=False))
        return events

    def send_application_data(self, data: bytes) -> None:
        if not self.handshake_completed:
            raise RuntimeError("handshake not completed")
        self._connection.sendall(data)

    # -- outputs --------------------------------------------------------------

    def bytes_to_send(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self._connection.bio_read(_READ_SIZE)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    @property
    def finished(self) -> bool:
        return self._failed or self._closed

    def negotiated_version(self) -> str | None:
        name = self._connection.get_protocol_version_name()
        return None if name in ("", "Unknown") else name

    def cipher(self) -> str | None:
        return self._connection.get_cipher_name()

    def alpn_protocol(self) -> str | None:
        """The protocol the server chose by ALPN, if any."""
        chosen = self._connection.get_alpn_proto_negotiated()
        return chosen.decode("ascii", "replace") if chosen else None

    def peer_chain(self) -> list[x509.Certificate]:
        return self._connection.get_peer_cert_chain(as_cryptography=True) or []

    def peer_chain_der(self) -> tuple[bytes, ...]:
        """The chain as the server sent it, DER, straight from OpenSSL (no round trip
        through ``cryptography`` objects: the prober keeps only the bytes)."""
        chain = self._connection.get_peer_cert_chain() or []
        return tuple(crypto.dump_certificate(crypto.FILETYPE_ASN1, certificate) for certificate in chain)

    def client_ca_names(self) -> list[str]:
        # Server-controlled names: cryptography refuses some encodings OpenSSL accepts.
        try:
            names = self._connection.get_client_ca_list(as_cryptography=True)
        except ValueError:
            return ["<undecodable CA names>"]
        texts = []
        for name in names:
            try:
                texts.append(name.rfc4514_string())
            except ValueError:
                texts.append("<undecodable CA name>")
        return texts

    # -- internals ------------------------------------------------------------

    def _advance(self) -> list[Event]:
        if self.finished:
            return self._take_pending()
        if not self.handshake_completed:
            completed, _ = self._attempt(self._connection.do_handshake)
            if not completed:
                return self._take_pending()
            self.handshake_completed = self._observer.handshake_completed = True
            self._observer.events.append(HandshakeCompleted())
        while True:
            received, data = self._attempt(lambda: self._connection.recv(_READ_SIZE))
            if not received:
                return self._take_pending()
            assert data is not None  # received: recv() returned its bytes
            self._observer.events.append(ApplicationData(data))

    def _attempt(self, operation: Callable[[], T]) -> tuple[bool, T | None]:
        """Run one OpenSSL operation; (False, None) when it needs more bytes or the
        connection ended, with the ending recorded as an event."""
        try:
            return True, operation()
        except SSL.WantReadError:
            return False, None
        except SSL.ZeroReturnError:  # close_notify
            self._closed = True
            self._observer.events.append(ConnectionClosed(clean=True))
        except SSL.SysCallError:  # EOF on the transport (bio_shutdown)
            self._closed = True
            self._observer.events.append(ConnectionClosed(clean=False))
        except SSL.Error as error:
            self._failed = True
            self._observer.events.append(TLSFailed(_describe(error)))
        return False, None

    def _take_pending(self) -> list[Event]:
        events, self._observer.events = self._observer.events, []
        return events


def _describe(error: SSL.Error) -> str:
    """``[('SSL routines', '', 'tlsv13 alert certificate required')]`` -> the reason text."""
    parts = []
    for entry in error.args[0] if error.args and isinstance(error.args[0], list) else []:
        if isinstance(entry, tuple) and entry:
            parts.append(str(entry[-1]))
    return "; ".join(parts) or str(error) or error.__class__.__name__
