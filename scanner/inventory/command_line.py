"""One target from the command line: ``mtls-audit scan HOST:PORT --ca ... --cert ... --key ...``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from mtls_audit.scanner.credentials.files import (
    CredentialError,
    load_certificates,
    load_pkcs12_credential,
    load_private_key,
    make_client_credential,
)
from mtls_audit.scanner.inventory.addresses import check_server_name, parse_address
from mtls_audit.scanner.inventory.errors import InventoryError
from mtls_audit.scanner.inventory.fields import password_from_env, password_hint
from mtls_audit.scanner.model.target import AppProtocol, ClientIdentity, Target


def target_from_command_line(
    address: str,
    *,
    ca: Path,
    cert: Path | None,
    key: Path | None,
    server_name: str | None,
    pkcs12: Path | None = None,
    password_env: str | None = None,
    app_protocol: AppProtocol = AppProtocol.HTTP,
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
            server_name = check_server_name(server_name)
        except ValueError as error:
            raise fail("--server-name", str(error)) from None
    try:
        trust_anchors = load_certificates(Path(ca))
    except CredentialError as error:
        raise fail("--ca", str(error)) from None

    identity = None
    if pkcs12 is not None and (cert is not None or key is not None):
        raise fail("--pkcs12", "give either --pkcs12 or --cert and --key, not both")
    if (cert is None) != (key is None):
        given, missing = ("--cert", "--key") if key is None else ("--key", "--cert")
        raise fail(missing, f"missing: {given} needs {missing} too")
    if password_env is not None and cert is None and pkcs12 is None:
        raise fail("--key-password-env", "only makes sense with --cert and --key, or --pkcs12")
    if pkcs12 is not None:
        password = _password(password_env, environ, fail)
        try:
            credential = load_pkcs12_credential(Path(pkcs12), password)
        except CredentialError as error:
            raise fail("--pkcs12", password_hint(str(error), "--key-password-env")) from None
        path = Path(pkcs12).absolute()
        identity = ClientIdentity(credential, path, path, pkcs12=True, password_env=password_env)
    if cert is not None and key is not None:
        password = _password(password_env, environ, fail)
        try:
            certificates = load_certificates(Path(cert))
        except CredentialError as error:
            raise fail("--cert", str(error)) from None
        try:
            private_key = load_private_key(Path(key), password)
            credential = make_client_credential(certificates, private_key, cert_display=str(cert), key_display=str(key))
        except CredentialError as error:
            raise fail("--key", password_hint(str(error), "--key-password-env")) from None
        identity = ClientIdentity(
            credential=credential,
            cert_path=Path(cert).absolute(),
            key_path=Path(key).absolute(),
            password_env=password_env,
        )

    return Target(
        name=address,
        host=host,
        port=port,
        server_name=server_name if server_name is not None else host,
        index=0,
        trust_anchors=trust_anchors,
        trust_path=Path(ca).absolute(),
        identity=identity,
        app_protocol=app_protocol,
    )


def _password(
    password_env: str | None, environ: Mapping[str, str], fail: Callable[[str, str], InventoryError]
) -> bytes | None:
    if password_env is None:
        return None
    try:
        return password_from_env(password_env, environ)
    except ValueError as error:
        raise fail("--key-password-env", str(error)) from None
