"""TLS servers in memory, for driving the client without sockets.

``ServerSide`` wraps a pyOpenSSL server ``Connection(context, None)``: bytes in, bytes
out, like the client under test. ``server_context`` builds one from the observation
builders' small PKI (server chain, client CA).
"""

from __future__ import annotations

from observation_builders import PKI
from OpenSSL import SSL, crypto

REQUIRED = SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT
OPTIONAL = SSL.VERIFY_PEER


def server_context(verify: int = REQUIRED, *, minimum: int = SSL.TLS1_2_VERSION) -> SSL.Context:
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(minimum)
    context.use_certificate(PKI.server.certificate)
    context.use_privatekey(PKI.server.private_key)
    context.add_extra_chain_cert(PKI.intermediate.certificate)
    store = context.get_cert_store()
    assert store is not None
    store.add_cert(crypto.X509.from_cryptography(PKI.root.certificate))
    context.add_client_ca(PKI.root.certificate)
    context.set_verify(verify)
    return context


class ServerSide:
    def __init__(self, context: SSL.Context) -> None:
        self.connection = SSL.Connection(context, None)
        self.connection.set_accept_state()
        self.error: SSL.Error | None = None
        self.handshake_done = False
        self.received = b""

    def receive(self, data: bytes) -> None:
        """Feed the client's bytes and move the handshake (or the reads) on."""
        if data:
            self.connection.bio_write(data)
        try:
            if not self.handshake_done:
                self.connection.do_handshake()
                self.handshake_done = True
            while True:
                self.received += self.connection.recv(65536)
        except SSL.WantReadError:
            pass
        except SSL.Error as error:
            self.error = self.error or error

    def send(self, data: bytes) -> None:
        self.connection.sendall(data)

    def outgoing(self) -> bytes:
        chunks = []
        while True:
            try:
                chunk = self.connection.bio_read(65536)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
