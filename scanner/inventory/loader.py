"""The inventory: a YAML (or JSON) file listing the endpoints to audit.

::

    defaults:
      trust: pki/ca.pem
      identity: {cert: pki/client.pem, key: pki/client.key, password_env: CLIENT_KEY_PASSWORD}
      expiry_warning_days: 30
    targets:
      - name: payments-api
        address: api.internal:8443
        tags: [staging]

Paths are relative to the inventory file's directory. Every problem is reported as an
:class:`InventoryError` with a one-line message naming the file, the target and the
field; messages never include key material or passwords.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509

from mtls_audit.scanner.credentials.files import (
    CredentialError,
    SigningKey,
    load_certificates,
    load_private_key,
    make_client_credential,
)
from mtls_audit.scanner.model.observations import TLSVersion
from mtls_audit.scanner.model.target import AppProtocol, ClientAuthExpectation, ClientIdentity, Target
from mtls_audit.scanner.model.text import describe as _describe
from mtls_audit.scanner.model.text import show as _show
from mtls_audit.scanner.model.text import type_name as _type_name
from mtls_audit.scanner.strict_yaml import StrictSafeLoader

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
)
TARGET_ONLY_KEYS = ("name", "address", "server_name")
TARGET_KEYS = TARGET_ONLY_KEYS + SHARED_KEYS
IDENTITY_KEYS = ("cert", "key", "password_env")
TOP_LEVEL_KEYS = ("defaults", "targets")

# Hints for keys people plausibly write instead of the supported ones.
_KEY_HINTS = {
    "port": "put the port in address: 'host:port'",
    "host": "use address: 'host:port'",
    "password": "never put the password in the inventory: name an environment variable in password_env instead",
    "sni": "use server_name",
    "ca": "use trust",
}

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONVENTIONAL_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?")


class InventoryError(Exception):
    """A problem in the inventory, as one line: file, target, field, reason."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        target: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.target = target
        self.field = field


# --------------------------------------------------------------------------- addresses


def parse_address(text: str) -> tuple[str, int]:
    """Split ``host:port``, ``1.2.3.4:port`` or ``[v6]:port``; the IPv6 host comes back
    without brackets. Raises ValueError with a short reason."""
    if not isinstance(text, str):
        raise ValueError(f"expected a string 'host:port', got {_type_name(text)}")
    if text != text.strip() or any(ch.isspace() for ch in text):
        raise ValueError(f"{_show(text)} contains whitespace")
    if not text:
        raise ValueError("is empty; expected 'host:port'")
    if "://" in text or "/" in text:
        raise ValueError(f"{_show(text)} looks like a URL; expected 'host:port'")
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"{_show(text)} has '[' without a closing ']'")
        host, rest = text[1:close], text[close + 1 :]
        if not host:
            raise ValueError(f"{_show(text)} has an empty host")
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(
                f"{_show(text)}: brackets are only for IPv6 addresses, and {_show(host)} is not one"
            ) from None
        if literal.version != 6:
            raise ValueError(f"{_show(text)}: brackets are only for IPv6 addresses; write {host}:PORT")
        if not rest:
            raise ValueError(f"{_show(text)} has no port; expected '[{host}]:PORT'")
        if not rest.startswith(":"):
            raise ValueError(f"{_show(text)}: expected ':PORT' after ']'")
        return host, _parse_port(rest[1:], text)
    if "]" in text:
        raise ValueError(f"{_show(text)} has ']' without an opening '['")
    colons = text.count(":")
    if colons == 0:
        raise ValueError(f"{_show(text)} has no port; expected 'host:port'")
    if colons > 1:
        raise ValueError(f"{_show(text)}: an IPv6 address needs brackets, as in '[::1]:8443'")
    host, port_text = text.split(":")
    if not host:
        raise ValueError(f"{_show(text)} has an empty host")
    if not _HOSTNAME.fullmatch(host) or ".." in host:
        raise ValueError(f"{_show(host)} is not a valid host name or IPv4 address")
    return host, _parse_port(port_text, text)


