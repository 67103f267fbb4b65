"""The command line that repeats a probe by hand: `openssl s_client` for HTTP, and
for the TLS layer of everything; `grpcurl` for gRPC, `psql` for PostgreSQL."""

from __future__ import annotations

import ipaddress
import json
import shlex

from mtls_audit.scanner.model.finding import ReproCommand
from mtls_audit.scanner.model.observations import Presented, ProbeSpec, TLSVersion
from mtls_audit.scanner.model.target import (
    GRPC_HEALTH_CHECK,
    AppProtocol,
    ClientIdentity,
    PostgresNegotiation,
    Target,
)

_S_CLIENT_VERSION_FLAGS = {
    TLSVersion.TLS1_0: ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
    TLSVersion.TLS1_1: ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
    TLSVersion.TLS1_2: ["-tls1_2"],
    TLSVersion.TLS1_3: ["-tls1_3"],
}

# Impostor and minted keys live only in the scanner's memory, so their commands name
# placeholder files: any certificate with the same defect will do.
_PLACEHOLDER_CERTS = {
    Presented.ROGUE_CA: ("rogue-client.pem", "rogue-client.key"),
    Presented.SELF_SIGNED: ("self-signed-client.pem", "self-signed-client.key"),
    Presented.MINTED: ("issuer-minted-client.pem", "issuer-minted-client.key"),
    Presented.EXPIRED: ("expired-client.pem", "expired-client.key"),
    Presented.NOT_YET_VALID: ("not-yet-valid-client.pem", "not-yet-valid-client.key"),
    Presented.SERVER_AUTH_ONLY: ("server-auth-only-client.pem", "server-auth-only-client.key"),
    Presented.CN_ONLY: ("cn-only-client.pem", "cn-only-client.key"),
    Presented.UNKNOWN_SPIFFE_ID: ("unknown-spiffe-id-client.pem", "unknown-spiffe-id-client.key"),
}


def openssl_command(
    target: Target,
    presented: Presented,
    version: TLSVersion,
    *,
    identity: ClientIdentity | None = None,
    request: str | None = None,
) -> str:
    """The `openssl s_client` line that repeats a probe by hand.

    ``identity`` is the one an access-rule probe presents, ``request`` its
    ``METHOD /path``. Impostor keys live only in the scanner's memory, so their
    commands name placeholder files: any certificate from a CA the server must not
    trust will do (`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256
    -nodes -subj /CN=impostor -keyout self-signed-client.key -out self-signed-client.pem`).
    """
    arguments = ["openssl", "s_client", "-connect", target.address]
    sni = target.sni
    arguments += ["-servername", sni] if sni else ["-noservername"]
    arguments += _S_CLIENT_VERSION_FLAGS[version]
    if presented is Presented.VALID:
        identity = target.identity
    if identity is not None:
        arguments += _identity_arguments(identity)
    elif presented in _PLACEHOLDER_CERTS:
        cert, key = _PLACEHOLDER_CERTS[presented]
        arguments += ["-cert", cert, "-key", key]
    if target.app_protocol is AppProtocol.GRPC:
        arguments += ["-alpn", "h2"]
    elif target.app_protocol is AppProtocol.POSTGRES:
        if target.postgres_negotiation is PostgresNegotiation.DIRECT:
            arguments += ["-alpn", "postgresql"]
        else:
            arguments += ["-starttls", "postgres"]
    command = shlex.join(arguments)
    if target.app_protocol is AppProtocol.HTTP:
        method, path = _method_and_path(target, request)
        extra = "" if method in ("GET", "HEAD") else "Content-Length: 0\\r\\n"
        request_text = (
            f"{method} {path} HTTP/1.1\\r\\nHost: {target.host_header}\\r\\n{extra}Connection: close\\r\\n\\r\\n"
        )
        # The request is printf's format string: a % in the path must stay literal.
        request_text = request_text.replace("%", "%%")
        return f"printf {shlex.quote(request_text)} | {command} -ign_eof"
    # Keep stdin open a moment so a TLS 1.3 rejection after the handshake is printed.
    return f"sleep 1 | {command}"


def curl_command(target: Target, identity: ClientIdentity, request: str | None) -> str:
    """The same request as `curl` makes it: the status code it prints is the verdict
    (000 when TLS refused the client). A password is read from its variable."""
    method, path = _method_and_path(target, request)
    quote = shlex.quote
    url_host = f"[{target.server_name}]" if ":" in target.server_name else target.server_name
    connect_host = f"[{target.host}]" if ":" in target.host else target.host
    words = ["curl", "-sS", "-o", "/dev/null", "-w", quote("%{http_code}\\n")]
    if method != "GET":
        words += ["-X", quote(method), "-d", "''"]  # -d: an empty body with Content-Length: 0
    if target.trust_path is not None:
        words += ["--cacert", quote(str(target.trust_path))]
    # password_env is a validated variable name: safe to expand in double quotes.
    if identity.pkcs12:
        password = f':"${identity.password_env}"' if identity.password_env else ""
        words += ["--cert-type", "P12", "--cert", quote(str(identity.cert_path)) + password]
    else:
        words += ["--cert", quote(str(identity.cert_path)), "--key", quote(str(identity.key_path))]
        if identity.password_env:
            words += ["--pass", f'"${identity.password_env}"']
    words += ["--connect-to", quote(f"{url_host}:{target.port}:{connect_host}:{target.port}")]
    words.append(quote(f"https://{url_host}:{target.port}{path}"))
    return " ".join(words)


