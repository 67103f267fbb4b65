"""The servers for "Beyond HTTP/1.1" (Apache with TLS 1.3 post-handshake auth or TLS
1.2 renegotiation, gRPC over HTTP/2, PostgreSQL) behave as their fixtures say, shown
with clients that are not the scanner: ``openssl s_client``, a grpcio client, psql.

One test per server module, over its variants; each compares what every client got
with what was observed by hand (see the fixture modules' docstrings).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from apache_servers import running_apache
from grpc_servers import HEALTH_CHECK, TRANSFER, call, health_check_request, running_grpc
from identity_servers import IdentityPKI
from postgres_servers import running_postgres
from protocol_servers import ProtocolServer, write_protocol_pki
from real_servers import SERVER_NAME, require_binary

# Client identities in the protocol PKI: no certificate, a CN=payment from a CA the
# servers do not trust, a valid identity that is not payment, and payment itself.
CLIENTS = ("none", "untrusted-payment", "web", "payment")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> IdentityPKI:
    return write_protocol_pki(tmp_path_factory.mktemp("protocol-pki"))


def _identity(pki: IdentityPKI, client: str) -> list[str]:
    return [] if client == "none" else ["-cert", str(pki.pem(client)), "-key", str(pki.key(client))]


def s_client(server: ProtocolServer, *flags: str, client: str = "none", send: bytes = b"", hold: float = 1.5) -> str:
    """``openssl s_client -msg`` against ``server`` as ``client``, sending ``send``;
    stdin stays open ``hold`` seconds (so what the server does after the handshake
    shows), then closes. Returns stdout and stderr together."""
    openssl = require_binary("openssl")
    argv = [
        openssl, "s_client", "-connect", server.address, "-servername", SERVER_NAME,
        "-CAfile", str(server.server_ca), "-verify_return_error", "-msg",
        *_identity(server.pki, client), *flags,
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdin is not None
    process.stdin.write(send)
    process.stdin.flush()
    try:
        process.wait(timeout=hold)
    except subprocess.TimeoutExpired:
        pass
    try:
        output, _ = process.communicate(timeout=15)  # closes stdin
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output.decode("latin-1")


def http_outcome(output: str) -> str:
    """``"HTTP 200"``, ``"alert 116"``... from an s_client transcript."""
    alert = re.search(r"SSL alert number (\d+)", output)
    if alert:
        return f"alert {alert.group(1)}"
    status = re.search(r"^HTTP/1\.1 (\d{3})", output, re.MULTILINE)
    return f"HTTP {status.group(1)}" if status else "no answer"


def received(output: str, message: str) -> bool:
    """Whether the server sent a handshake message (or alert) named ``message``."""
    return re.search(rf"^<<< TLS 1\.[23], \w+ \[length [0-9a-f]+\], {message}\b", output, re.MULTILINE) is not None


def server_alerted(output: str) -> bool:
    return re.search(r"^<<< TLS 1\.[23], Alert\b", output, re.MULTILINE) is not None


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n".encode()


# -- Apache ----------------------------------------------------------------------------

APACHE_EXPECTED = {
    "TLSv1.3": {
        # No PHA offered: Apache cannot ask, so /secure is 403 whoever the client is.
        ("/secure", "no-pha", "none"): "HTTP 403",
        ("/secure", "no-pha", "untrusted-payment"): "HTTP 403",
        ("/secure", "no-pha", "payment"): "HTTP 403",
        # PHA offered: CertificateRequest after the request, then the verdict.
        ("/secure", "pha", "none"): "alert 116",
        ("/secure", "pha", "untrusted-payment"): "alert 48",
        ("/secure", "pha", "web"): "HTTP 200",
        ("/secure", "pha", "payment"): "HTTP 200",
        ("/", "pha", "none"): "HTTP 200",
        ("/", "no-pha", "untrusted-payment"): "HTTP 200",
    },
    "TLSv1.2": {
        # GET /secure: HelloRequest, then a renegotiation handshake with a CertificateRequest.
        ("/secure", "-", "none"): "alert 40",
        ("/secure", "-", "untrusted-payment"): "alert 48",
        ("/secure", "-", "web"): "HTTP 200",
        ("/secure", "-", "payment"): "HTTP 200",
        ("/", "-", "none"): "HTTP 200",
        ("/", "-", "untrusted-payment"): "HTTP 200",
    },
}


@pytest.mark.parametrize("protocol", ["TLSv1.3", "TLSv1.2"])
def test_apache_asks_for_a_certificate_only_under_secure(pki: IdentityPKI, tmp_path: Path, protocol: str) -> None:
    observed: dict[tuple[str, str, str], str] = {}
    with running_apache(pki, tmp_path / "apache", protocol=protocol) as server:
        for path, pha, client in APACHE_EXPECTED[protocol]:
            flags = ["-tls1_3"] if protocol == "TLSv1.3" else ["-tls1_2"]
            if pha == "pha":
                flags.append("-enable_pha")
            output = s_client(server, *flags, client=client, send=_get(path))
            observed[(path, pha, client)] = http_outcome(output)
            # Never a CertificateRequest for "/"; for /secure only after the request.
            if path == "/":
                assert not received(output, "CertificateRequest"), output
            elif protocol == "TLSv1.2":
                assert received(output, "HelloRequest") and received(output, "CertificateRequest"), output
            else:
                assert received(output, "CertificateRequest") == (pha == "pha"), output
                if pha == "pha":
                    client_finished = re.search(
                        r"^>>> TLS 1\.3, Handshake \[length [0-9a-f]+\], Finished", output, re.M
                    )
                    assert client_finished is not None, output
                    assert output.index("CertificateRequest") > client_finished.start(), "not post-handshake"
    assert observed == APACHE_EXPECTED[protocol]


# -- gRPC ------------------------------------------------------------------------------


def test_grpc_server_who_gets_in(pki: IdentityPKI, tmp_path: Path) -> None:
    observed: dict[tuple[bool, str, str], str] = {}
    transcripts: dict[tuple[bool, str, str], str] = {}
    for require in (True, False):
        with running_grpc(pki, tmp_path / f"grpc-{require}", require_client_auth=require) as server:
            for client in CLIENTS:
                identity = {} if client == "none" else {"cert": pki.pem(client), "key": pki.key(client)}
                health = call(server, HEALTH_CHECK, **identity)
                if health.code == "OK":
                    assert health.response == b"\x08\x01", health  # SERVING
                observed[(require, client, "health")] = health.code
                observed[(require, client, "health:nope")] = call(
                    server, HEALTH_CHECK, health_check_request("nope"), **identity
                ).code
                observed[(require, client, "transfer")] = call(server, TRANSFER, **identity).code
                for alpn in ("h2", "none"):
                    flags = ["-alpn", "h2"] if alpn == "h2" else []
                    output = s_client(server, *flags, client=client, hold=1.0)
                    transcripts[(require, client, alpn)] = output
                    certificate_request = received(output, "CertificateRequest")
                    server_alert = server_alerted(output)
                    closed = "unexpected eof while reading" in output
                    observed[(require, client, f"s_client alpn={alpn}")] = (
                        f"CertificateRequest={certificate_request} server_alert={server_alert} closed={closed}"
                    )
    unavailable = {"health": "UNAVAILABLE", "health:nope": "UNAVAILABLE", "transfer": "UNAVAILABLE"}
    expected: dict[tuple[bool, str, str], str] = {}
    for client in CLIENTS:
        # require_client_auth=True: a CertificateRequest; a missing or untrusted
        # certificate completes the client's side of TLS 1.3, then the server closes
        # without an alert. Without ALPN h2 it closes on every client, valid or not.
        rejected = client in ("none", "untrusted-payment")
        calls = unavailable if rejected else {
            "health": "OK", "health:nope": "NOT_FOUND",
            "transfer": "OK" if client == "payment" else "PERMISSION_DENIED",
        }  # fmt: skip
        for what, code in calls.items():
            expected[(True, client, what)] = code
        expected[(True, client, "s_client alpn=h2")] = f"CertificateRequest=True server_alert=False closed={rejected}"
        expected[(True, client, "s_client alpn=none")] = "CertificateRequest=True server_alert=False closed=True"
        # require_client_auth=False: no CertificateRequest, so no certificate is ever
        # sent and Transfer is denied to everyone.
        for what, code in {"health": "OK", "health:nope": "NOT_FOUND", "transfer": "PERMISSION_DENIED"}.items():
            expected[(False, client, what)] = code
        expected[(False, client, "s_client alpn=h2")] = "CertificateRequest=False server_alert=False closed=False"
        expected[(False, client, "s_client alpn=none")] = "CertificateRequest=False server_alert=False closed=True"
    wrong = {key: (observed.get(key), want) for key, want in expected.items() if observed.get(key) != want}
    shown = {key: transcripts[key] for key in transcripts if any(key[:2] == w[:2] for w in wrong)}
    assert not wrong and observed.keys() == expected.keys(), (wrong, shown)


# -- PostgreSQL ------------------------------------------------------------------------

POSTGRES_EXPECTED = {
    "cert": {
        "none": "FATAL:  connection requires a valid client certificate",
        "untrusted-payment": "SSL error: tlsv1 alert unknown ca",
        "web": 'FATAL:  certificate authentication failed for user "payment"',
        "payment": "in as payment, TLSv1.3, client_dn=/CN=payment",
    },
    "scram-verify-full": {
        "none": "FATAL:  connection requires a valid client certificate",
        "untrusted-payment": "SSL error: tlsv1 alert unknown ca",
        # The password is right; the CN is not the user name (logged as "CN mismatch").
        "web": 'FATAL:  password authentication failed for user "payment"',
        "payment": "in as payment, TLSv1.3, client_dn=/CN=payment",
    },
    "trust-no-ca": {
        # No ssl_ca_file: no CertificateRequest, so no client certificate is ever sent.
        "none": "in as payment, TLSv1.3, client_dn=",
        "untrusted-payment": "in as payment, TLSv1.3, client_dn=",
        "web": "in as payment, TLSv1.3, client_dn=",
        "payment": "in as payment, TLSv1.3, client_dn=",
    },
}


@pytest.mark.parametrize("hba", list(POSTGRES_EXPECTED))
def test_postgres_hba_variants(pki: IdentityPKI, tmp_path: Path, hba: str) -> None:
    observed: dict[str, str] = {}
    with running_postgres(pki, tmp_path / "postgres", hba=hba) as server:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PGPASSWORD": server.password,
            "PGPASSFILE": "/nonexistent",
            "LC_ALL": "C",
        }
        query = "select current_user, version, coalesce(client_dn, '') from pg_stat_ssl where pid = pg_backend_pid()"
        for client in CLIENTS:
            identity = {} if client == "none" else {"cert": pki.pem(client), "key": pki.key(client)}
            completed = subprocess.run(
                [str(server.bindir / "psql"), "-X", "-A", "-t", "-F", "|", server.conninfo(**identity), "-c", query],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            if completed.returncode == 0:
                user, version, client_dn = completed.stdout.strip().split("|")
                observed[client] = f"in as {user}, {version}, client_dn={client_dn}"
            else:
                observed[client] = completed.stderr.strip().split(" failed: ", 1)[-1]
        without_tls = subprocess.run(
            [str(server.bindir / "psql"), "-X", server.conninfo(sslmode="disable"), "-c", "select 1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "no pg_hba.conf entry" in without_tls.stderr and "no encryption" in without_tls.stderr

        # TLS after the SSLRequest: a CertificateRequest only with a client CA, never
        # a session ticket; an untrusted certificate gets alert 48 after the handshake.
        output = s_client(server, "-starttls", "postgres", client="untrusted-payment", hold=1.0)
        assert received(output, "CertificateRequest") == (hba != "trust-no-ca"), output
        assert "NewSessionTicket" not in output, output
        assert ("SSL alert number 48" in output) == (hba != "trust-no-ca"), output
    assert observed == POSTGRES_EXPECTED[hba]