def _parse_port(port_text: str, text: str) -> int:
    if not port_text:
        raise ValueError(f"{_show(text)} has an empty port")
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"{_show(text)}: port {_show(port_text)} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"{_show(text)}: port {port} is not in 1-65535")
    return port


# --------------------------------------------------------------------------- loading


def load_inventory(
    path: Path,
    environ: Mapping[str, str] = os.environ,
    *,
    known_checks: Collection[str] | None = None,
) -> tuple[Target, ...]:
    """Read, validate and load an inventory file; raise InventoryError on any problem."""
    path = Path(path)
    source = str(path)
    document = _parse_document(path, source)
    loader = _Loader(
        source=source,
        base_dir=path.parent.absolute(),
        environ=environ,
        known_checks=None if known_checks is None else frozenset(known_checks),
    )
    return loader.load(document)


def target_from_command_line(
    address: str,
    *,
    ca: Path,
    cert: Path | None,
    key: Path | None,
    server_name: str | None,
    password_env: str | None = None,
    environ: Mapping[str, str] = os.environ,
) -> Target:
    """One target from ``mtls-audit scan HOST:PORT --ca ... --cert ... --key ...``.

    Paths are relative to the working directory; errors name the flag at fault.
    """

    def fail(flag: str, reason: str) -> InventoryError:
        return InventoryError(f"{flag}: {reason}", field=flag)

    try:
        host, port = parse_address(address)
    except ValueError as error:
        raise fail("HOST:PORT", str(error)) from None
    if server_name is not None:
        try:
            server_name = _check_server_name(server_name)
        except ValueError as error:
            raise fail("--server-name", str(error)) from None
    try:
        trust_anchors = load_certificates(Path(ca))
    except CredentialError as error:
        raise fail("--ca", str(error)) from None

    identity = None
    if (cert is None) != (key is None):
        given, missing = ("--cert", "--key") if key is None else ("--key", "--cert")
        raise fail(missing, f"missing: {given} needs {missing} too")
    if password_env is not None and cert is None:
        raise fail("--password-env", "only makes sense with --cert and --key")
    if cert is not None and key is not None:
        password = None
        if password_env is not None:
            try:
                password = _password_from_env(password_env, environ)
            except ValueError as error:
                raise fail("--password-env", str(error)) from None
        try:
            certificates = load_certificates(Path(cert))
        except CredentialError as error:
            raise fail("--cert", str(error)) from None
        try:
            private_key = load_private_key(Path(key), password)
            credential = make_client_credential(certificates, private_key, cert_display=str(cert), key_display=str(key))
        except CredentialError as error:
            raise fail("--key", _password_hint(str(error), "--password-env")) from None
        identity = ClientIdentity(credential=credential, cert_path=Path(cert).absolute(), key_path=Path(key).absolute())

    return Target(
        name=address,
        host=host,
        port=port,
        server_name=server_name if server_name is not None else host,
        index=0,
        trust_anchors=trust_anchors,
        trust_path=Path(ca).absolute(),
        identity=identity,
    )


# --------------------------------------------------------------------------- documents