def grpcurl_command(
    target: Target, presented: Presented, *, identity: ClientIdentity | None, request: str | None
) -> str:
    """The gRPC call as `grpcurl` makes it: it prints the gRPC status (Code:
    Unauthenticated) or, when TLS refused the client, the handshake error. The health
    check needs grpc/health/v1/health.proto from github.com/grpc/grpc-proto; another
    method, the server's reflection service. `-insecure`: the probe does not verify the
    server either (chain-complete and san-match do, on what it sent)."""
    words = ["grpcurl", "-insecure"]
    words += _client_files(target, presented, identity, cert_flag="-cert", key_flag="-key")
    if target.sni:
        words += ["-servername", target.sni]
    if request is None:
        words += ["-proto", "grpc/health/v1/health.proto", "-d", json.dumps({"service": target.grpc_service})]
        method = GRPC_HEALTH_CHECK
    else:
        words += ["-d", "{}"]
        method = request.partition(" ")[2]
    words += [target.address, method]
    return shlex.join(words)


def psql_command(target: Target, presented: Presented, version: TLSVersion, *, identity: ClientIdentity | None) -> str:
    """The connection as `psql` makes it, pinned to the probe's TLS version. `-w`: never
    ask for a password, as the probe never sends one; "fe_sendauth: no password
    supplied" then means the certificate was accepted."""
    settings: list[tuple[str, str]] = []
    if target.server_name != target.host and _connect_by_address(target):
        settings += [("host", target.server_name), ("hostaddr", target.host)]
    else:
        settings.append(("host", target.host))
    settings += [("port", str(target.port)), ("user", target.postgres_user), ("dbname", target.postgres_database)]
    if target.trust_path is not None:
        settings += [("sslmode", "verify-full"), ("sslrootcert", str(target.trust_path))]
    else:
        settings.append(("sslmode", "require"))
    files = _client_files(target, presented, identity, cert_flag="sslcert", key_flag="sslkey")
    settings += list(zip(files[::2], files[1::2], strict=True))
    settings += [("ssl_min_protocol_version", version.value), ("ssl_max_protocol_version", version.value)]
    if target.postgres_negotiation is PostgresNegotiation.DIRECT:
        settings.append(("sslnegotiation", "direct"))
    conninfo = " ".join(f"{key}={_conninfo_value(value)}" for key, value in settings)
    return shlex.join(["psql", "-w", "-c", "SELECT 1", conninfo])


def _connect_by_address(target: Target) -> bool:
    """The server name is a DNS name but we connect to an IP: libpq checks the name
    given as host and connects to hostaddr."""
    return target.sni is not None and _is_ip(target.host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _conninfo_value(value: str) -> str:
    """libpq quotes a conninfo value in single quotes, escaping ' and \\."""
    if value and not any(ch in value for ch in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _client_files(
    target: Target, presented: Presented, identity: ClientIdentity | None, *, cert_flag: str, key_flag: str
) -> list[str]:
    """[cert_flag, cert, key_flag, key] for what the probe presented; [] for none."""
    if presented is Presented.VALID:
        identity = target.identity
    if identity is not None:
        return [cert_flag, str(identity.cert_path), key_flag, str(identity.key_path)]
    if presented in _PLACEHOLDER_CERTS:
        cert, key = _PLACEHOLDER_CERTS[presented]
        return [cert_flag, cert, key_flag, key]
    return []


def _identity_arguments(identity: ClientIdentity) -> list[str]:
    arguments = ["-cert", str(identity.cert_path), "-key", str(identity.key_path)]
    if identity.credential.chain and not identity.pkcs12:
        arguments += ["-cert_chain", str(identity.cert_path)]
    if identity.password_env:
        arguments += ["-pass", f"env:{identity.password_env}"]
    return arguments


def _method_and_path(target: Target, request: str | None) -> tuple[str, str]:
    if request is None:
        return "GET", target.http_path
    method, _, path = request.partition(" ")
    return method, path


def repro_command(target: Target, spec: ProbeSpec, identity: ClientIdentity | None = None) -> ReproCommand:
    """The command for one probe, labelled with the probe it repeats (attempts share it).

    gRPC on TLS 1.3 is repeated with `grpcurl`, which cannot pin an older version: there
    `openssl s_client -alpn h2` shows the handshake, where TLS 1.2 refuses."""
    if target.app_protocol is AppProtocol.POSTGRES:
        command = psql_command(target, spec.presented, spec.version, identity=identity)
    elif target.app_protocol is AppProtocol.GRPC and spec.version is TLSVersion.TLS1_3:
        command = grpcurl_command(target, spec.presented, identity=identity, request=spec.request)
    else:
        command = openssl_command(target, spec.presented, spec.version, identity=identity, request=spec.request)
    return ReproCommand(spec.first.id, command)
