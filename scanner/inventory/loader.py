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

This module turns the parsed document into Targets; reading the file is
``document``, the settings' parsers are ``fields``, certificate and key files are
loaded (once each) by ``credential_cache``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mtls_audit.scanner.inventory import fields
from mtls_audit.scanner.inventory.addresses import check_server_name, normal_host, parse_address
from mtls_audit.scanner.inventory.credential_cache import CredentialCache, Trust
from mtls_audit.scanner.inventory.document import read_document
from mtls_audit.scanner.inventory.errors import FieldError, InventoryError
from mtls_audit.scanner.inventory.keys import (
    ACCESS_RULE_KEYS,
    SHARED_KEYS,
    TARGET_KEYS,
    TARGET_ONLY_KEYS,
    TOP_LEVEL_KEYS,
    unknown_key,
)
from mtls_audit.scanner.model.observations import TLSVersion
from mtls_audit.scanner.model.target import (
    AccessRule,
    AppProtocol,
    ClientAuthExpectation,
    Expect,
    Issuer,
    PostgresNegotiation,
    Target,
)
from mtls_audit.scanner.model.text import describe, show, type_name

_TARGET_KEYS = frozenset(TARGET_KEYS)
_UNSET = object()


def load_inventory(
    path: Path,
    environ: Mapping[str, str] = os.environ,
    *,
    known_checks: Collection[str] | None = None,
) -> tuple[Target, ...]:
    """Read, validate and load an inventory file; raise InventoryError on any problem."""
    path = Path(path)
    source = str(path)
    document, lines = read_document(path, source)
    loader = _Loader(
        source=source,
        credentials=CredentialCache(path.parent.absolute(), environ),
        known_checks=None if known_checks is None else frozenset(known_checks),
    )
    return loader.load(document, lines)