def _parse_document(path: Path, source: str) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InventoryError(f"cannot read {source}: {error.strerror or type(error).__name__}", source=source) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InventoryError(f"{source}: not UTF-8 text (bad byte at offset {error.start})", source=source) from None

    if path.suffix.lower() == ".json":

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            result: dict[str, Any] = {}
            for key, value in pairs:
                if key in result:
                    raise ValueError(f"duplicate key {_show(key)}")
                result[key] = value
            return result

        try:
            document = json.loads(text, object_pairs_hook=no_duplicates)
        except json.JSONDecodeError as error:
            raise InventoryError(
                f"{source}: JSON syntax error at line {error.lineno}, column {error.colno}: {error.msg}",
                source=source,
            ) from None
        except ValueError as error:
            raise InventoryError(f"{source}: {error}", source=source) from None
    else:
        try:
            document = yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 - a SafeLoader
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            what = error.problem or error.context or "invalid YAML"
            if mark is not None and _looks_like_unquoted_ipv6(text, mark.line):
                what += "; quote IPv6 addresses in YAML: address: '[::1]:8443'"
            raise InventoryError(f"{source}: invalid YAML{where}: {what}", source=source) from None
        except yaml.YAMLError as error:
            reason = str(error).splitlines()[0] if str(error) else "invalid YAML"
            raise InventoryError(f"{source}: YAML error: {reason}", source=source) from None
    return document


# --------------------------------------------------------------------------- validation


