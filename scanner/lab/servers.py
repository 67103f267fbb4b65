"""Loopback TLS servers with known client-auth configurations.

They back `mtls-audit demo` and the end-to-end tests. Each reproduces one way real
servers behave (README, "How a server says no"): strict OpenSSL-style rejection (in the handshake on
TLS 1.2, after it on TLS 1.3), "optional", no client auth, a verifier that accepts
any CA, and nginx-style enforcement at the HTTP layer (handshake completes, 400).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import trio
from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto

from mtls_audit.scanner.model.observations import TLSVersion
from mtls_audit.scanner.model.target import SigningKey
from mtls_audit.scanner.tls.client import OPENSSL_VERSIONS

_CONNECTION_DEADLINE = 10.0  # a lab connection never outlives this


class ClientAuthMode(enum.StrEnum):
    REQUIRED = "required"  # VERIFY_PEER | FAIL_IF_NO_PEER_CERT
    OPTIONAL = "optional"  # VERIFY_PEER: no cert is fine, a bad one is not
    NONE = "none"  # never asks
    ANY_CA = "any-ca"  # asks, requires a cert, trusts whatever is sent
    HTTP_LAYER = "http-layer"  # like nginx `ssl_verify_client on`: TLS lets all in, HTTP says 400
    SILENT = "silent"  # accepts TCP and never answers: a hung service
    # Asks for a certificate (optional), completes the handshake, then says nothing: no session
    # ticket, no alert, no HTTP answer. What a ticket-less server looks like from
    # outside; only "unknown" is a correct verdict for it.
    MUTE_AFTER_HANDSHAKE = "mute-after-handshake"
    # Required and verified, then HTTP 403 unless the certificate's one URI SAN is the
    # allowed SPIFFE ID: authorization done right.
    AUTHZ_SPIFFE = "authz-spiffe"
    # Required and verified, then HTTP 403 unless the subject CN is the allowed name:
    # any certificate from the CA with that CN gets in, whatever its SAN says.
    AUTHZ_CN = "authz-cn"
    # Requires a certificate from the CA but ignores its dates and purpose, like a
    # hand-written verify callback that checks only the signature.
    NO_EXPIRY_CHECK = "no-expiry-check"


# X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_INVALID_PURPOSE
_DATE_AND_PURPOSE_ERRORS = frozenset({9, 10, 26})


@dataclass(frozen=True)
class LabServerConfig:
    name: str
    chain: tuple[x509.Certificate, ...]  # what the server sends, leaf first
    private_key: SigningKey
    client_auth: ClientAuthMode
    client_ca: x509.Certificate | None = None
    min_version: TLSVersion = TLSVersion.TLS1_3
    max_version: TLSVersion = TLSVersion.TLS1_3
    allowed_identity: str | None = None  # the SPIFFE ID or CN the authz modes let in


def _context(config: LabServerConfig) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(OPENSSL_VERSIONS[config.min_version])
    context.set_max_proto_version(OPENSSL_VERSIONS[config.max_version])
    if config.min_version.rank < TLSVersion.TLS1_2.rank:
        context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    context.use_certificate(config.chain[0])
    context.use_privatekey(config.private_key)
    for certificate in config.chain[1:]:
        context.add_extra_chain_cert(certificate)
    if config.client_ca is not None:
        store = context.get_cert_store()
        assert store is not None  # a new context always has one (None is for a NULL store)
        store.add_cert(crypto.X509.from_cryptography(config.client_ca))
        context.add_client_ca(config.client_ca)

    mode = config.client_auth
    if mode in (ClientAuthMode.REQUIRED, ClientAuthMode.AUTHZ_SPIFFE, ClientAuthMode.AUTHZ_CN):
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)
    elif mode is ClientAuthMode.NO_EXPIRY_CHECK:
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _ignore_dates_and_purpose)
    elif mode in (ClientAuthMode.OPTIONAL, ClientAuthMode.MUTE_AFTER_HANDSHAKE):
        context.set_verify(SSL.VERIFY_PEER)
    elif mode is ClientAuthMode.ANY_CA:
        context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)
    elif mode is ClientAuthMode.HTTP_LAYER:
        context.set_verify(SSL.VERIFY_PEER, _remember_verification)
    else:
        context.set_verify(SSL.VERIFY_NONE)
    return context


def _remember_verification(connection: SSL.Connection, cert, errno: int, depth: int, ok: int) -> bool:
    # Let the handshake go on whatever the result, as nginx does, and judge at HTTP.
    if not ok:
        connection.set_app_data("verify-failed")
    return True


def _ignore_dates_and_purpose(connection: SSL.Connection, cert, errno: int, depth: int, ok: int) -> bool:
    return bool(ok) or errno in _DATE_AND_PURPOSE_ERRORS


def _authorized(config: LabServerConfig, connection: SSL.Connection) -> bool:
    peer = connection.get_peer_certificate()
    if peer is None:
        return False
    certificate = peer.to_cryptography()
    if config.client_auth is ClientAuthMode.AUTHZ_CN:
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return [n.value for n in names] == [config.allowed_identity]
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return san.get_values_for_type(x509.UniformResourceIdentifier) == [config.allowed_identity]


async def _flush(stream: trio.SocketStream, connection: SSL.Connection) -> None:
    while True:
        try:
            data = connection.bio_read(65536)
        except SSL.WantReadError:
            return
        if not data:
            return
        await stream.send_all(data)


async def _serve_connection(context: SSL.Context, config: LabServerConfig, stream: trio.SocketStream) -> None:
    with trio.move_on_after(_CONNECTION_DEADLINE):
        try:
            if config.client_auth is ClientAuthMode.SILENT:
                await trio.sleep_forever()
            await _serve_tls(context, config, stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
    with trio.CancelScope(shield=True):
        await stream.aclose()


async def _serve_tls(context: SSL.Context, config: LabServerConfig, stream: trio.SocketStream) -> None:
    connection = SSL.Connection(context, None)
    connection.set_accept_state()
    while True:
        try:
            connection.do_handshake()
            break
        except SSL.WantReadError:
            await _flush(stream, connection)
        except SSL.Error:
            await _flush(stream, connection)  # the alert that says why
            return
        data = await stream.receive_some(65536)
        if not data:
            return
        connection.bio_write(data)
    if config.client_auth is ClientAuthMode.MUTE_AFTER_HANDSHAKE:
        connection.bio_read(65536)  # drop the session tickets unsent
        await trio.sleep_forever()
    await _flush(stream, connection)  # Finished, and TLS 1.3 session tickets

    request = b""
    while b"\r\n\r\n" not in request:
        try:
            request += connection.recv(65536)
            continue
        except SSL.WantReadError:
            pass
        except SSL.Error:
            await _flush(stream, connection)
            return
        await _flush(stream, connection)
        data = await stream.receive_some(65536)
        if not data:
            return
        connection.bio_write(data)

    status = "200 OK"
    body = f"hello from lab endpoint {config.name}\n"
    if config.client_auth is ClientAuthMode.HTTP_LAYER:
        if connection.get_peer_certificate() is None:
            status, body = "400 Bad Request", "No required SSL certificate was sent\n"
        elif connection.get_app_data() == "verify-failed":
            status, body = "400 Bad Request", "The SSL certificate error\n"
    if config.client_auth in (ClientAuthMode.AUTHZ_SPIFFE, ClientAuthMode.AUTHZ_CN) and not _authorized(
        config, connection
    ):
        status, body = "403 Forbidden", "this identity may not call this service\n"
    connection.sendall(
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n{body}".encode()
    )
    try:
        connection.shutdown()
    except SSL.Error:
        pass
    await _flush(stream, connection)


@asynccontextmanager
async def running_lab(configs: Sequence[LabServerConfig], host: str = "127.0.0.1") -> AsyncIterator[dict[str, int]]:
    """Serve every config on its own free loopback port; yields name -> port.

    The servers live in a nursery that the block outlives: leaving the block stops them.
    """
    async with trio.open_nursery() as nursery:
        ports: dict[str, int] = {}
        for config in configs:
            listeners = await trio.open_tcp_listeners(0, host=host)
            ports[config.name] = listeners[0].socket.getsockname()[1]
            handler = partial(_serve_connection, _context(config), config)
            nursery.start_soon(trio.serve_listeners, handler, listeners)
        yield ports
        nursery.cancel_scope.cancel()
