"""Addresses (``host:port``, ``1.2.3.4:port``, ``[v6]:port``) and server names.

Each parser has a fast path, one regular expression for the common well-formed
spelling, and falls back to the step-by-step checks that say what is wrong; the
fast path accepts nothing the checks would reject.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from mtls_audit.scanner.model.text import describe, show, type_name

_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
_PLAIN_ADDRESS = re.compile(r"([A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?):([0-9]{1,5})")
_PLAIN_SERVER_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def parse_address(text: str) -> tuple[str, int]:
    """Split ``host:port``, ``1.2.3.4:port`` or ``[v6]:port``; the IPv6 host comes back
    without brackets. Raises ValueError with a short reason."""
    if isinstance(text, str):
        plain = _PLAIN_ADDRESS.fullmatch(text)
        if plain is not None and ".." not in text:
            port = int(plain[2])
            if 1 <= port <= 65535:
                return plain[1], port
    return _parse_address_step_by_step(text)


def _parse_address_step_by_step(text: Any) -> tuple[str, int]:
    if not isinstance(text, str):
        raise ValueError(f"expected a string 'host:port', got {type_name(text)}")
    if text != text.strip() or any(ch.isspace() for ch in text):
        raise ValueError(f"{show(text)} contains whitespace")
    if not text:
        raise ValueError("is empty; expected 'host:port'")
    if "://" in text or "/" in text:
        raise ValueError(f"{show(text)} looks like a URL; expected 'host:port'")
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"{show(text)} has '[' without a closing ']'")
        host, rest = text[1:close], text[close + 1 :]
        if not host:
            raise ValueError(f"{show(text)} has an empty host")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"{show(text)}: brackets are only for IPv6 addresses, and {show(host)} is not one"
            ) from None
        if literal.version != 6:
            raise ValueError(f"{show(text)}: brackets are only for IPv6 addresses; write {host}:PORT")
        if not rest:
            raise ValueError(f"{show(text)} has no port; expected '[{host}]:PORT'")
        if not rest.startswith(":"):
            raise ValueError(f"{show(text)}: expected ':PORT' after ']'")
        return host, _parse_port(rest[1:], text)
    if "]" in text:
        raise ValueError(f"{show(text)} has ']' without an opening '['")
    colons = text.count(":")
    if colons == 0:
        raise ValueError(f"{show(text)} has no port; expected 'host:port'")
    if colons > 1:
        raise ValueError(f"{show(text)}: an IPv6 address needs brackets, as in '[::1]:8443'")
    host, port_text = text.split(":")
    if not host:
        raise ValueError(f"{show(text)} has an empty host")
    if not _HOSTNAME.fullmatch(host) or ".." in host:
        raise ValueError(f"{show(host)} is not a valid host name or IPv4 address")
    return host, _parse_port(port_text, text)


def _parse_port(port_text: str, text: str) -> int:
    if not port_text:
        raise ValueError(f"{show(text)} has an empty port")
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"{show(text)}: port {show(port_text)} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{show(text)}: port {port} is not in 1-65535")
    return port


def check_server_name(value: Any) -> str:
    """The name the server certificate must match: a host name or an IP address.
    Raises ValueError with a short reason."""
    if isinstance(value, str) and _PLAIN_SERVER_NAME.fullmatch(value):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty host name, got {describe(value)}")
    if any(ch.isspace() for ch in value) or "/" in value or (":" in value and not _is_ipv6(value)):
        raise ValueError(f"{show(value)} is not a host name or IP address")
    return value


def normal_host(host: str) -> str:
    """One spelling per host, to find two targets that are the same endpoint: IPv6
    addresses compressed, names in lower case without the root dot."""
    if ":" in host:
        try:
            return ipaddress.ip_address(host).compressed
        except ValueError:
            pass
    # No need to parse an IPv4 address: ipaddress accepts only the canonical dotted
    # quad (no leading zeros), which is already its own compressed form.
    return host.lower().rstrip(".")


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False