class _FieldError(Exception):
    """Internal: a problem with one field; the loader adds the file and target."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class _Trust:
    path: Path
    anchors: tuple[x509.Certificate, ...]


_UNSET = object()


class _Loader:
    def __init__(
        self,
        *,
        source: str,
        base_dir: Path,
        environ: Mapping[str, str],
        known_checks: frozenset[str] | None,
    ) -> None:
        self.source = source
        self.base_dir = base_dir
        self.environ = environ
        self.known_checks = known_checks
        # Each distinct file is parsed once, however many targets share it.
        self._certificates: dict[Path, tuple[x509.Certificate, ...]] = {}
        self._keys: dict[tuple[Path, bytes | None], SigningKey] = {}
        self._identities: dict[tuple[Path, Path, bytes | None], ClientIdentity] = {}

    # -- errors

    def _error(self, where: str | None, reason: str, *, target=None, field=None) -> InventoryError:
        prefix = f"{self.source}: " + (f"{where}: " if where else "")
        return InventoryError(prefix + reason, source=self.source, target=target, field=field)

    def _field_error(self, where: str, error: _FieldError, target: str | None) -> InventoryError:
        return self._error(where, f"field '{error.field}': {error.reason}", target=target, field=error.field)

    def _unknown_key(self, key: Any, allowed: Collection[str]) -> tuple[str, str]:
        shown = _show(key) if isinstance(key, str) else f"{_show(key)} ({_type_name(key)})"
        reason = f"unknown key {shown}"
        hint = _KEY_HINTS.get(key) if isinstance(key, str) else None
        if hint is None and isinstance(key, str):
            close = difflib.get_close_matches(key, list(allowed), n=1)
            if close:
                hint = f"did you mean '{close[0]}'?"
        return reason, f"(expected one of: {', '.join(allowed)})" + (f"; {hint}" if hint else "")

    # -- document

    def load(self, document: Any) -> tuple[Target, ...]:
        if document is None:
            raise self._error(None, "is empty; expected a mapping with a 'targets' list")
        if not isinstance(document, dict):
            raise self._error(None, f"expected a mapping with 'defaults' and 'targets', got {_type_name(document)}")
        for key in document:
            if key not in TOP_LEVEL_KEYS:
                reason, expected = self._unknown_key(key, TOP_LEVEL_KEYS)
                raise self._error(None, f"{reason} at top level {expected}", field=str(key))

        defaults_raw = document.get("defaults")
        if defaults_raw is None:
            defaults_raw = {}
        if not isinstance(defaults_raw, dict):
            raise self._error(None, f"'defaults' must be a mapping, got {_type_name(defaults_raw)}", field="defaults")
        for key in defaults_raw:
            if key not in SHARED_KEYS:
                reason, expected = self._unknown_key(key, SHARED_KEYS)
                if key in TARGET_ONLY_KEYS:
                    expected = f"('{key}' belongs on each target, not in defaults)"
                raise self._error(None, f"{reason} in defaults {expected}", field=str(key))
        try:
            defaults = self._settings(defaults_raw)
        except _FieldError as error:
            raise self._field_error("defaults", error, None) from None

        if "targets" not in document:
            raise self._error(None, "missing key 'targets' (a list of targets)", field="targets")
        targets_raw = document["targets"]
        if not isinstance(targets_raw, list):
            raise self._error(None, f"'targets' must be a list, got {_type_name(targets_raw)}", field="targets")
        if not targets_raw:
            raise self._error(None, "'targets' is empty; list at least one target", field="targets")

        targets: list[Target] = []
        by_name: dict[str, Target] = {}
        by_endpoint: dict[tuple[str, int, str], Target] = {}
        for index, raw in enumerate(targets_raw):
            target, named = self._target(index, raw, defaults)
            label = _target_label(target.name, index)
            endpoint = (_normal_host(target.host), target.port, target.server_name.lower())
            if endpoint in by_endpoint:
                other = by_endpoint[endpoint]
                raise self._error(
                    label,
                    f"field 'address': duplicate of {_target_label(other.name, other.index)} "
                    f"(same address {target.address} and server_name {_show(target.server_name)})",
                    target=target.name,
                    field="address",
                )
            if target.name in by_name:
                other = by_name[target.name]
                reason = f"duplicate name, also used by target #{other.index + 1}"
                if not named:
                    reason += "; the name defaults to the address, so set a distinct name"
                raise self._error(label, f"field 'name': {reason}", target=target.name, field="name")
            by_name[target.name] = target
            by_endpoint[endpoint] = target
            targets.append(target)
        return tuple(targets)

    def _target(self, index: int, raw: Any, defaults: dict[str, Any]) -> tuple[Target, bool]:
        """The target at ``index``, and whether its name was set explicitly."""
        anonymous = f"target #{index + 1}"
        if not isinstance(raw, dict):
            raise self._error(anonymous, f"expected a mapping with at least 'address', got {_type_name(raw)}")

        # Name the target as early as possible, so every later message can say which.
        name = raw.get("name", _UNSET)
        if name is not _UNSET:
            if not isinstance(name, str) or not name.strip():
                raise self._error(
                    anonymous,
                    f"field 'name': must be a non-empty string, got {_describe(name)}",
                    field="name",
                )
            if "\n" in name or "\r" in name:
                raise self._error(anonymous, "field 'name': must be a single line", field="name")
        address = raw.get("address", _UNSET)
        named = name is not _UNSET
        if not named:
            name = address if isinstance(address, str) and address and "\n" not in address else None
        label = _target_label(name, index)

        for key in raw:
            if key not in TARGET_KEYS:
                reason, expected = self._unknown_key(key, TARGET_KEYS)
                raise self._error(label, f"{reason} {expected}", target=name, field=str(key))

        try:
            if address is _UNSET:
                raise _FieldError("address", "missing (required: 'host:port')")
            try:
                host, port = parse_address(address)
            except ValueError as error:
                reason = str(error)
                if isinstance(address, int) and not isinstance(address, bool):
                    reason += "; quote it in YAML: address: 'host:port'"
                if isinstance(address, list):
                    reason += "; quote IPv6 addresses in YAML: address: '[::1]:8443'"
                raise _FieldError("address", reason) from None

            server_name = raw.get("server_name", _UNSET)
            if server_name is _UNSET:
                server_name = host
            else:
                try:
                    server_name = _check_server_name(server_name)
                except ValueError as error:
                    raise _FieldError("server_name", str(error)) from None

            own = self._settings({key: raw[key] for key in SHARED_KEYS if key in raw})
        except _FieldError as error:
            raise self._field_error(label, error, name) from None

        settings = {**defaults, **own}
        if settings.get("trust") is None:
            raise self._error(
                label,
                "field 'trust': missing; set trust (the CA bundle that should anchor the "
                "server's certificate) on the target or in defaults",
                target=name,
                field="trust",
            )
        trust: _Trust = settings["trust"]
        target = Target(
            name=name,
            host=host,
            port=port,
            server_name=server_name,
            index=index,
            trust_anchors=trust.anchors,
            trust_path=trust.path,
            identity=settings.get("identity"),
            tags=settings.get("tags", ()),
            expiry_warning_days=settings.get("expiry_warning_days", 30),
            min_tls_version=settings.get("min_tls_version", TLSVersion.TLS1_3),
            client_auth=settings.get("client_auth", ClientAuthExpectation.REQUIRED),
            app_protocol=settings.get("probe", AppProtocol.HTTP),
            http_path=settings.get("http_path", "/"),
            disabled_checks=settings.get("disabled_checks", frozenset()),
        )
        return target, named

    # -- the shared keys

    def _settings(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and load the keys valid both in defaults and on a target."""
        parsers: dict[str, Callable[[Any], Any]] = {
            "trust": self._trust,
            "identity": self._identity,
            "expiry_warning_days": _expiry_warning_days,
            "min_tls_version": _min_tls_version,
            "client_auth": lambda value: _choice(value, "client_auth", ClientAuthExpectation),
            "probe": lambda value: _choice(value, "probe", AppProtocol),
            "http_path": _http_path,
            "disabled_checks": self._disabled_checks,
            "tags": _tags,
        }
        return {key: parsers[key](raw[key]) for key in SHARED_KEYS if key in raw}

    def _resolve(self, value: Any, field: str) -> tuple[str, Path]:
        if not isinstance(value, str) or not value.strip():
            raise _FieldError(field, f"must be a file path, got {_describe(value)}")
        if "-----BEGIN" in value or "\n" in value:
            # Never echo it: it may be a pasted private key.
            raise _FieldError(field, "must be a file path, not inline PEM text")
        return value, self.base_dir / Path(value).expanduser()

    def _certificates_at(self, value: Any, field: str) -> tuple[Path, tuple[x509.Certificate, ...]]:
        display, path = self._resolve(value, field)
        resolved = path.resolve()
        if resolved not in self._certificates:
            try:
                self._certificates[resolved] = load_certificates(path, display=display)
            except CredentialError as error:
                raise _FieldError(field, str(error)) from None
        return path, self._certificates[resolved]

    def _trust(self, value: Any) -> _Trust:
        path, anchors = self._certificates_at(value, "trust")
        return _Trust(path=path, anchors=anchors)

    def _identity(self, value: Any) -> ClientIdentity | None:
        if value is None:
            return None  # an explicit "no identity": the scanner presents only impostors
        if not isinstance(value, dict):
            raise _FieldError("identity", f"must be a mapping with cert and key, got {_type_name(value)}")
        for key in value:
            if key not in IDENTITY_KEYS:
                reason, expected = self._unknown_key(key, IDENTITY_KEYS)
                raise _FieldError("identity", f"{reason} {expected}")
        for needed, other in (("cert", "key"), ("key", "cert")):
            if needed not in value:
                raise _FieldError(
                    f"identity.{needed}",
                    "missing: an identity needs both cert and key"
                    + (f" (only {other} is set)" if other in value else ""),
                )

        password = None
        password_env = value.get("password_env")
        if password_env is not None:
            try:
                password = _password_from_env(password_env, self.environ)
            except ValueError as error:
                raise _FieldError("identity.password_env", str(error)) from None

        cert_path, certificates = self._certificates_at(value["cert"], "identity.cert")
        key_display, key_path = self._resolve(value["key"], "identity.key")
        cache_key = (cert_path.resolve(), key_path.resolve(), password)
        if cache_key in self._identities:
            return self._identities[cache_key]

        key_cache = (key_path.resolve(), password)
        try:
            if key_cache not in self._keys:
                self._keys[key_cache] = load_private_key(key_path, password, display=key_display)
            credential = make_client_credential(
                certificates,
                self._keys[key_cache],
                cert_display=value["cert"],
                key_display=key_display,
            )
        except CredentialError as error:
            raise _FieldError("identity.key", _password_hint(str(error), "password_env")) from None
        identity = ClientIdentity(credential=credential, cert_path=cert_path, key_path=key_path)
        self._identities[cache_key] = identity
        return identity

    def _disabled_checks(self, value: Any) -> frozenset[str]:
        checks = _string_list(value, "disabled_checks", "check ids")
        if self.known_checks is not None:
            for check in checks:
                if check not in self.known_checks:
                    close = difflib.get_close_matches(check, sorted(self.known_checks), n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    raise _FieldError(
                        "disabled_checks",
                        f"unknown check id {_show(check)} "
                        f"(expected one of: {', '.join(sorted(self.known_checks))}){hint}",
                    )
        return frozenset(checks)


# --------------------------------------------------------------------------- field parsers


def _expiry_warning_days(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FieldError("expiry_warning_days", f"must be a whole number of days, got {_describe(value)}")
    if value < 0:
        raise _FieldError("expiry_warning_days", f"must be 0 or more, got {value}")
    return value


def _min_tls_version(value: Any) -> TLSVersion:
    # YAML reads an unquoted 1.2 as a float; accept it.
    if isinstance(value, float) and not isinstance(value, bool):
        value = f"{value:.1f}"
    if not isinstance(value, str):
        raise _FieldError("min_tls_version", f"must be one of 1.0, 1.1, 1.2, 1.3, got {_describe(value)}")
    try:
        return TLSVersion.parse(value)
    except ValueError:
        raise _FieldError(
            "min_tls_version", f"unknown TLS version {_show(value)} (expected one of 1.0, 1.1, 1.2, 1.3)"
        ) from None


def _choice(value: Any, field: str, enum_type):
    allowed = [member.value for member in enum_type]
    if isinstance(value, str):
        for member in enum_type:
            if member.value == value.strip().lower():
                return member
    raise _FieldError(field, f"must be one of {', '.join(allowed)}, got {_describe(value)}")


def _http_path(value: Any) -> str:
    if not isinstance(value, str):
        raise _FieldError("http_path", f"must be a string starting with '/', got {_describe(value)}")
    if not value.startswith("/"):
        raise _FieldError("http_path", f"must start with '/', got {_show(value)}")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise _FieldError("http_path", "must not contain spaces or control characters")
    return value


def _tags(value: Any) -> tuple[str, ...]:
    return tuple(_string_list(value, "tags", "tags"))


def _string_list(value: Any, field: str, what: str) -> list[str]:
    if not isinstance(value, list):
        raise _FieldError(field, f"must be a list of {what}, got {_describe(value)}")
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise _FieldError(field, f"must be a list of non-empty strings, found {_describe(item)}")
    return list(value)


def _check_server_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty host name, got {_describe(value)}")
    if any(ch.isspace() for ch in value) or "/" in value or (":" in value and not _is_ipv6(value)):
        raise ValueError(f"{_show(value)} is not a host name or IP address")
    return value


def _password_from_env(name: Any, environ: Mapping[str, str]) -> bytes:
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


def _password_hint(message: str, setting: str) -> str:
    """Credential errors talk about password_env; on the command line it's a flag."""
    return message.replace("set password_env", f"set {setting}")


# --------------------------------------------------------------------------- helpers


def _looks_like_unquoted_ipv6(text: str, line: int) -> bool:
    lines = text.splitlines()
    if not 0 <= line < len(lines):
        return False
    return bool(re.search(r"address\s*:\s*\[[0-9A-Fa-f]*:", lines[line]))


def _target_label(name: str | None, index: int) -> str:
    return f"target {_show(name)} (#{index + 1})" if name is not None else f"target #{index + 1}"


def _normal_host(host: str) -> str:
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host.lower().rstrip(".")


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False
