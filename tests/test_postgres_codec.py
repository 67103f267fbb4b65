"""The PostgreSQL wire pieces: SSLRequest and its answer, the StartupMessage, and the
first backend message, built by hand and delivered in pieces."""

from __future__ import annotations

import struct

import pytest

from mtls_audit.scanner.probe.postgres import (
    SSL_REQUEST,
    BackendReader,
    PostgresAnswer,
    ssl_response_text,
    startup_message,
)


def message(type_byte: bytes, body: bytes) -> bytes:
    return type_byte + struct.pack("!i", len(body) + 4) + body


def error_response(**fields: str) -> bytes:
    body = b"".join(key.encode() + value.encode() + b"\0" for key, value in fields.items()) + b"\0"
    return message(b"E", body)


def authentication(code: int, extra: bytes = b"") -> bytes:
    return message(b"R", struct.pack("!i", code) + extra)


# What PostgreSQL 16 sends when pg_hba.conf says `hostssl all all all cert` and the
# client certificate's CN is not the user (auth.c, "certificate authentication failed").
CERT_FAILED = error_response(
    S="FATAL",
    V="FATAL",
    C="28000",
    M='certificate authentication failed for user "audit"',
    F="auth.c",
    L="631",
    R="auth_failed",
)


def read(*chunks: bytes) -> BackendReader:
    reader = BackendReader()
    for chunk in chunks:
        reader.receive_data(chunk)
    return reader


def test_ssl_request_bytes() -> None:
    assert SSL_REQUEST == bytes.fromhex("00000008 04d2162f")


def test_ssl_answers() -> None:
    assert ssl_response_text(b"S") is None
    assert ssl_response_text(b"N") == "the server does not accept SSL (answered N to SSLRequest)"
    assert ssl_response_text(b"H") == "not a PostgreSQL server: answered b'H' to SSLRequest"
    assert ssl_response_text(b"HTTP/1.1 400 Bad Request\r\n") == (
        "not a PostgreSQL server: answered b'HTTP/1.1 400 Bad' to SSLRequest"
    )
    assert ssl_response_text(b"") == "the server closed the connection without answering SSLRequest"


def test_bytes_after_s_are_refused() -> None:
    # CVE-2021-23222: bytes that arrive with the S were not protected by TLS.
    assert ssl_response_text(b"S\x00\x00") == (
        "the server sent unencrypted bytes after answering S to SSLRequest (b'S\\x00\\x00')"
    )


def test_startup_message_bytes() -> None:
    body = struct.pack("!i", 196608) + b"user\0audit\0database\0payments\0application_name\0mtls-audit\0" + b"\0"
    assert startup_message("audit", "payments") == struct.pack("!i", len(body) + 4) + body
    assert len(startup_message("audit", "payments")) == 4 + 4 + 11 + 18 + 28 + 1


def test_startup_message_leaves_out_empty_values() -> None:
    assert startup_message("audit", "", "") == bytes.fromhex("00000014 00030000") + b"user\0audit\0\0"


def test_startup_message_encodes_utf8() -> None:
    assert b"user\0j\xc3\xb6rg\0" in startup_message("jörg", "db")


@pytest.mark.parametrize(("user", "database"), [("", "db"), ("au\0dit", "db"), ("audit", "d\0b")])
def test_startup_message_refuses_what_it_cannot_send(user: str, database: str) -> None:
    with pytest.raises(ValueError):
        startup_message(user, database)


def test_an_error_response_in_one_piece() -> None:
    reader = read(CERT_FAILED)

    assert reader.error is None
    assert reader.answer == PostgresAnswer(
        "error",
        sqlstate="28000",
        severity="FATAL",
        message='certificate authentication failed for user "audit"',
        detail=None,
        message_type="E",
    )


def test_an_error_response_byte_by_byte() -> None:
    reader = BackendReader()
    for index in range(len(CERT_FAILED)):
        assert reader.answer is None
        reader.receive_data(CERT_FAILED[index : index + 1])

    assert reader.error is None
    assert reader.answer is not None
    assert reader.answer.sqlstate == "28000"


@pytest.mark.parametrize("cut", [1, 4, 5, 6, 20, len(CERT_FAILED) - 1])
def test_an_error_response_in_two_pieces(cut: int) -> None:
    reader = read(CERT_FAILED[:cut])
    assert reader.answer is None
    assert reader.error is None

    reader.receive_data(CERT_FAILED[cut:])
    assert reader.answer == read(CERT_FAILED).answer


