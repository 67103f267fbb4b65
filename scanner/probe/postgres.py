"""The PostgreSQL wire protocol pieces a probe needs, with no I/O.

PostgreSQL does not start with TLS: the client asks with an SSLRequest and the server
answers one byte, ``S`` (go on with the TLS handshake) or ``N``. After the handshake
the client sends a StartupMessage, and the server's first message is the verdict on
our certificate where ``pg_hba.conf`` has ``clientcert=verify-full`` or ``cert``: an
ErrorResponse (SQLSTATE 28000, 28P01...) or an Authentication request. Nothing later
is needed, so ``BackendReader`` reads exactly one message.

Protocol 3.0, https://www.postgresql.org/docs/current/protocol-message-formats.html
and https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SSL_REQUEST_CODE = 80877103  # 1234 << 16 | 5679: looks like no protocol version
PROTOCOL_3_0 = 196608  # 3 << 16

SSL_REQUEST = struct.pack("!ii", 8, SSL_REQUEST_CODE)

# The first backend message is an error or an authentication request of a few hundred
# bytes; a length past 1 MiB means the bytes are not PostgreSQL, and caps what we buffer.
MAX_MESSAGE = 1 << 20

_MAX_TEXT = 200  # characters of server text we repeat in a report
_FIRST_BYTES = 16  # of a server that is not PostgreSQL, shown to say what it was

# Every backend message type of protocol 3.0 (protocol-message-formats, "(B)").
_BACKEND_TYPES = frozenset(b"R K 2 3 C d c G H W D I E V v n N A t S 1 s Z T".replace(b" ", b""))

_AUTHENTICATION_SASL = 10
_AUTHENTICATION_NAMES = {
    0: "AuthenticationOk",
    2: "AuthenticationKerberosV5",
    3: "AuthenticationCleartextPassword",
    5: "AuthenticationMD5Password",
    7: "AuthenticationGSS",
    8: "AuthenticationGSSContinue",
    9: "AuthenticationSSPI",
    _AUTHENTICATION_SASL: "AuthenticationSASL",
    11: "AuthenticationSASLContinue",
    12: "AuthenticationSASLFinal",
}


def ssl_response_text(byte: bytes) -> str | None:
    """What the server's answer to SSLRequest means: None to go on with TLS, else why not."""
    if byte == b"S":
        return None
    if byte == b"N":
        return "the server does not accept SSL (answered N to SSLRequest)"
    if not byte:
        return "the server closed the connection without answering SSLRequest"
    if byte[:1] == b"S":
        # Bytes after the S arrived before any TLS, so anyone on the path could have
        # written them; libpq refuses this since CVE-2021-23222.
        return f"the server sent unencrypted bytes after answering S to SSLRequest ({byte[:_FIRST_BYTES]!r})"
    return f"not a PostgreSQL server: answered {byte[:_FIRST_BYTES]!r} to SSLRequest"


def startup_message(user: str, database: str, application_name: str = "mtls-audit") -> bytes:
    """The StartupMessage for protocol 3.0; an empty database or name is left out
    (the server then takes the database named like the user)."""
    if not user:
        raise ValueError("a PostgreSQL StartupMessage needs a user")
    body = struct.pack("!i", PROTOCOL_3_0)
    for key, value in (("user", user), ("database", database), ("application_name", application_name)):
        if "\0" in value:
            raise ValueError(f"PostgreSQL {key} {value!r} contains a NUL character")
        if value:
            body += key.encode("ascii") + b"\0" + value.encode("utf-8") + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


