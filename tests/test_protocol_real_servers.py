"""Beyond HTTP/1.1, proved against real servers: Apache asking for the certificate
only after the handshake (TLS 1.3 post-handshake auth, TLS 1.2 renegotiation),
grpcio with and without ``require_client_auth``, and PostgreSQL refusing in its own
protocol (``hostssl ... cert``, ``clientcert=verify-full``, and ``trust`` without a
client CA). Every scan runs the `mtls-audit` command; the verdicts each server must
get are written out in `CASES`, and `test_explain_shows_where_each_server_said_no`
reads the step-by-step story of each.

`test_protocol_servers_smoke.py` shows, with openssl s_client, grpcio's client and
psql, that each server really behaves as these verdicts claim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import pytest
from apache_servers import running_apache
from cli_scans import Scan, run_cli, scan, write_inventory
from grpc_servers import running_grpc
from identity_servers import IdentityPKI
from postgres_servers import running_postgres
from protocol_servers import ProtocolServer, write_protocol_pki
from real_servers import SERVER_NAME

from mtls_audit.checks.registry import BUILTIN_ORDER
from mtls_audit.reports.json_report import load_report
from mtls_audit.scanner.model.observations import Presented


def expect(**changes: str) -> dict[str, str]:
    verdicts = dict.fromkeys(BUILTIN_ORDER, "pass")
    verdicts.update({check.replace("_", "-"): status for check, status in changes.items()})
    return verdicts


NO_RULES = {"access_rules": "skip", "unknown_identity_rejected": "skip"}
# A target no probe could reach as asked: every check is an error, none a pass.
ALL_ERRORS = dict.fromkeys(BUILTIN_ORDER, "error")

GRPC_RULES = [
    {"identity": "payment", "request": "grpc bank.Payments/Transfer", "expect": "allow"},
    {"identity": "web", "request": "grpc bank.Payments/Transfer", "expect": "deny"},
]
APACHE_RULES = [
    {"identity": "payment", "request": "GET /secure", "expect": "allow"},
    {"identity": "web", "request": "GET /secure", "expect": "allow"},
]
# PostgreSQL makes no requests: a rule says who may connect (as the target's user).
POSTGRES_RULES = [{"identity": "payment", "expect": "allow"}, {"identity": "web", "expect": "deny"}]

SERVERS: dict[str, Callable[..., AbstractContextManager[ProtocolServer]]] = {
    "apache-tls13": lambda pki, d: running_apache(pki, d, protocol="TLSv1.3"),
    "apache-tls12": lambda pki, d: running_apache(pki, d, protocol="TLSv1.2"),
    "grpc": lambda pki, d: running_grpc(pki, d, require_client_auth=True),
    "grpc-no-client-auth": lambda pki, d: running_grpc(pki, d, require_client_auth=False),
    "postgres-cert": lambda pki, d: running_postgres(pki, d, hba="cert"),
    "postgres-scram-verify-full": lambda pki, d: running_postgres(pki, d, hba="scram-verify-full"),
    "postgres-trust-no-ca": lambda pki, d: running_postgres(pki, d, hba="trust-no-ca"),
}


@dataclass(frozen=True)
class Case:
    server: str  # a key of SERVERS
    target: dict  # inventory target, without name and address
    verdicts: dict[str, str]
    explain: dict[str, list[str]] = field(default_factory=dict)  # probe id: what its line must say, in order


POSTGRES = {"probe": "postgres", "postgres_user": "payment", "min_tls_version": "1.2"}

CASES = {
    # SSLVerifyClient require only in <Location /secure>: asked after the handshake.
    "apache-pha": Case(
        "apache-tls13",
        {"server_name": SERVER_NAME, "http_path": "/secure"},
        expect(**NO_RULES),
        {
            "no-cert@tls1.3": [
                "session ticket",
                "sent GET /secure HTTP/1.1",
                "CertificateRequest after the handshake",
                "empty Certificate sent",
                "alert 116 certificate_required",
                "=> blocked at tls-post-handshake",
            ],
            "rogue-ca@tls1.3": ["CertificateRequest after the handshake", "alert 48 unknown_ca", "=> blocked"],
            "valid@tls1.3": ["CertificateRequest after the handshake", "HTTP 200 OK", "=> accepted (http layer)"],
        },
    ),
    # Apache checks the chain, not who: both valid identities may read /secure, and so
    # may the issuer's copy of payment without a SAN.
    "apache-pha-rules": Case(
        "apache-tls13",
        {"server_name": SERVER_NAME, "http_path": "/secure", "access": APACHE_RULES},
        expect(unknown_identity_rejected="fail"),
        {
            "identity:web[GET /secure]@tls1.3": [
                "CertificateRequest after the handshake",
                "Certificate sent",
                "HTTP 200 OK",
                "=> accepted (http layer)",
            ],
        },
    ),
    # The same server's / asks no one: client auth is per location.
    "apache-pha-open-path": Case(
        "apache-tls13",
        {"server_name": SERVER_NAME, "http_path": "/"},
        # The copies were never asked for: as with the impostors, getting in is a fail.
        expect(client_cert_required="fail", wrong_ca_rejected="fail", client_cert_validity="fail", **NO_RULES),
    ),
    # TLS 1.2: the server renegotiates on GET /secure.
    "apache-renegotiation": Case(
        "apache-tls12",
        {"server_name": SERVER_NAME, "http_path": "/secure", "min_tls_version": "1.2"},
        expect(**NO_RULES),
        {
            "no-cert@tls1.2": [
                "sent GET /secure HTTP/1.1",
                "CertificateRequest in a renegotiation",
                "alert 40 handshake_failure",
                "=> blocked at tls-post-handshake",
            ],
        },
    ),
    "grpc": Case(
        "grpc",
        {"server_name": SERVER_NAME, "probe": "grpc", "min_tls_version": "1.2", "access": GRPC_RULES},
        # grpcio authorizes on the CN: the copy of payment without a SAN gets in.
        # BoringSSL closes on a TLS 1.0/1.1 ClientHello without an alert: ambiguous.
        expect(unknown_identity_rejected="fail", tls13_only="error"),
        {
            "no-cert@tls1.3": ["ALPN h2", "EOF after the handshake", "=> blocked at tls-post-handshake"],
            "no-cert@tls1.2": ["empty Certificate sent", "=> blocked at tls-handshake"],
            "identity:web[grpc bank.Payments/Transfer]@tls1.3": [
                "grpc-status 7 PERMISSION_DENIED (transfer denied to web)",
                "=> blocked at grpc",
            ],
            "identity:payment[grpc bank.Payments/Transfer]@tls1.3": ["grpc-status 0 OK", "=> accepted (grpc layer)"],
        },
    ),
    "grpc-no-client-auth": Case(
        "grpc-no-client-auth",
        {"server_name": SERVER_NAME, "probe": "grpc", "min_tls_version": "1.2"},
        expect(
            client_cert_required="fail",
            wrong_ca_rejected="fail",
            client_cert_validity="fail",
            tls13_only="error",
            **NO_RULES,
        ),
        {"no-cert@tls1.3": ["ALPN h2", "grpc-status 0 OK", "=> accepted (grpc layer)"]},
    ),
    "postgres-cert": Case(
        "postgres-cert",
        {"server_name": SERVER_NAME, **POSTGRES, "access": POSTGRES_RULES},
        expect(unknown_identity_rejected="fail"),
        {
            "no-cert@tls1.3": [
                "empty Certificate sent",
                "PostgreSQL FATAL 28000 connection requires a valid client certificate",
                "=> blocked at application",
            ],
            "rogue-ca@tls1.3": ["alert 48 unknown_ca", "after the handshake", "=> blocked at tls-post-handshake"],
            "rogue-ca@tls1.2": ["alert 48 unknown_ca in the handshake", "=> blocked at tls-handshake"],
            "identity:web@tls1.3": [
                "PostgreSQL FATAL 28000 certificate authentication failed",
                "=> blocked at application",
            ],
            "valid@tls1.3": ["PostgreSQL AuthenticationOk", "=> accepted (application layer)"],
        },
    ),
    "postgres-scram-verify-full": Case(
        "postgres-scram-verify-full",
        {"server_name": SERVER_NAME, **POSTGRES},
        expect(**NO_RULES),
        {
            "no-cert@tls1.2": ["PostgreSQL FATAL 28000", "=> blocked at application"],
            "valid@tls1.3": ["PostgreSQL AuthenticationSASL", "=> accepted (application layer)"],
        },
    ),
    "postgres-trust-no-ca": Case(
        "postgres-trust-no-ca",
        {"server_name": SERVER_NAME, **POSTGRES},
        expect(
            client_cert_required="fail",
            wrong_ca_rejected="fail",
            client_cert_validity="fail",
            **NO_RULES,
        ),
        {"rogue-ca@tls1.3": ["PostgreSQL AuthenticationOk", "=> accepted (application layer)"]},
    ),
    # Bad input: the wrong probe for the server. Never a pass on the mTLS checks.
    "grpc-probe-on-apache": Case(
        "apache-tls13",
        {"server_name": SERVER_NAME, "probe": "grpc", "http_path": "/secure"},
        expect(client_cert_required="error", wrong_ca_rejected="error", client_cert_validity="error", **NO_RULES),
        {"no-cert@tls1.3": ["ALPN http/1.1", "=> error: probe: grpc needs HTTP/2, and the server chose 'http/1.1'"]},
    ),
    "postgres-probe-on-apache": Case(
        "apache-tls13",
        {"server_name": SERVER_NAME, "probe": "postgres"},
        ALL_ERRORS,
        {"valid@tls1.3": ["PostgreSQL: the server closed the connection without answering SSLRequest", "=> error"]},
    ),
}


# -- servers (module-wide, stopped by PID) ----------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> IdentityPKI:
    return write_protocol_pki(tmp_path_factory.mktemp("protocol-pki"))


@pytest.fixture(scope="module")
def servers(pki, tmp_path_factory) -> Iterator[Callable[[str], ProtocolServer]]:
    """Each server started on first use, all stopped at the end of the module."""
    running: dict[str, ProtocolServer] = {}
    stops: list[AbstractContextManager[ProtocolServer]] = []

    def start(name: str) -> ProtocolServer:
        if name not in running:
            manager = SERVERS[name](pki, tmp_path_factory.mktemp(name))
            running[name] = manager.__enter__()
            stops.append(manager)
        return running[name]

    try:
        yield start
    finally:
        for manager in reversed(stops):
            manager.__exit__(None, None, None)


def _inventory(pki: IdentityPKI, name: str, server: ProtocolServer):
    target = {"name": name, "address": f"{server.host}:{server.port}", **CASES[name].target}
    return write_inventory(pki, name, [target])


@pytest.fixture(scope="module")
def scanned(pki, servers, tmp_path_factory) -> Callable[[str], Scan]:
    done: dict[str, Scan] = {}

    def run(name: str) -> Scan:
        if name not in done:
            inventory = _inventory(pki, name, servers(CASES[name].server))
            done[name] = scan(pki, inventory, tmp_path_factory.mktemp("scan") / "report.json")
        return done[name]

    return run


# -- verdicts ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_protocol_verdicts(name: str, scanned):
    scanned(name).assert_verdicts(name, CASES[name].verdicts)


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.explain])
def test_explain_shows_where_each_server_said_no(name: str, pki, servers):
    inventory = _inventory(pki, name, servers(CASES[name].server))
    completed = run_cli("explain", str(inventory), env={"WEB_P12_PASSWORD": pki.web_password})
    assert "Traceback" not in completed.stderr, completed.stderr
    # "  <probe id, padded>  presented ...": an id may hold a space (a gRPC rule's request).
    lines = {line.partition("  presented ")[0].strip(): line for line in completed.stdout.splitlines()}
    for probe, parts in CASES[name].explain.items():
        assert probe in lines, completed.stdout
        line = lines[probe]
        positions = [line.find(part) for part in parts]
        assert -1 not in positions and positions == sorted(positions), (parts, line)


def test_post_handshake_auth_is_classified_as_such(scanned):
    result = scanned("apache-pha")
    auth = {entry["version"]: entry for entry in result.target("apache-pha")["client_auth"]}
    assert auth["TLSv1.3"]["classification"] == "required-after-handshake"
    assert auth["TLSv1.3"]["blocked_at"] == "tls-post-handshake"
    assert "after the handshake (on GET /secure HTTP/1.1)" in auth["TLSv1.3"]["detail"]


def test_grpc_and_postgres_evidence_carries_the_protocol_answer(scanned):
    grpc = scanned("grpc").finding("grpc", "access-rules")
    web = next(rule for rule in grpc["evidence"]["rules"] if rule["identity"] == "web")
    assert {(p["blocked_at"], p["grpc_status"], p["grpc_message"]) for p in web["probes"]} == {
        ("grpc", 7, "transfer denied to web")
    }
    commands = [c["command"] for c in grpc["commands"]]
    assert any(c.startswith("grpcurl -insecure -cert ") and c.endswith("bank.Payments/Transfer") for c in commands)
    postgres = scanned("postgres-cert")
    finding = postgres.finding("postgres-cert", "client-cert-required")
    blocked = {entry["version"]: entry["blocked_at"] for entry in finding["evidence"]["per_version"]}
    assert blocked == {"TLSv1.2": "application", "TLSv1.3": "application"}
    attempts = [attempt for entry in finding["evidence"]["per_version"] for attempt in entry["attempts"]]
    assert {(a["sqlstate"], a["postgres_message"]) for a in attempts} == {
        ("28000", "connection requires a valid client certificate")
    }
    psql = [c["command"] for c in finding["commands"]]
    assert psql and all(c.startswith("psql -w -c 'SELECT 1' ") and "sslmode=verify-full" in c for c in psql)
    [target] = load_report(postgres.path).targets
    refusals = {o.postgres.sqlstate for o in target.probes if o.spec.presented is Presented.NO_CERT and o.postgres}
    assert refusals == {"28000"}


def test_an_ad_hoc_target_takes_probe(pki, servers):
    """`explain HOST:PORT --probe grpc`: no inventory needed to ask a gRPC server."""
    server = servers("grpc")
    completed = run_cli(
        "explain",
        server.address,
        "--ca", str(server.server_ca),
        "--cert", str(server.client_cert),
        "--key", str(server.client_key),
        "--server-name", SERVER_NAME,
        "--probe", "grpc",
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    lines = [line for line in completed.stdout.splitlines() if "valid@tls1.3" in line]
    assert len(lines) == 1 and "grpc-status 0 OK" in lines[0] and lines[0].endswith("=> accepted (grpc layer)")
    wrong = run_cli("explain", str(_inventory(pki, "grpc", server)), "--probe", "grpc")
    assert wrong.returncode == 2 and "--probe apply to a HOST:PORT target" in wrong.stderr