def test_the_english_severity_wins_over_the_localized_one() -> None:
    answer = read(error_response(S="FATAL", V="FATAL", C="28000", M="x")).answer
    localized = read(error_response(S="SCHWERWIEGEND", V="FATAL", C="28P01", M="Passwort", D="Detail")).answer
    old_server = read(error_response(S="FATAL", C="28000", M="x")).answer

    assert answer is not None and answer.severity == "FATAL"
    assert localized == PostgresAnswer(
        "error", sqlstate="28P01", severity="FATAL", message="Passwort", detail="Detail", message_type="E"
    )
    assert old_server is not None and old_server.severity == "FATAL"


def test_server_text_is_decoded_with_replacement_and_cut_to_200_characters() -> None:
    body = b"C28000\0M" + b"\xff" + b"m" * 1000 + b"\0\0"
    answer = read(message(b"E", body)).answer

    assert answer is not None
    assert answer.message is not None
    assert len(answer.message) == 200
    assert answer.message.startswith("\ufffdmmm")
    assert answer.message.endswith("m\u2026")


def test_an_error_response_without_its_final_terminator_is_still_read() -> None:
    answer = read(message(b"E", b"SFATAL\0C28000\0Mno terminator")).answer

    assert answer == PostgresAnswer(
        "error", sqlstate="28000", severity="FATAL", message="no terminator", message_type="E"
    )


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0, "AuthenticationOk"),
        (2, "AuthenticationKerberosV5"),
        (3, "AuthenticationCleartextPassword"),
        (5, "AuthenticationMD5Password"),
        (7, "AuthenticationGSS"),
        (9, "AuthenticationSSPI"),
        (10, "AuthenticationSASL"),
        (99, "Authentication request 99"),
    ],
)
def test_authentication_requests(code: int, name: str) -> None:
    extra = b"\0\0\0\0" if code == 5 else b""  # MD5 carries a four-byte salt
    answer = read(authentication(code, extra)).answer

    assert answer == PostgresAnswer("authentication", auth_code=code, message_type="R")
    assert answer.auth_name == name


def test_sasl_lists_its_mechanisms() -> None:
    answer = read(authentication(10, b"SCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0")).answer

    assert answer is not None
    assert answer.sasl_mechanisms == ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-256")
    assert answer.auth_name == "AuthenticationSASL (SCRAM-SHA-256-PLUS, SCRAM-SHA-256)"


def test_sasl_byte_by_byte() -> None:
    data = authentication(10, b"SCRAM-SHA-256\0\0")
    reader = read(*(data[index : index + 1] for index in range(len(data))))

    assert reader.answer is not None
    assert reader.answer.auth_name == "AuthenticationSASL (SCRAM-SHA-256)"


def test_an_authentication_message_without_a_code_is_garbage() -> None:
    reader = read(message(b"R", b"\0\0"))

    assert reader.answer is None
    assert (
        reader.error
        == "not PostgreSQL: an Authentication message of 2 bytes has no code (the server sent b'R\\x00\\x00\\x00\\x06\\x00\\x00')"
    )


def test_another_backend_message_is_other() -> None:
    # NegotiateProtocolVersion: newest minor version, and no options it did not know.
    reader = read(message(b"v", struct.pack("!ii", 196608, 0)))

    assert reader.answer == PostgresAnswer("other", message_type="v")
    assert reader.answer.auth_name == ""


def test_only_the_first_message_is_read() -> None:
    reader = read(authentication(0) + message(b"S", b"server_version\x0016.2\0"), b"garbage")

    assert reader.answer == PostgresAnswer("authentication", auth_code=0, message_type="R")
    assert reader.error is None


def test_an_unknown_type_byte_is_garbage_at_once() -> None:
    reader = read(b"\x16")  # a TLS handshake record: a server that expected TLS first

    assert reader.answer is None
    assert reader.error == "not PostgreSQL: b'\\x16' is not a backend message type (the server sent b'\\x16')"


def test_an_ssh_banner_is_garbage() -> None:
    reader = read(b"SSH-2.0-OpenSSH_9.6\r\n")

    # S is ParameterStatus, but "SH-2" is not a length a server would send.
    assert reader.error == (
        "not PostgreSQL: message length 1397239090 is out of range (the server sent b'SSH-2.0-OpenSSH_')"
    )


@pytest.mark.parametrize("length", [0, 3, -1, (1 << 20) + 1])
def test_a_length_out_of_range_is_garbage(length: int) -> None:
    reader = read(b"E" + struct.pack("!i", length), b"more")

    assert reader.answer is None
    assert reader.error is not None
    assert reader.error.startswith(f"not PostgreSQL: message length {length} is out of range")


def test_a_length_of_exactly_one_mib_is_waited_for() -> None:
    reader = read(b"E" + struct.pack("!i", 1 << 20), b"SFATAL\0")

    assert reader.answer is None
    assert reader.error is None


def test_an_empty_error_response_is_an_error_without_fields() -> None:
    assert read(message(b"E", b"")).answer == PostgresAnswer("error", message_type="E")