class _Loader:
    def __init__(
        self,
        *,
        source: str,
        credentials: CredentialCache,
        known_checks: frozenset[str] | None,
    ) -> None:
        self.source = source
        self.known_checks = known_checks
        self.credentials = credentials
        self.issuer: Issuer | None = None
        self._parsers: dict[str, Callable[[Any], Any]] = {
            "trust": credentials.trust,
            "identity": credentials.identity,
            "expiry_warning_days": fields.expiry_warning_days,
            "min_tls_version": fields.min_tls_version,
            "client_auth": lambda value: fields.choice(value, "client_auth", ClientAuthExpectation),
            "probe": lambda value: fields.choice(value, "probe", AppProtocol),
            "http_path": fields.http_path,
            "disabled_checks": self._disabled_checks,
            "tags": self._tags,
            "access": self._access,
            "max_cert_lifetime_days": fields.max_cert_lifetime_days,
            "grpc_service": fields.grpc_service,
            "postgres_user": lambda value: fields.postgres_name(value, "postgres_user"),
            "postgres_database": lambda value: fields.postgres_name(value, "postgres_database"),
            "postgres_negotiation": lambda value: fields.choice(value, "postgres_negotiation", PostgresNegotiation),
        }
        # Equal tag tuples and check sets are one object, however many targets have them.
        self._shared: dict[tuple[str, ...] | frozenset[str], Any] = {}

    # -- errors

    def _error(
        self, where: str | None, reason: str, *, target: str | None = None, field: str | None = None
    ) -> InventoryError:
        prefix = f"{self.source}: " + (f"{where}: " if where else "")
        return InventoryError(prefix + reason, source=self.source, target=target, field=field)

    def _field_error(self, where: str, error: FieldError, target: str | None) -> InventoryError:
        return self._error(where, f"field '{error.field}': {error.reason}", target=target, field=error.field)

    # -- document

    def load(self, document: Any, lines: list[int] | None = None) -> tuple[Target, ...]:
        """The Targets of a parsed document. Takes the document over: each entry of its
        target list is dropped once it is a Target, so a large inventory holds its
        entries or its Targets, not both."""
        if document is None:
            raise self._error(None, "is empty; expected a mapping with a 'targets' list")
        if not isinstance(document, dict):
            raise self._error(None, f"expected a mapping with 'defaults' and 'targets', got {type_name(document)}")
        for key in document:
            if key not in TOP_LEVEL_KEYS:
                reason, expected = unknown_key(key, TOP_LEVEL_KEYS)
                raise self._error(None, f"{reason} at top level {expected}", field=str(key))

        # Identities and the issuer first: defaults and targets refer to them.
        try:
            if "identities" in document:
                self.credentials.load_named(document["identities"])
            if "issuer" in document:
                self.issuer = self.credentials.issuer(document["issuer"])
        except FieldError as error:
            raise self._error(None, f"field '{error.field}': {error.reason}", field=error.field) from None

        defaults_raw = document.get("defaults")
        if defaults_raw is None:
            defaults_raw = {}
        if not isinstance(defaults_raw, dict):
            raise self._error(None, f"'defaults' must be a mapping, got {type_name(defaults_raw)}", field="defaults")
        for key in defaults_raw:
            if key not in SHARED_KEYS:
                reason, expected = unknown_key(key, SHARED_KEYS)
                if key in TARGET_ONLY_KEYS:
                    expected = f"('{key}' belongs on each target, not in defaults)"
                raise self._error(None, f"{reason} in defaults {expected}", field=str(key))
        try:
            defaults = self._settings(defaults_raw)
        except FieldError as error:
            raise self._field_error("defaults", error, None) from None

        if "targets" not in document:
            raise self._error(None, "missing key 'targets' (a list of targets)", field="targets")
        targets_raw = document["targets"]
        if not isinstance(targets_raw, list):
            raise self._error(None, f"'targets' must be a list, got {type_name(targets_raw)}", field="targets")
        if not targets_raw:
            raise self._error(None, "'targets' is empty; list at least one target", field="targets")

        base = {
            "trust": None,
            "identity": None,
            "tags": (),
            "expiry_warning_days": 30,
            "min_tls_version": TLSVersion.TLS1_3,
            "client_auth": ClientAuthExpectation.REQUIRED,
            "probe": AppProtocol.HTTP,
            "http_path": "/",
            "disabled_checks": frozenset(),
            "access": (),
            "max_cert_lifetime_days": 398,
            "grpc_service": "",
            "postgres_user": "postgres",
            "postgres_database": "postgres",
            "postgres_negotiation": PostgresNegotiation.POSTGRES,
            **defaults,
        }
        # The YAML loader reports the line of each top-level list's entry; targets is
        # an inventory's only top-level list. (JSON and anchored lists give none.)
        target_lines = lines if lines and len(lines) == len(targets_raw) else None
        targets: list[Target] = []
        by_name: dict[str, Target] = {}
        by_endpoint: dict[tuple[str, int, str], Target] = {}
        for index, raw in enumerate(targets_raw):
            target, named = self._target(index, raw, base)
            if target_lines:
                target = replace(target, line=target_lines[index])
            targets_raw[index] = None
            endpoint = (normal_host(target.host), target.port, target.server_name.lower())
            if endpoint in by_endpoint:
                other = by_endpoint[endpoint]
                raise self._error(
                    _target_label(target.name, index),
                    f"field 'address': duplicate of {_target_label(other.name, other.index)} "
                    f"(same address {target.address} and server_name {show(target.server_name)})",
                    target=target.name,
                    field="address",
                )
            if target.name in by_name:
                other = by_name[target.name]
                reason = f"duplicate name, also used by target #{other.index + 1}"
                if not named:
                    reason += "; the name defaults to the address, so set a distinct name"
                raise self._error(
                    _target_label(target.name, index), f"field 'name': {reason}", target=target.name, field="name"
                )
            by_name[target.name] = target
            by_endpoint[endpoint] = target
            targets.append(target)
        return tuple(targets)

    def _target(self, index: int, raw: Any, base: dict[str, Any]) -> tuple[Target, bool]:
        """The target at ``index``, and whether its name was set explicitly."""
        if not isinstance(raw, dict):
            raise self._error(
                f"target #{index + 1}", f"expected a mapping with at least 'address', got {type_name(raw)}"
            )

        # Name the target as early as possible, so every later message can say which.
        name = raw.get("name", _UNSET)
        if name is not _UNSET:
            if not isinstance(name, str) or not name.strip():
                raise self._error(
                    f"target #{index + 1}",
                    f"field 'name': must be a non-empty string, got {describe(name)}",
                    field="name",
                )
            if "\n" in name or "\r" in name:
                raise self._error(f"target #{index + 1}", "field 'name': must be a single line", field="name")
        address = raw.get("address", _UNSET)
        named = name is not _UNSET
        if not named:
            name = address if isinstance(address, str) and address and "\n" not in address else None

        for key in raw:
            if key not in _TARGET_KEYS:
                reason, expected = unknown_key(key, TARGET_KEYS)
                raise self._error(_target_label(name, index), f"{reason} {expected}", target=name, field=str(key))

        try:
            if address is _UNSET:
                raise FieldError("address", "missing (required: 'host:port')")
            try:
                host, port = parse_address(address)
            except ValueError as error:
                reason = str(error)
                if isinstance(address, int) and not isinstance(address, bool):
                    reason += "; quote it in YAML: address: 'host:port'"
                if isinstance(address, list):
                    reason += "; quote IPv6 addresses in YAML: address: '[::1]:8443'"
                raise FieldError("address", reason) from None

            server_identity = None
            if "server_identity" in raw:
                server_identity = fields.server_identity(raw["server_identity"])
            server_name = raw.get("server_name", _UNSET)
            match_server_name = server_name is not _UNSET or server_identity is None
            if server_name is _UNSET:
                server_name = host
            else:
                try:
                    server_name = check_server_name(server_name)
                except ValueError as error:
                    raise FieldError("server_name", str(error)) from None

            own = self._settings(raw)
        except FieldError as error:
            raise self._field_error(_target_label(name, index), error, name) from None

        settings = {**base, **own} if own else base
        trust: Trust | None = settings["trust"]
        if trust is None:
            raise self._error(
                _target_label(name, index),
                "field 'trust': missing; set trust (the CA bundle that should anchor the "
                "server's certificate) on the target or in defaults",
                target=name,
                field="trust",
            )
        mismatch = _request_mismatch(settings["probe"], settings["access"])
        if mismatch is not None:
            raise self._error(_target_label(name, index), f"field 'access': {mismatch}", target=name, field="access")
        target = Target(
            name=name,
            host=host,
            port=port,
            server_name=server_name,
            index=index,
            trust_anchors=trust.anchors,
            trust_path=trust.path,
            identity=settings["identity"],
            tags=settings["tags"],
            expiry_warning_days=settings["expiry_warning_days"],
            min_tls_version=settings["min_tls_version"],
            client_auth=settings["client_auth"],
            app_protocol=settings["probe"],
            http_path=settings["http_path"],
            disabled_checks=settings["disabled_checks"],
            access=settings["access"],
            issuer=self.issuer,
            server_identity=server_identity,
            match_server_name=match_server_name,
            max_cert_lifetime_days=settings["max_cert_lifetime_days"],
            grpc_service=settings["grpc_service"],
            postgres_user=settings["postgres_user"],
            postgres_database=settings["postgres_database"],
            postgres_negotiation=settings["postgres_negotiation"],
        )
        return target, named

    # -- the shared keys

    def _settings(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and load the keys valid both in defaults and on a target (the
        others in ``raw`` are left alone), in SHARED_KEYS order."""
        return {key: self._parsers[key](raw[key]) for key in SHARED_KEYS if key in raw}

    def _access(self, value: Any) -> tuple[AccessRule, ...]:
        if not isinstance(value, list):
            raise FieldError("access", f"must be a list of {{identity, request, expect}} rules, got {describe(value)}")
        rules: list[AccessRule] = []
        seen: dict[tuple[str | None, str | None], int] = {}
        for number, raw in enumerate(value, start=1):
            where = f"access[{number}]"
            if not isinstance(raw, dict):
                raise FieldError(where, f"must be a mapping with identity and expect, got {describe(raw)}")
            for key in raw:
                if key not in ACCESS_RULE_KEYS:
                    reason, expected = unknown_key(key, ACCESS_RULE_KEYS)
                    raise FieldError(where, f"{reason} {expected}")
            for needed in ("identity", "expect"):
                if needed not in raw:
                    raise FieldError(f"{where}.{needed}", "missing (a rule needs identity and expect)")
            identity = self.credentials.named_identity(raw["identity"], f"{where}.identity")
            expect = fields.choice(raw["expect"], f"{where}.expect", Expect)
            method, path = ("GET", None)
            if "request" in raw:
                method, path = fields.request(raw["request"], f"{where}.request")
            rule = AccessRule(identity, expect, method, path)
            key = (identity.name, rule.request)
            if key in seen:
                raise FieldError(f"{where}", f"repeats rule #{seen[key]} (same identity and request)")
            seen[key] = number
            rules.append(rule)
        return tuple(rules)

    def _tags(self, value: Any) -> tuple[str, ...]:
        tags = fields.tags(value)
        return self._shared.setdefault(tags, tags)

    def _disabled_checks(self, value: Any) -> frozenset[str]:
        checks = fields.string_list(value, "disabled_checks", "check ids")
        if self.known_checks is not None:
            for check in checks:
                if check not in self.known_checks:
                    close = difflib.get_close_matches(check, sorted(self.known_checks), n=1)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    raise FieldError(
                        "disabled_checks",
                        f"unknown check id {show(check)} "
                        f"(expected one of: {', '.join(sorted(self.known_checks))}){hint}",
                    )
        disabled = frozenset(checks)
        return self._shared.setdefault(disabled, disabled)


def _request_mismatch(probe: AppProtocol, rules: tuple[AccessRule, ...]) -> str | None:
    """Why a rule's request cannot be made with this probe, if it cannot."""
    for number, rule in enumerate(rules, start=1):
        if rule.request is None:
            continue
        grpc = rule.method == fields.GRPC_REQUEST
        if probe is AppProtocol.GRPC and not grpc:
            return f'rule #{number} asks {show(rule.request)}, but probe: grpc makes gRPC calls ("grpc package.Service/Method")'
        if probe is AppProtocol.HTTP and grpc:
            return f"rule #{number} asks {show(rule.request)}, a gRPC call: set probe: grpc"
        if probe in (AppProtocol.POSTGRES, AppProtocol.NONE):
            return f"rule #{number} asks {show(rule.request)}, but probe: {probe.value} makes no requests; drop request"
    return None


def _target_label(name: str | None, index: int) -> str:
    return f"target {show(name)} (#{index + 1})" if name is not None else f"target #{index + 1}"
