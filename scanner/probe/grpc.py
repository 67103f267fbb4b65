"""One unary gRPC call with no I/O: bytes in, bytes out.

A gRPC server that requires client certificates answers an unauthenticated call with
a status, not an HTTP error: ``UNAUTHENTICATED`` (16) or ``PERMISSION_DENIED`` (7), and
often in a trailers-only response (one HEADERS frame carrying ``grpc-status`` and
END_STREAM, https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md). That
status is the evidence, so this module makes one call and reads it; the message body
of the answer is never needed and is acknowledged for flow control, then dropped.

HTTP/2 framing, HPACK and flow control come from ``h2``, which is sans-I/O like
``scanner.tls.client``: the prober feeds it the decrypted bytes and sends back what
it returns. Whatever the server sends, ``GrpcClient`` raises nothing: a server that
is not HTTP/2, a GOAWAY or a RST_STREAM becomes ``GrpcResponse.error``.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack.exceptions
import hyperframe.exceptions

_STREAM_ID = 1  # a client's first stream (RFC 9113 section 5.1.1)

# Sending the whole request before reading anything needs it to fit the peer's
# defaults: one DATA frame under SETTINGS_MAX_FRAME_SIZE (16384, RFC 9113 section
# 6.5.2) and the initial flow-control window (65535). A probe sends a health check
# or an empty message, far below that.
MAX_MESSAGE = 16384 - 5

_MAX_TEXT = 200  # characters of server text we repeat in a report
_FIRST_BYTES = 32  # of a server that is not HTTP/2, shown to say what it was

# RFC 9113 section 3.4: the server's connection preface is a SETTINGS frame. Its
# 9-byte frame header has the type (0x4) in byte 3 and stream 0 in bytes 5-8. An
# HTTP/1.1 server's "HTTP/1.1 400" fails this before h2 has a frame to complain about.
_FRAME_HEADER = 9
_SETTINGS_TYPE = 0x4

# A protobuf service name is dotted identifiers (the package is optional: a .proto
# file without `package` gives "Greeter/SayHello"); the method is one identifier.
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_METHOD = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*/{_IDENTIFIER}")

# Everything h2 (and the two libraries under it) raises for bad input. h2 wraps most
# of them in ProtocolError; the others are listed so no server can crash a probe.
_PROTOCOL_ERRORS = (
    h2.exceptions.H2Error,
    hpack.exceptions.HPACKError,
    hyperframe.exceptions.HyperframeError,
)


@dataclass(frozen=True, slots=True)
class GrpcCall:
    """A unary call: where it goes, and the request message, serialized but unframed."""

    authority: str  # :authority, host[:port] as the server knows it
    method: str  # "grpc.health.v1.Health/Check"; the :path is "/" + method
    message: bytes = b""

    def __post_init__(self) -> None:
        _check_method(self.method)
        # HTTP/2 requests carry :authority (RFC 9113 section 8.3.1), and an https URI
        # has a host (RFC 9110 section 4.2.2); h2 refuses to send a request without one.
        if (
            not self.authority
            or not (self.authority.isascii() and self.authority.isprintable())
            or " " in self.authority
        ):
            raise ValueError(f"gRPC authority {self.authority!r} must be host[:port] in ASCII, without spaces")
        if len(self.message) > MAX_MESSAGE:
            raise ValueError(f"a gRPC probe message is at most {MAX_MESSAGE} bytes, not {len(self.message)}")

    @classmethod
    def health_check(cls, authority: str, service: str = "") -> GrpcCall:
        """``grpc.health.v1.Health/Check`` for ``service`` ("" asks about the server).

        The HealthCheckRequest is encoded by hand rather than with protobuf: it is one
        string field (number 1, wire type 2, so tag byte 0x0a), and proto3 leaves an
        empty string out, so no service is an empty message.
        """
        encoded = service.encode("utf-8")
        message = b"\x0a" + _varint(len(encoded)) + encoded if encoded else b""
        return cls(authority, "grpc.health.v1.Health/Check", message)

    @classmethod
    def for_method(cls, authority: str, method: str) -> GrpcCall:
        """A call of ``method`` with an empty request message.

        An empty message is a valid encoding of every proto3 request type, so any
        method can be called without knowing its schema; the server checks the caller
        before it looks at the request.
        """
        return cls(authority, method)

    @property
    def path(self) -> str:
        return "/" + self.method

    @property
    def description(self) -> str:
        """How a report shows the call, where an HTTP probe shows its request line."""
        return f"grpc {self.method}"


@dataclass(frozen=True, slots=True)
class GrpcResponse:
    http_status: int | None = None  # the :status pseudo-header
    grpc_status: int | None = None  # from the trailers, or a trailers-only response's headers
    grpc_message: str = ""  # percent-decoded grpc-message
    error: str | None = None  # why no gRPC status was read


class GrpcClient:
    """One unary call over a fresh HTTP/2 connection."""

    def __init__(self, call: GrpcCall) -> None:
        self._call = call
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._connection = h2.connection.H2Connection(config=config)
        # No server push: the only stream we want is our own, and a pushed one would
        # be state to track for nothing. With this off, a PUSH_PROMISE is a protocol
        # error (RFC 9113 section 8.4).
        self._connection.local_settings = h2.settings.Settings(
            client=True, initial_values={h2.settings.SettingCodes.ENABLE_PUSH: 0}
        )
        self._first_bytes = b""  # until they show a SETTINGS frame
        self._speaks_http2 = False
        self._received_anything = False
        self._http_status: int | None = None
        self._headers_seen = False
        self._grpc_status: int | None = None
        self._grpc_message = ""
        self._error: str | None = None

    def start(self) -> bytes:
        """The connection preface, our SETTINGS and the whole request."""
        connection = self._connection
        connection.initiate_connection()
        headers = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":path", self._call.path.encode("ascii")),
            (b":authority", self._call.authority.encode("ascii")),
            (b"content-type", b"application/grpc"),
            # gRPC requires it: it tells proxies the client understands trailers,
            # where the status travels.
            (b"te", b"trailers"),
            (b"user-agent", b"mtls-audit"),
        ]
        connection.send_headers(_STREAM_ID, headers)
        # The gRPC Length-Prefixed-Message: a compressed flag (0) and a 4-byte length.
        framed = struct.pack("!BI", 0, len(self._call.message)) + self._call.message
        connection.send_data(_STREAM_ID, framed, end_stream=True)
        return connection.data_to_send()

    def receive_data(self, data: bytes) -> bytes:
        """Feed bytes from the server; returns what to send back (SETTINGS ack,
        WINDOW_UPDATE, PING ack, or a GOAWAY after a protocol error)."""
        if self.done or not data:
            return b""
        self._received_anything = True
        if not self._speaks_http2:
            self._first_bytes += data
            if len(self._first_bytes) < _FRAME_HEADER:
                return b""
            if not _is_settings_frame(self._first_bytes):
                self._error = _not_http2(self._first_bytes)
                return b""
            self._speaks_http2 = True
            data, self._first_bytes = self._first_bytes, b""
        try:
            events = self._connection.receive_data(data)
        except _PROTOCOL_ERRORS as exception:
            self._error = _text(f"HTTP/2 protocol error: {_describe(exception)}")
            # h2 has queued a GOAWAY naming the error; the server deserves to see it.
            return self._connection.data_to_send()
        for event in events:
            self._handle(event)
            if self.done:
                break
        return self._connection.data_to_send()

    def receive_eof(self) -> None:
        if self.done:
            return
        if not self._received_anything:
            self._error = "connection closed without an HTTP/2 response"
        elif not self._speaks_http2:
            self._error = _not_http2(self._first_bytes)
        elif self._headers_seen:
            self._error = self._no_status()
        else:
            self._error = "connection closed before the response headers"

    @property
    def done(self) -> bool:
        """A gRPC status, or an error, is known: nothing more needs reading."""
        return self._grpc_status is not None or self._error is not None

    def response(self) -> GrpcResponse:
        return GrpcResponse(self._http_status, self._grpc_status, self._grpc_message, self._error)

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self._headers_seen = True
            self._read_headers(event.headers or [])
        elif isinstance(event, h2.events.TrailersReceived):
            self._read_headers(event.headers or [])
            if self._grpc_status is None and self._error is None:
                self._error = self._no_status()
        elif isinstance(event, h2.events.DataReceived):
            # The response message is not evidence: hand the window back so a large
            # answer cannot stall the trailers, and keep none of it.
            self._connection.acknowledge_received_data(event.flow_controlled_length or 0, _STREAM_ID)
        elif isinstance(event, h2.events.StreamEnded):
            if self._grpc_status is None and self._error is None:
                self._error = self._no_status()
        elif isinstance(event, h2.events.StreamReset):
            self._error = f"RST_STREAM {_error_code_name(event.error_code)}"
        elif isinstance(event, h2.events.ConnectionTerminated):
            # After a GOAWAY h2 accepts no more frames, so even a graceful NO_ERROR one
            # ends the call without a status.
            error = f"GOAWAY {_error_code_name(event.error_code)}"
            if event.additional_data:
                error += f" ({_decode(event.additional_data)!r})"
            self._error = _text(error)

    def _read_headers(self, headers: Iterable[tuple[bytes | str, bytes | str]]) -> None:
        for raw_name, raw_value in headers:
            name = _as_bytes(raw_name)
            value = _as_bytes(raw_value)
            if name == b":status":
                self._http_status = int(value) if value.isdigit() else None
            elif name == b"grpc-status":
                if value.isdigit() and len(value) <= 9:
                    self._grpc_status = int(value)
                else:
                    self._error = _text(f"invalid grpc-status {_decode(value)!r}")
            elif name == b"grpc-message":
                # gRPC percent-encodes the message (PROTOCOL-HTTP2.md, "Responses").
                self._grpc_message = _text(unquote(_decode(value), errors="replace"))

    def _no_status(self) -> str:
        return f"no grpc-status in the response (HTTP status {self._http_status})"


def _check_method(method: str) -> None:
    if method.startswith("/"):
        raise ValueError(f"gRPC method {method!r}: give it without the leading slash, as package.Service/Method")
    if not _METHOD.fullmatch(method):
        raise ValueError(f"gRPC method {method!r} is not of the form package.Service/Method")


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint: seven bits a byte, least significant first."""
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _is_settings_frame(head: bytes) -> bool:
    stream_id = struct.unpack("!I", head[5:9])[0] & 0x7FFFFFFF
    return head[3] == _SETTINGS_TYPE and stream_id == 0


def _not_http2(first_bytes: bytes) -> str:
    return f"the server did not speak HTTP/2 ({first_bytes[:_FIRST_BYTES]!r})"


def _error_code_name(code: h2.errors.ErrorCodes | int | None) -> str:
    if isinstance(code, h2.errors.ErrorCodes):
        return code.name
    if code is None:
        return "without an error code"
    return f"error code {code:#x}"


def _describe(exception: Exception) -> str:
    # Some of h2's exceptions carry only a stream ID (NoSuchStreamError(3) reads "3").
    if isinstance(exception, h2.exceptions.NoSuchStreamError):
        return f"{type(exception).__name__} on stream {exception.stream_id}"
    return str(exception) or type(exception).__name__


def _as_bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _decode(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _text(text: str) -> str:
    """Server text, cut to what a report may repeat."""
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"
