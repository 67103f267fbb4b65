"""The application exchange after the handshake: an HTTP request, a gRPC call or a
PostgreSQL startup, read until the server's first answer.

Each records what came back on the observation (``http``, ``grpc``, ``postgres``);
none judges it. Whatever the server sends that the protocol cannot read becomes an
error on the exchange, never an answer.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from mtls_audit.scanner.model.observations import GrpcExchange, HttpExchange, Phase, PostgresExchange
from mtls_audit.scanner.probe.grpc import GrpcCall, GrpcClient
from mtls_audit.scanner.probe.http import MAX_HTTP_HEAD, HttpRequest, parse_status_line
from mtls_audit.scanner.probe.postgres import BackendReader, startup_message
from mtls_audit.scanner.probe.requests import AppRequest, PostgresStartup
from mtls_audit.scanner.probe.wire import OurSideFailed, Wire

# Feeds the server's application data to a codec; returns what to send back.
_Feed = Callable[[bytes], bytes]


async def application_exchange(wire: Wire, seconds: float, request: AppRequest) -> None:
    """Make ``request`` and record the server's answer, waiting at most ``seconds``."""
    wire.recorder.phase = Phase.HTTP
    match request:
        case HttpRequest():
            await _http(wire, seconds, request)
        case GrpcCall():
            await _grpc(wire, seconds, request)
        case PostgresStartup():
            await _postgres(wire, seconds, request)


async def _send(wire: Wire, line: str, data: bytes) -> str | None:
    """Send the request; the reason it could not be sent, if it could not."""
    wire.recorder.request_sent = line
    try:
        await wire.send_application_data(data)
    except OurSideFailed:
        raise  # a send of ours that did not complete: the probe's local_error
    except Exception as exc:  # noqa: BLE001 - the session died between handshake and request
        return f"could not send: {exc}"
    return None


async def _converse(wire: Wire, seconds: float, feed: _Feed, done: Callable[[], bool]) -> bool:
    """Give the server's data to ``feed`` (what came before the request first) until
    ``done()`` or the connection ends; True when time ran out first."""
    with trio.move_on_after(seconds) as scope:
        while True:
            for data in wire.take_unread():
                answer = feed(data)
                if answer and not wire.over:
                    await _send_reply(wire, answer)
            if done() or wire.over:
                break
            await wire.receive()
    return scope.cancelled_caught and not done()


async def _send_reply(wire: Wire, data: bytes) -> None:
    """Send what the protocol answers (an HTTP/2 SETTINGS ack). If the session died
    meanwhile, the next read shows how; a failed reply is not a verdict."""
    try:
        await wire.send_application_data(data)
    except OurSideFailed:
        raise
    except Exception:  # noqa: BLE001, S110 - see above
        pass


def _timed_out(wire: Wire, what: str, seconds: float) -> str:
    wire.recorder.facts["timed_out"] = Phase.HTTP
    return f"no {what} within {seconds:g}s"


async def _http(wire: Wire, seconds: float, request: HttpRequest) -> None:
    recorder = wire.recorder
    received = bytearray()
    status: list[tuple[int, str] | None] = []  # set once the status line is in
    at_ms: float | None = None

    def feed(data: bytes) -> bytes:
        nonlocal at_ms
        received.extend(data)
        if not status and (b"\r\n" in received or len(received) > MAX_HTTP_HEAD):
            status.append(parse_status_line(bytes(received)))
            at_ms = recorder.elapsed_ms()
        return b""

    error = await _send(wire, request.request_line, request.encode())
    if error is None:
        timed_out = await _converse(wire, seconds, feed, lambda: bool(status))
        if status:
            error = None if status[0] is not None else "response is not HTTP"
        elif timed_out:
            error = _timed_out(wire, "HTTP response", seconds)
        else:
            error = "connection closed without an HTTP response"
    line = status[0] if status and status[0] else None
    recorder.facts["http"] = HttpExchange(
        request_line=request.request_line,
        status=line[0] if line else None,
        reason=line[1] if line else "",
        at_ms=at_ms if line else None,
        error=error,
    )


async def _grpc(wire: Wire, seconds: float, call: GrpcCall) -> None:
    recorder = wire.recorder
    alpn = recorder.facts.get("alpn")
    if alpn != "h2":
        chose = f"it chose {alpn!r}" if alpn else "it chose none"
        recorder.facts["grpc"] = GrpcExchange(
            call.method, error=f"the server did not agree to HTTP/2 by ALPN ({chose}): not a gRPC endpoint"
        )
        return
    client = GrpcClient(call)
    error = await _send(wire, call.description, client.start())
    at_ms: float | None = None
    if error is None:
        timed_out = await _converse(wire, seconds, client.receive_data, lambda: client.done)
        if not client.done:
            if timed_out:
                error = _timed_out(wire, "gRPC response", seconds)
            else:
                client.receive_eof()
        at_ms = recorder.elapsed_ms() if client.done else None
    response = client.response()
    recorder.facts["grpc"] = GrpcExchange(
        method=call.method,
        http_status=response.http_status,
        grpc_status=response.grpc_status,
        grpc_message=response.grpc_message,
        at_ms=at_ms if response.grpc_status is not None else None,
        error=error or response.error,
    )


async def _postgres(wire: Wire, seconds: float, startup: PostgresStartup) -> None:
    recorder = wire.recorder
    reader = BackendReader()

    def feed(data: bytes) -> bytes:
        reader.receive_data(data)
        return b""

    def answered() -> bool:
        return reader.answer is not None or reader.error is not None

    exchange = PostgresExchange(startup.user, startup.database, startup.negotiation.value)
    line = exchange.request_line
    error = await _send(wire, line, startup_message(startup.user, startup.database))
    at_ms: float | None = None
    if error is None:
        timed_out = await _converse(wire, seconds, feed, answered)
        at_ms = recorder.elapsed_ms()
        if reader.error is not None:
            error = reader.error
        elif reader.answer is None:
            error = (
                _timed_out(wire, "answer to the StartupMessage", seconds)
                if timed_out
                else "connection closed without an answer to the StartupMessage"
            )
    answer = reader.answer
    recorder.facts["postgres"] = PostgresExchange(
        user=startup.user,
        database=startup.database,
        negotiation=startup.negotiation.value,
        sqlstate=answer.sqlstate if answer else None,
        severity=answer.severity if answer else None,
        message=answer.message if answer else None,
        authentication=answer.auth_name if answer and answer.kind == "authentication" else None,
        at_ms=at_ms if answer else None,
        error=error,
    )
