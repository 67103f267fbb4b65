"""The keys an inventory may hold, and what to say about one it may not."""

from __future__ import annotations

import difflib
from collections.abc import Collection
from typing import Any

from mtls_audit.scanner.model.text import show, type_name

SHARED_KEYS = (
    "trust",
    "identity",
    "expiry_warning_days",
    "min_tls_version",
    "client_auth",
    "probe",
    "http_path",
    "disabled_checks",
    "tags",
    "access",
    "max_cert_lifetime_days",
    "grpc_service",
    "postgres_user",
    "postgres_database",
    "postgres_negotiation",
)
TARGET_ONLY_KEYS = ("name", "address", "server_name", "server_identity")
TARGET_KEYS = TARGET_ONLY_KEYS + SHARED_KEYS
IDENTITY_KEYS = ("cert", "key", "pkcs12", "password_env")
ISSUER_KEYS = ("cert", "key", "password_env")
ACCESS_RULE_KEYS = ("identity", "request", "expect")
TOP_LEVEL_KEYS = ("identities", "issuer", "defaults", "targets")

# Hints for keys people plausibly write instead of the supported ones.
_KEY_HINTS = {
    "port": "put the port in address: 'host:port'",
    "host": "use address: 'host:port'",
    "password": "never put the password in the inventory: name an environment variable in password_env instead",
    "sni": "use server_name",
    "ca": "use trust",
}


def unknown_key(key: Any, allowed: Collection[str]) -> tuple[str, str]:
    """The reason ("unknown key 'prot'") and what to do instead ("(expected one of:
    ...); did you mean 'port'?"), for the caller to place around where it was found."""
    shown = show(key) if isinstance(key, str) else f"{show(key)} ({type_name(key)})"
    reason = f"unknown key {shown}"
    hint = _KEY_HINTS.get(key) if isinstance(key, str) else None
    if hint is None and isinstance(key, str):
        close = difflib.get_close_matches(key, list(allowed), n=1)
        if close:
            hint = f"did you mean '{close[0]}'?"
    return reason, f"(expected one of: {', '.join(allowed)})" + (f"; {hint}" if hint else "")