@dataclass(frozen=True, slots=True)
class PostgresAnswer:
    """The server's first message after our StartupMessage."""

    kind: str  # "error" | "authentication" | "other"
    sqlstate: str | None = None
    severity: str | None = None  # the non-localized V field, else S
    message: str | None = None
    detail: str | None = None
    auth_code: int | None = None  # an Authentication message's Int32
    sasl_mechanisms: tuple[str, ...] = ()  # AuthenticationSASL's list, e.g. SCRAM-SHA-256
    message_type: str = ""  # the type byte, e.g. "E", "R", "v" (NegotiateProtocolVersion)

    @property
    def auth_name(self) -> str:
        if self.auth_code is None:
            return ""
        name = _AUTHENTICATION_NAMES.get(self.auth_code, f"Authentication request {self.auth_code}")
        if self.sasl_mechanisms:
            name += f" ({', '.join(self.sasl_mechanisms)})"
        return name


class BackendReader:
    """Reads the first backend message after the StartupMessage."""

    def __init__(self) -> None:
        self._buffer = b""
        self._answer: PostgresAnswer | None = None
        self._error: str | None = None

    def receive_data(self, data: bytes) -> None:
        if self._answer is not None or self._error is not None:
            return
        self._buffer += data
        # Type byte and Int32 length (which counts itself, not the type byte).
        if len(self._buffer) < 5:
            if self._buffer and self._buffer[0] not in _BACKEND_TYPES:
                self._error = self._garbage(f"{self._buffer[:1]!r} is not a backend message type")
            return
        message_type = self._buffer[0]
        (length,) = struct.unpack("!i", self._buffer[1:5])
        if message_type not in _BACKEND_TYPES:
            self._error = self._garbage(f"{self._buffer[:1]!r} is not a backend message type")
        elif not 4 <= length <= MAX_MESSAGE:
            self._error = self._garbage(f"message length {length} is out of range")
        elif len(self._buffer) >= 1 + length:
            self._read(chr(message_type), self._buffer[5 : 1 + length])
            self._buffer = b""  # one message is all we read

    @property
    def answer(self) -> PostgresAnswer | None:
        """Set once one whole message has arrived."""
        return self._answer

    @property
    def error(self) -> str | None:
        """Set when the bytes cannot be PostgreSQL."""
        return self._error

    def _read(self, message_type: str, body: bytes) -> None:
        if message_type == "E":
            self._answer = _error_response(body)
        elif message_type == "R":
            if len(body) < 4:
                self._error = self._garbage(f"an Authentication message of {len(body)} bytes has no code")
                return
            (code,) = struct.unpack("!i", body[:4])
            mechanisms = _cstrings(body[4:]) if code == _AUTHENTICATION_SASL else ()
            self._answer = PostgresAnswer(
                "authentication", auth_code=code, sasl_mechanisms=mechanisms, message_type="R"
            )
        else:
            self._answer = PostgresAnswer("other", message_type=message_type)

    def _garbage(self, why: str) -> str:
        return f"not PostgreSQL: {why} (the server sent {self._buffer[:_FIRST_BYTES]!r})"


def _error_response(body: bytes) -> PostgresAnswer:
    """ErrorResponse: fields of a type byte and a string, ended by a zero byte.

    V (since PostgreSQL 9.6) is the severity in English, S the same word translated
    to the server's language; reports want the first. Unknown field types are skipped,
    as the protocol asks of clients.
    """
    fields: dict[str, str] = {}
    position = 0
    while position < len(body) and body[position] != 0:
        field_type = chr(body[position])
        end = body.find(b"\0", position + 1)
        if end < 0:
            end = len(body)  # a last field cut short: take what there is
        fields.setdefault(field_type, _text(body[position + 1 : end]))
        position = end + 1
    return PostgresAnswer(
        "error",
        sqlstate=fields.get("C"),
        severity=fields.get("V", fields.get("S")),
        message=fields.get("M"),
        detail=fields.get("D"),
        message_type="E",
    )


def _cstrings(data: bytes) -> tuple[str, ...]:
    """A list of zero-terminated strings ended by an empty one (SASL mechanisms)."""
    names = []
    for raw in data.split(b"\0"):
        if not raw:
            break
        names.append(_text(raw))
    return tuple(names[:16])


def _text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"
