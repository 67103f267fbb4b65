"""Small purpose-built TLS servers for misbehaviour no packaged server shows, each in
its own process: ``python tests/hostile_servers.py KIND PKI_DIR``. It prints one JSON
line ``{"port": N}`` when it listens and serves until terminated (tests stop it by PID).

They answer HTTP/1.1 like the lab servers and use the PKI that
``real_servers.write_test_pki`` wrote (server chain, client CA).
"""

from __future__ import annotations

import json
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import trio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto

_DEADLINE = 10.0  # no connection outlives this


class Pki:
    def __init__(self, directory: Path) -> None:
        self.chain = x509.load_pem_x509_certificates((directory / "server-fullchain.pem").read_bytes())
        self.key = serialization.load_pem_private_key((directory / "server.key").read_bytes(), None)
        self.client_ca = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())


def server_context(pki: Pki, verify: int, *, tls13_only: bool = True) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_3_VERSION if tls13_only else SSL.TLS1_2_VERSION)
    context.use_certificate(pki.chain[0])
    context.use_privatekey(pki.key)  # type: ignore[arg-type]
    for certificate in pki.chain[1:]:
        context.add_extra_chain_cert(certificate)
    store = context.get_cert_store()
    assert store is not None
    store.add_cert(crypto.X509.from_cryptography(pki.client_ca))
    context.add_client_ca(pki.client_ca)
    context.set_verify(verify)
    return context


class Tls:
    """A server-side TLS connection over a trio stream (memory BIOs)."""

    def __init__(self, context: SSL.Context, stream: trio.SocketStream) -> None:
        self.connection = SSL.Connection(context, None)
        self.connection.set_accept_state()
        self.stream = stream

    async def flush(self) -> None:
        while True:
            try:
                data = self.connection.bio_read(65536)
            except SSL.WantReadError:
                return
            if not data:
                return
            await self.stream.send_all(data)

    def drop_tickets(self) -> None:
        """Discard what OpenSSL queued after the handshake (TLS 1.3 session tickets):
        pyOpenSSL cannot turn them off. The session can send nothing more after this."""
        try:
            self.connection.bio_read(65536)
        except SSL.WantReadError:
            pass

    async def handshake(self) -> bool:
        while True:
            try:
                self.connection.do_handshake()
                return True
            except SSL.WantReadError:
                await self.flush()
            except SSL.Error:
                await self.flush()  # the alert that says why
                return False
            data = await self.stream.receive_some(65536)
            if not data:
                return False
            self.connection.bio_write(data)

    async def read_request(self, tamper: Callable[[bytes], bytes] = lambda data: data) -> bytes | None:
        """The HTTP request head; None when the session ended. ``tamper`` sees every
        raw chunk before OpenSSL does."""
        request = b""
        while b"\r\n\r\n" not in request:
            try:
                request += self.connection.recv(65536)
                continue
            except SSL.WantReadError:
                pass
            except SSL.Error:
                await self.flush()
                return None
            await self.flush()
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.connection.bio_write(tamper(data))
        return request

    async def respond(self, status: str) -> None:
        body = f"{status}\n"
        self.connection.sendall(
            f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}".encode()
        )
        await self.flush()


def _flip_last_byte(data: bytes) -> bytes:
    # The last byte of a TLS record is part of its AEAD tag: the server's OpenSSL
    # answers bad_record_mac, as a server does when the client's keys went wrong.
    return data[:-1] + bytes([data[-1] ^ 0x01])


async def bad_record_mac_for_no_cert(pki: Pki, stream: trio.SocketStream) -> None:
    """Certificate optional; a client without one gets alert 20 bad_record_mac after
    the handshake (its session "breaks"), one with a certificate gets 200."""
    tls = Tls(server_context(pki, SSL.VERIFY_PEER), stream)
    if not await tls.handshake():
        return
    await tls.flush()
    has_certificate = tls.connection.get_peer_certificate() is not None
    if await tls.read_request(tamper=lambda d: d if has_certificate else _flip_last_byte(d)) is not None:
        await tls.respond("200 OK")


async def required_then_mute(pki: Pki, stream: trio.SocketStream) -> None:
    """Certificate required (no certificate: alert 116); a client that gets through
    gets no session ticket and no HTTP answer: nothing decides its verdict."""
    tls = Tls(server_context(pki, SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT), stream)
    if await tls.handshake():
        tls.drop_tickets()
        await trio.sleep_forever()


