"""Parsers for the settings a target takes from itself or from ``defaults``.

Each takes the value as YAML/JSON gave it and returns it typed, or raises
:class:`FieldError` naming the field; none touches the file system.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, TypeVar

from mtls_audit.scanner.inventory.errors import FieldError
from mtls_audit.scanner.model.observations import TLSVersion
from mtls_audit.scanner.model.spiffe import parse_spiffe_id
from mtls_audit.scanner.model.text import describe, show

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONVENTIONAL_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")

_Choice = TypeVar("_Choice", bound=Enum)


def expiry_warning_days(value: Any) -> int:
    return _days(value, "expiry_warning_days", minimum=0)


def max_cert_lifetime_days(value: Any) -> int:
    return _days(value, "max_cert_lifetime_days", minimum=1)


def _days(value: Any, field: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(field, f"must be a whole number of days, got {describe(value)}")
    if value < minimum:
        raise FieldError(field, f"must be {minimum} or more, got {value}")
    return value


def server_identity(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(
            "server_identity", f"must be a SPIFFE ID such as spiffe://example.org/service, got {describe(value)}"
        )
    try:
        return str(parse_spiffe_id(value.strip()))
    except ValueError as error:
        hint = "; a DNS name or IP address goes in server_name" if "://" not in value else ""
        raise FieldError("server_identity", f"{show(value)} is not a SPIFFE ID: {error}{hint}") from None


_METHOD = re.compile(r"[A-Z][A-Z-]{0,15}")
# A gRPC method as its :path names it, without the slash: package.Service/Method.
_GRPC_METHOD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/[A-Za-z_][A-Za-z0-9_]*")
GRPC_REQUEST = "grpc"


def request(value: Any, field: str) -> tuple[str, str]:
    """``"POST /transfer"`` -> ("POST", "/transfer");
    ``"grpc bank.Payments/Transfer"`` -> ("grpc", "bank.Payments/Transfer")."""
    if not isinstance(value, str):
        raise FieldError(field, f'must be "METHOD /path" such as "POST /transfer", got {describe(value)}')
    method, _, path = value.strip().partition(" ")
    if method == GRPC_REQUEST:
        if not _GRPC_METHOD.fullmatch(path.strip()):
            raise FieldError(
                field, f'must be "grpc package.Service/Method" such as "grpc bank.Payments/Transfer", got {show(value)}'
            )
        return method, path.strip()
    if not _METHOD.fullmatch(method) or not path.strip():
        raise FieldError(field, f'must be "METHOD /path" such as "POST /transfer", got {show(value)}')
    try:
        return method, http_path(path.strip())
    except FieldError as error:
        raise FieldError(field, f"the path in {show(value)} {error.reason}") from None


def min_tls_version(value: Any) -> TLSVersion:
    # YAML reads an unquoted 1.2 as a float; accept it.
    if isinstance(value, float) and not isinstance(value, bool):
        value = f"{value:.1f}"
    if not isinstance(value, str):
        raise FieldError("min_tls_version", f"must be one of 1.0, 1.1, 1.2, 1.3, got {describe(value)}")
    try:
        return TLSVersion.parse(value)
    except ValueError:
        raise FieldError(
            "min_tls_version", f"unknown TLS version {show(value)} (expected one of 1.0, 1.1, 1.2, 1.3)"
        ) from None


def grpc_service(value: Any) -> str:
    """The service name a gRPC health check asks about ("" asks about the server)."""
    if not isinstance(value, str) or any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise FieldError("grpc_service", f"must be a gRPC service name such as bank.Payments, got {describe(value)}")
    return value


def postgres_name(value: Any, field: str) -> str:
    """A PostgreSQL user or database name for the StartupMessage."""
    if not isinstance(value, str) or not value or "\0" in value or len(value) > 63:
        raise FieldError(field, f"must be a PostgreSQL name (1 to 63 characters), got {describe(value)}")
    return value


def choice(value: Any, field: str, enum_type: type[_Choice]) -> _Choice:
    """One of a string enum's values, case and surrounding blanks ignored."""
    if isinstance(value, str):
        for member in enum_type:
            if member.value == value.strip().lower():
                return member
    allowed = [member.value for member in enum_type]
    raise FieldError(field, f"must be one of {', '.join(allowed)}, got {describe(value)}")


def http_path(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("http_path", f"must be a string starting with '/', got {describe(value)}")
    if not value.startswith("/"):
        raise FieldError("http_path", f"must start with '/', got {show(value)}")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise FieldError("http_path", "must not contain spaces or control characters")
    return value


def tags(value: Any) -> tuple[str, ...]:
    return tuple(string_list(value, "tags", "tags"))


def string_list(value: Any, field: str, what: str) -> list[str]:
    if not isinstance(value, list):
        raise FieldError(field, f"must be a list of {what}, got {describe(value)}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise FieldError(field, f"must be a list of non-empty strings, found {describe(item)}")
    return list(value)


def password_from_env(name: Any, environ: Mapping[str, str]) -> bytes:
    """The key password from the environment variable ``name``; ValueError if ``name``
    is not a variable name or the variable is not set."""
    if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
        # Don't echo the value: people sometimes put the password itself here.
        raise ValueError(
            "must be the name of an environment variable (letters, digits and '_'), not the password itself"
        )
    if name not in environ:
        if _CONVENTIONAL_ENV_NAME.fullmatch(name):
            raise ValueError(f"environment variable {name} is not set")
        raise ValueError(
            "the environment variable it names is not set (password_env holds the variable's name, not the password)"
        )
    return environ[name].encode("utf-8")


def password_hint(message: str, setting: str) -> str:
    """Credential errors talk about password_env; on the command line it's a flag."""
    return message.replace("set password_env", f"set {setting}")
