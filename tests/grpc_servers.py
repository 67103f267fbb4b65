"""A real gRPC server (grpcio, HTTP/2 over TLS with ALPN h2) for the "Beyond HTTP/1.1"
checks: `tests/grpc_test_server.py` in its own process on a free loopback port,
serving the server certificate of the protocol PKI (`apache_servers.write_protocol_pki`)
and stopped by PID.

- ``require_client_auth=True``: the client CA is required and verified. The server
  sends a CertificateRequest in the handshake; with no certificate, or one from
  another CA, the client completes its side of TLS 1.3 (its Finished is sent) and
  then reads EOF: the server closes the TCP connection with no alert and no
  NewSessionTicket (grpcio's BoringSSL fails the handshake, PEER_DID_NOT_RETURN_A_
  CERTIFICATE or CERTIFICATE_VERIFY_FAILED in the server log, but the alert is never
  written). A grpcio client gets UNAVAILABLE ("Socket closed"). A valid client that
  does not offer ALPN h2 is closed the same way, right after the handshake.
- ``require_client_auth=False``: no CertificateRequest at all; anyone completes TLS,
  ``Health/Check`` answers SERVING, ``Transfer`` PERMISSION_DENIED to everyone (no
  certificate is ever sent). Without ALPN h2: closed right after the handshake.

`call` is a grpcio client for the tests (not the scanner), returning the status.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from identity_servers import IdentityPKI
from protocol_servers import ProtocolServer
from real_servers import ServerProcess, free_port

SERVER_SCRIPT = Path(__file__).parent / "grpc_test_server.py"

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
TRANSFER = "/bank.Payments/Transfer"


def require_grpc() -> ModuleType:
    """The ``grpc`` module, or a skip (a failure with MTLS_AUDIT_REQUIRE_SERVERS=1)."""
    try:
        import grpc
    except ImportError:
        message = "grpcio is not installed (pip install grpcio)"
        if os.environ.get("MTLS_AUDIT_REQUIRE_SERVERS") == "1":
            pytest.fail(f"MTLS_AUDIT_REQUIRE_SERVERS=1 but {message}")
        pytest.skip(message)
    return grpc


@dataclass(frozen=True)
class GrpcServer(ProtocolServer):
    require_client_auth: bool = True


@contextmanager
def running_grpc(pki: IdentityPKI, workdir: Path, *, require_client_auth: bool = True) -> Iterator[GrpcServer]:
    """`grpc_test_server.py` with the PKI's ``server.pem``/``server.key`` and, as the
    client CA, ``client-ca.pem``; stopped by PID."""
    require_grpc()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [
        sys.executable, str(SERVER_SCRIPT), "--port", str(port),
        "--cert", str(pki.pem("server")), "--key", str(pki.key("server")),
        "--client-ca", str(pki.pem("client-ca")),
        "--require-client-auth" if require_client_auth else "--no-require-client-auth",
    ]  # fmt: skip
    server = ServerProcess(argv, port, workdir)
    try:
        yield GrpcServer("127.0.0.1", port, server.pid, pki, server.log, require_client_auth=require_client_auth)
    finally:
        server.stop()


def health_check_request(service: str = "") -> bytes:
    """HealthCheckRequest{service}: field 1, length-delimited (empty message for "")."""
    encoded = service.encode()
    if not encoded:
        return b""
    if len(encoded) > 127:
        raise ValueError("service name too long for this one-byte length encoder")
    return bytes([0x0A, len(encoded)]) + encoded


@dataclass(frozen=True)
class CallResult:
    code: str  # grpc.StatusCode name: "OK", "PERMISSION_DENIED", "UNAVAILABLE"...
    details: str
    response: bytes | None


def call(
    server: ProtocolServer,
    method: str,
    request: bytes = b"",
    *,
    cert: Path | None = None,
    key: Path | None = None,
    timeout: float = 10.0,
) -> CallResult:
    """One unary call over a fresh secure channel that trusts ``server.server_ca``
    (target name overridden to ``server.server_name``), presenting ``cert``/``key``
    when given."""
    grpc = require_grpc()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=server.server_ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    options = [("grpc.ssl_target_name_override", server.server_name), ("grpc.enable_retries", 0)]
    with grpc.secure_channel(server.address, credentials, options=options) as channel:
        stub = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            response = stub(request, timeout=timeout)
        except grpc.RpcError as error:
            return CallResult(error.code().name, error.details() or "", None)
    return CallResult("OK", "", response)