async def refuse_everyone_with_400(pki: Pki, stream: trio.SocketStream) -> None:
    """Never asks for a certificate and answers 400 to everyone."""
    tls = Tls(server_context(pki, SSL.VERIFY_NONE), stream)
    if await tls.handshake():
        await tls.flush()
        if await tls.read_request() is not None:
            await tls.respond("400 Bad Request")


async def close_everyone(pki: Pki, stream: trio.SocketStream) -> None:
    """Never asks for a certificate and closes every connection after the handshake."""
    tls = Tls(server_context(pki, SSL.VERIFY_NONE), stream)
    if await tls.handshake():
        tls.drop_tickets()


def offers_tls13(client_hello: bytes) -> bool:
    """Whether a ClientHello record offers TLS 1.3 (supported_versions lists 0x0304)."""
    try:
        body = client_hello[5 + 4 :]  # record header, handshake header
        position = 2 + 32  # legacy_version, random
        position += 1 + body[position]  # session id
        position += 2 + struct.unpack_from("!H", body, position)[0]  # cipher suites
        position += 1 + body[position]  # compression methods
        end = position + 2 + struct.unpack_from("!H", body, position)[0]
        position += 2
        while position + 4 <= end:
            kind, length = struct.unpack_from("!HH", body, position)
            data = body[position + 4 : position + 4 + length]
            if kind == 0x002B:  # supported_versions
                versions = data[1 : 1 + data[0]]
                return any(versions[i : i + 2] == b"\x03\x04" for i in range(0, len(versions), 2))
            position += 4 + length
    except (IndexError, struct.error):
        return False
    return False


async def reset_old_versions(pki: Pki, stream: trio.SocketStream) -> None:
    """What a listener that has gone away looks like to the old-version probes: TLS 1.3
    is a strict mTLS server, anything else is reset before any TLS byte comes back."""
    first = await stream.receive_some(65536)
    if not offers_tls13(first):
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return
    tls = Tls(server_context(pki, SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT), stream)
    tls.connection.bio_write(first)
    if not await tls.handshake():
        return
    await tls.flush()
    if await tls.read_request() is not None:
        await tls.respond("200 OK")


async def _strict(pki: Pki, stream: trio.SocketStream) -> None:
    tls = Tls(server_context(pki, SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT), stream)
    if await tls.handshake():
        await tls.flush()
        if await tls.read_request() is not None:
            await tls.respond("200 OK")


async def _optional(pki: Pki, stream: trio.SocketStream) -> None:
    tls = Tls(server_context(pki, SSL.VERIFY_PEER), stream)
    if await tls.handshake():
        await tls.flush()
        if await tls.read_request() is not None:
            await tls.respond("200 OK")


class AlternatingBalancer:
    """A TCP load balancer whose two backends disagree: every other connection goes
    to one that requires a client certificate, the rest to one where it is optional."""

    def __init__(self, pki: Pki) -> None:
        self.backends = [partial(_strict, pki), partial(_optional, pki)]
        self.connections = 0

    async def __call__(self, stream: trio.SocketStream) -> None:
        backend = self.backends[self.connections % 2]
        self.connections += 1
        await backend(stream)


Handler = Callable[[trio.SocketStream], Awaitable[None]]

KINDS: dict[str, Callable[[Pki], Handler]] = {
    "bad-record-mac-for-no-cert": lambda pki: partial(bad_record_mac_for_no_cert, pki),
    "required-then-mute": lambda pki: partial(required_then_mute, pki),
    "refuse-everyone-with-400": lambda pki: partial(refuse_everyone_with_400, pki),
    "close-everyone": lambda pki: partial(close_everyone, pki),
    "reset-old-versions": lambda pki: partial(reset_old_versions, pki),
    "alternating-backends": AlternatingBalancer,
}


async def serve(kind: str, pki: Pki) -> None:
    handler = KINDS[kind](pki)

    async def guarded(stream: trio.SocketStream) -> None:
        with trio.move_on_after(_DEADLINE):
            try:
                await handler(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, SSL.Error):
                pass
        with trio.CancelScope(shield=True):
            await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    print(json.dumps({"port": listeners[0].socket.getsockname()[1]}), flush=True)
    await trio.serve_listeners(guarded, listeners)


if __name__ == "__main__":
    trio.run(serve, sys.argv[1], Pki(Path(sys.argv[2])))
