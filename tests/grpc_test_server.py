"""A gRPC server over TLS for the tests, run as a subprocess and stopped by PID:

    python tests/grpc_test_server.py --port N --cert server.pem --key server.key \\
        --client-ca client-ca.pem --require-client-auth   (or --no-require-client-auth)

grpcio's own TLS (``grpc.ssl_server_credentials``, BoringSSL inside the wheel), no
generated code: generic handlers on raw bytes, protobuf encoded by hand.

- ``/grpc.health.v1.Health/Check``: HealthCheckResponse{status: SERVING} (bytes
  ``08 01``) for the service ``""``, NOT_FOUND for any other service name.
- ``/bank.Payments/Transfer``: PERMISSION_DENIED unless the peer certificate's CN
  (``x509_common_name`` in the auth context) is ``payment``; then OK with an empty
  message. So a test can prove who gets in, not only whether TLS completes.

Listens on 127.0.0.1 only. SIGTERM stops it (no grace period).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc

HEALTH_SERVICE = "grpc.health.v1.Health"
PAYMENTS_SERVICE = "bank.Payments"
ALLOWED_COMMON_NAME = b"payment"

# HealthCheckResponse.ServingStatus: field 1 (varint), SERVING = 1.
SERVING = bytes([0x08, 0x01])


def _varint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if offset >= len(data):
            raise ValueError("truncated varint")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def health_check_service(request: bytes) -> str:
    """The ``service`` (field 1, string) of a HealthCheckRequest; unknown fields are
    skipped as protobuf requires."""
    service = ""
    offset = 0
    while offset < len(request):
        key, offset = _varint(request, offset)
        field, wire_type = key >> 3, key & 0x07
        if wire_type == 0:
            _, offset = _varint(request, offset)
        elif wire_type == 1:
            offset += 8
        elif wire_type == 2:
            length, offset = _varint(request, offset)
            value = request[offset : offset + length]
            if len(value) != length:
                raise ValueError("truncated field")
            offset += length
            if field == 1:
                service = value.decode("utf-8")
        elif wire_type == 5:
            offset += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
    return service


def check(request: bytes, context: grpc.ServicerContext) -> bytes:
    try:
        service = health_check_service(request)
    except ValueError as error:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad HealthCheckRequest: {error}")
    if service != "":
        context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {service!r}")
    return SERVING


def transfer(request: bytes, context: grpc.ServicerContext) -> bytes:
    common_names = context.auth_context().get("x509_common_name", [])
    if common_names != [ALLOWED_COMMON_NAME]:
        shown = b", ".join(common_names).decode("utf-8", "replace") or "no client certificate"
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"transfer denied to {shown}")
    return b""


def handlers() -> list[grpc.GenericRpcHandler]:
    # No serializers: requests and responses stay raw bytes.
    return [
        grpc.method_handlers_generic_handler(HEALTH_SERVICE, {"Check": grpc.unary_unary_rpc_method_handler(check)}),
        grpc.method_handlers_generic_handler(
            PAYMENTS_SERVICE, {"Transfer": grpc.unary_unary_rpc_method_handler(transfer)}
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True, help="server certificate chain (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="server private key (PEM)")
    parser.add_argument("--client-ca", type=Path, help="CA certificates client certificates must chain to")
    parser.add_argument(
        "--require-client-auth",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="require and verify a client certificate (default); --no-require-client-auth asks for none",
    )
    args = parser.parse_args(argv)
    if args.require_client_auth and args.client_ca is None:
        parser.error("--require-client-auth needs --client-ca")

    credentials = grpc.ssl_server_credentials(
        [(args.key.read_bytes(), args.cert.read_bytes())],
        root_certificates=args.client_ca.read_bytes() if args.client_ca else None,
        require_client_auth=args.require_client_auth,
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), handlers=handlers())
    if server.add_secure_port(f"127.0.0.1:{args.port}", credentials) != args.port:
        print(f"could not bind 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    server.start()
    print(f"listening on 127.0.0.1:{args.port} require_client_auth={args.require_client_auth}", flush=True)
    stopped.wait()
    server.stop(grace=None).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
