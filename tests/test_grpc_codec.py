"""The gRPC codec against an h2 server in memory: what the server receives, and what
each kind of answer (a status, GOAWAY, RST_STREAM, not HTTP/2 at all) becomes."""

from __future__ import annotations

import random
import struct

import h2.config
import h2.connection
import h2.errors
import h2.events
import pytest

from mtls_audit.scanner.model.observations import grpc_status_name
from mtls_audit.scanner.probe.grpc import GrpcCall, GrpcClient, GrpcResponse

HEALTH = GrpcCall.health_check("payments.internal:8443", "payments")


class Server:
    """The server side of one HTTP/2 connection, recording the request it got."""

    def __init__(self) -> None:
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.initiate_connection()
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = b""
        self.request_ended = False
        self.ping_acks = 0

    def receive(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self.headers = list(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                self.body += event.data
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.request_ended = True
            elif isinstance(event, h2.events.PingAckReceived):
                self.ping_acks += 1

    def send_to(self, client: GrpcClient) -> None:
        """Deliver what the server has queued, and the client's reply back."""
        reply = client.receive_data(self.h2.data_to_send())
        if reply:
            self.receive(reply)


def connect(call: GrpcCall = HEALTH) -> tuple[GrpcClient, Server]:
    """A client whose request the server has read, and which has the server's SETTINGS."""
    client = GrpcClient(call)
    server = Server()
    server.receive(client.start())
    server.send_to(client)
    return client, server


def framed(message: bytes) -> bytes:
    return b"\x00" + struct.pack("!I", len(message)) + message


def test_the_server_receives_the_exact_request_headers_and_framed_message() -> None:
    client, server = connect()

    assert server.headers == [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":path", b"/grpc.health.v1.Health/Check"),
        (b":authority", b"payments.internal:8443"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"user-agent", b"mtls-audit"),
    ]
    assert server.body == bytes.fromhex("00 0000000a 0a 08") + b"payments"
    assert server.request_ended
    assert not client.done


def test_a_health_check_request_is_hand_encoded_protobuf() -> None:
    assert GrpcCall.health_check("api:443", "payments").message == bytes.fromhex("0a 08") + b"payments"
    assert GrpcCall.health_check("api:443").message == b""
    # A length of 200 needs a two-byte varint: 200 = 0b1_1001000 -> c8 01.
    assert GrpcCall.health_check("api:443", "s" * 200).message[:3] == bytes.fromhex("0a c8 01")


def test_a_health_check_of_the_whole_server_sends_an_empty_message() -> None:
    _, server = connect(GrpcCall.health_check("api:443"))

    assert server.body == b"\x00\x00\x00\x00\x00"


def test_for_method_sends_an_empty_message() -> None:
    call = GrpcCall.for_method("orders:50051", "shop.v1.Orders/List")
    _, server = connect(call)

    assert dict(server.headers)[b":path"] == b"/shop.v1.Orders/List"
    assert server.body == b"\x00\x00\x00\x00\x00"
    assert call.description == "grpc shop.v1.Orders/List"
    assert HEALTH.description == "grpc grpc.health.v1.Health/Check"


@pytest.mark.parametrize(
    ("method", "complaint"),
    [
        ("/shop.v1.Orders/List", "without the leading slash"),
        ("shop.v1.Orders", "is not of the form package.Service/Method"),
        ("shop.v1.Orders/", "is not of the form package.Service/Method"),
        ("shop..Orders/List", "is not of the form package.Service/Method"),
        ("shop.v1.Orders/List/More", "is not of the form package.Service/Method"),
        ("shop v1.Orders/List", "is not of the form package.Service/Method"),
        ("", "is not of the form package.Service/Method"),
    ],
)
def test_for_method_refuses_what_is_not_a_method(method: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        GrpcCall.for_method("orders:50051", method)


def test_a_service_without_a_package_is_a_method() -> None:
    assert GrpcCall.for_method("greeter:50051", "Greeter/SayHello").method == "Greeter/SayHello"


def test_a_message_too_big_for_one_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 16379 bytes"):
        GrpcCall("api:443", "pkg.S/M", b"x" * 16380)


@pytest.mark.parametrize("authority", ["", "api 443", "bücher.example:443", "api:443\r\nx: y"])
def test_an_authority_that_is_not_host_port_is_refused(authority: str) -> None:
    with pytest.raises(ValueError, match="host\\[:port\\]"):
        GrpcCall.for_method(authority, "pkg.S/M")


def test_trailers_only_unauthenticated_with_a_percent_encoded_message() -> None:
    client, server = connect()
    server.h2.send_headers(
        1,
        [
            (b":status", b"200"),
            (b"content-type", b"application/grpc"),
            (b"grpc-status", b"16"),
            (b"grpc-message", b"client%20certificate%20required%3A%20%E2%9C%97"),
        ],
        end_stream=True,
    )
    server.send_to(client)

    assert client.done
    response = client.response()
    assert response == GrpcResponse(
        http_status=200, grpc_status=16, grpc_message="client certificate required: \u2717", error=None
    )
    assert grpc_status_name(response.grpc_status) == "UNAUTHENTICATED"


def test_headers_data_and_trailers_ok_with_a_large_body_acknowledged() -> None:
    client, server = connect()
    server.h2.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    body = framed(b"\x08\x01" * 100_000)  # 200 KiB: three times the initial window
    sent = 0
    while sent < len(body):
        window = min(server.h2.local_flow_control_window(1), server.h2.max_outbound_frame_size)
        # The body only gets through if the client hands the window back.
        assert window > 0
        chunk = body[sent : sent + window]
        server.h2.send_data(1, chunk)
        sent += len(chunk)
        server.send_to(client)
        assert not client.done
    server.h2.send_headers(1, [(b"grpc-status", b"0")], end_stream=True)
    server.send_to(client)

    assert client.response() == GrpcResponse(http_status=200, grpc_status=0, grpc_message="", error=None)
    assert client.response().grpc_status == 0


def test_goaway_before_a_response_names_its_code() -> None:
    client, server = connect()
    server.h2.close_connection(error_code=h2.errors.ErrorCodes.HTTP_1_1_REQUIRED)
    server.send_to(client)

    assert client.done
    assert client.response() == GrpcResponse(error="GOAWAY HTTP_1_1_REQUIRED")


def test_goaway_debug_data_is_quoted() -> None:
    client, server = connect()
    server.h2.close_connection(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, additional_data=b"too many")
    server.send_to(client)

    assert client.response().error == "GOAWAY ENHANCE_YOUR_CALM ('too many')"


def test_goaway_with_an_unknown_code() -> None:
    client, server = connect()
    server.h2.close_connection(error_code=0xBEEF)
    server.send_to(client)

    assert client.response().error == "GOAWAY error code 0xbeef"


def test_rst_stream_names_its_code() -> None:
    client, server = connect()
    server.h2.reset_stream(1, error_code=h2.errors.ErrorCodes.REFUSED_STREAM)
    server.send_to(client)

    assert client.done
    assert client.response() == GrpcResponse(error="RST_STREAM REFUSED_STREAM")


def test_an_http_1_1_server_did_not_speak_http2() -> None:
    client = GrpcClient(HEALTH)
    client.start()

    reply = client.receive_data(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    assert reply == b""
    assert client.done
    assert client.response() == GrpcResponse(
        error="the server did not speak HTTP/2 (b'HTTP/1.1 400 Bad Request\\r\\nConten')"
    )


def test_an_http_1_1_answer_byte_by_byte() -> None:
    client = GrpcClient(HEALTH)
    client.start()
    for index, byte in enumerate(b"HTTP/1.1 400 Bad Request\r\n"):
        client.receive_data(bytes([byte]))
        assert client.done == (index >= 8)

    assert client.response().error == "the server did not speak HTTP/2 (b'HTTP/1.1 ')"


def test_a_few_bytes_then_eof_did_not_speak_http2() -> None:
    client = GrpcClient(HEALTH)
    client.start()
    client.receive_data(b"HTTP/")
    assert not client.done
    client.receive_eof()

    assert client.response().error == "the server did not speak HTTP/2 (b'HTTP/')"


def test_eof_before_anything() -> None:
    client = GrpcClient(HEALTH)
    client.start()
    client.receive_eof()

    assert client.done
    assert client.response() == GrpcResponse(error="connection closed without an HTTP/2 response")


def test_eof_after_settings_only() -> None:
    client, _ = connect()
    client.receive_eof()

    assert client.response().error == "connection closed before the response headers"


def test_eof_after_headers_and_data_is_no_grpc_status() -> None:
    client, server = connect()
    server.h2.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    server.h2.send_data(1, framed(b"\x08\x01"))
    server.send_to(client)
    assert not client.done
    client.receive_eof()

    assert client.response() == GrpcResponse(http_status=200, error="no grpc-status in the response (HTTP status 200)")


def test_a_plain_http2_404_ending_the_stream_is_no_grpc_status() -> None:
    client, server = connect()
    server.h2.send_headers(1, [(b":status", b"404"), (b"content-type", b"text/html")])
    server.h2.send_data(1, b"<h1>Not Found</h1>", end_stream=True)
    server.send_to(client)

    assert client.done
    assert client.response() == GrpcResponse(http_status=404, error="no grpc-status in the response (HTTP status 404)")


def test_trailers_without_grpc_status() -> None:
    client, server = connect()
    server.h2.send_headers(1, [(b":status", b"200"), (b"content-type", b"application/grpc")])
    server.h2.send_headers(1, [(b"x-other", b"1")], end_stream=True)
    server.send_to(client)

    assert client.response().error == "no grpc-status in the response (HTTP status 200)"


def test_an_invalid_grpc_status() -> None:
    client, server = connect()
    server.h2.send_headers(1, [(b":status", b"200"), (b"grpc-status", b"sixteen")], end_stream=True)
    server.send_to(client)

    assert client.response() == GrpcResponse(http_status=200, error="invalid grpc-status 'sixteen'")


def test_a_long_grpc_message_is_cut_to_200_characters() -> None:
    client, server = connect()
    server.h2.send_headers(
        1, [(b":status", b"200"), (b"grpc-status", b"7"), (b"grpc-message", b"x" * 5000)], end_stream=True
    )
    server.send_to(client)

    response = client.response()
    assert response.grpc_status == 7
    assert len(response.grpc_message) == 200
    assert response.grpc_message.endswith("x\u2026")


def test_the_client_answers_a_ping() -> None:
    client, server = connect()
    server.h2.ping(b"12345678")
    server.send_to(client)

    assert server.ping_acks == 1


def test_a_protocol_error_after_the_preface_answers_goaway() -> None:
    client, server = connect()
    # A DATA frame on stream 0 is a connection error (RFC 9113 section 6.1).
    reply = client.receive_data(bytes.fromhex("000001 00 00 00000000") + b"x")

    assert client.done
    assert client.response().error is not None
    assert client.response().error.startswith("HTTP/2 protocol error: ")
    events = server.h2.receive_data(reply)
    assert [type(event) for event in events] == [h2.events.ConnectionTerminated]
    assert events[0].error_code == h2.errors.ErrorCodes.PROTOCOL_ERROR


def test_bytes_after_the_status_are_ignored() -> None:
    client, server = connect()
    server.h2.send_headers(1, [(b":status", b"200"), (b"grpc-status", b"16")], end_stream=True)
    server.send_to(client)

    assert client.receive_data(b"garbage that is not a frame at all") == b""
    client.receive_eof()
    assert client.response().grpc_status == 16
    assert client.response().error is None


def test_status_names_cover_all_seventeen_codes() -> None:
    names = [grpc_status_name(code) for code in range(17)]
    assert len(set(names)) == 17 and not any(name.startswith("status ") for name in names)
    assert grpc_status_name(0) == "OK"
    assert grpc_status_name(5) == "NOT_FOUND"
    assert grpc_status_name(7) == "PERMISSION_DENIED"
    assert grpc_status_name(12) == "UNIMPLEMENTED"
    assert grpc_status_name(14) == "UNAVAILABLE"
    assert grpc_status_name(16) == "UNAUTHENTICATED"
    assert grpc_status_name(42) == "status 42"


@pytest.mark.parametrize("seed", range(200))
def test_no_server_input_raises(seed: int) -> None:
    """Random bytes after a valid SETTINGS frame, or a real answer with bytes flipped."""
    rng = random.Random(seed)
    client, server = connect()
    if seed % 2:
        server.h2.send_headers(1, [(b":status", b"200"), (b"grpc-status", b"16"), (b"grpc-message", b"no")])
        server.h2.send_data(1, framed(b"\x08\x01" * 10), end_stream=True)
        data = bytearray(server.h2.data_to_send())
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    else:
        data = bytearray(rng.randbytes(rng.randint(1, 300)))
    for start in range(0, len(data), 7):
        client.receive_data(bytes(data[start : start + 7]))
    client.receive_eof()

    assert client.done
    response = client.response()
    assert (response.grpc_status is None) != (response.error is None)


def test_a_frame_on_a_stream_we_never_opened_names_the_stream() -> None:
    client, _ = connect()
    # DATA on stream 3, which nobody opened: h2's NoSuchStreamError carries only the
    # number, so the error says what it is.
    client.receive_data(bytes.fromhex("000001 00 01 00000003 78"))

    assert client.response().error == "HTTP/2 protocol error: NoSuchStreamError on stream 3"
