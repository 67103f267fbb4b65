"""The `openssl s_client` line that repeats a probe by hand."""

from __future__ import annotations

import shlex

from mtls_audit.scanner.model.finding import ReproCommand
from mtls_audit.scanner.model.observations import Presented, ProbeSpec, TLSVersion
from mtls_audit.scanner.model.target import AppProtocol, ClientIdentity, Target

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
    """The command for one probe, labelled with the probe it repeats (attempts share it)."""
    command = openssl_command(target, spec.presented, spec.version, identity=identity, request=spec.request)
    return ReproCommand(spec.first.id, command)
