"""The `openssl s_client` line that repeats a probe by hand."""

from __future__ import annotations

import shlex

from mtls_audit.scanner.model.finding import ReproCommand
from mtls_audit.scanner.model.observations import Presented, ProbeSpec, TLSVersion
from mtls_audit.scanner.model.target import AppProtocol, Target

_S_CLIENT_VERSION_FLAGS = {
    TLSVersion.TLS1_0: ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
    TLSVersion.TLS1_1: ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
    TLSVersion.TLS1_2: ["-tls1_2"],
    TLSVersion.TLS1_3: ["-tls1_3"],
}

_PLACEHOLDER_CERTS = {
    Presented.ROGUE_CA: ("rogue-client.pem", "rogue-client.key"),
    Presented.SELF_SIGNED: ("self-signed-client.pem", "self-signed-client.key"),
}


def openssl_command(target: Target, presented: Presented, version: TLSVersion) -> str:
    """The `openssl s_client` line that repeats a probe by hand.

    Impostor keys live only in the scanner's memory, so their commands name
    placeholder files: any certificate from a CA the server must not trust will do
    (`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
    -subj /CN=impostor -keyout self-signed-client.key -out self-signed-client.pem`).
    """
    arguments = ["openssl", "s_client", "-connect", target.address]
    sni = target.sni
    arguments += ["-servername", sni] if sni else ["-noservername"]
    arguments += _S_CLIENT_VERSION_FLAGS[version]
    if presented is Presented.VALID and target.identity is not None:
        arguments += ["-cert", str(target.identity.cert_path), "-key", str(target.identity.key_path)]
        if target.identity.credential.chain:
            arguments += ["-cert_chain", str(target.identity.cert_path)]
    elif presented in _PLACEHOLDER_CERTS:
        cert, key = _PLACEHOLDER_CERTS[presented]
        arguments += ["-cert", cert, "-key", key]
    command = shlex.join(arguments)
    if target.app_protocol is AppProtocol.HTTP:
        request = f"GET {target.http_path} HTTP/1.1\\r\\nHost: {target.host_header}\\r\\nConnection: close\\r\\n\\r\\n"
        # The request is printf's format string: a % in the path must stay literal.
        request = request.replace("%", "%%")
        return f"printf {shlex.quote(request)} | {command} -ign_eof"
    # Keep stdin open a moment so a TLS 1.3 rejection after the handshake is printed.
    return f"sleep 1 | {command}"


def repro_command(target: Target, spec: ProbeSpec) -> ReproCommand:
    """The command for one probe, labelled with the probe it repeats (attempts share it)."""
    label = ProbeSpec(spec.presented, spec.version).id
    return ReproCommand(label, openssl_command(target, spec.presented, spec.version))
