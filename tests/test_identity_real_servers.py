"""Who gets in, proved against real servers: nginx and HAProxy authorizing on the
client certificate's subject, a Go server that ignores dates and EKU (or verifies
normally and authorizes on the SPIFFE ID), and a server whose certificate carries
only a SPIFFE ID. Every scan runs the `mtls-audit` command on an inventory with
named identities (one of them PKCS#12), access rules and an issuer; the verdicts
each server must get are written out in `CASES`.

`test_servers_behave_as_built` shows, with Python's ssl module and certificates
made here (not the scanner's), that each server really does what its verdicts
claim, so a wrong verdict points at the scanner, not at the server.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_scans import Scan, run_cli, scan, write_inventory
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from identity_servers import (
    LEDGER_ID,
    PAYMENT_ID,
    IdentityPKI,
    build_go_server,
    go_server,
    haproxy_subject_authz,
    nginx_plain,
    nginx_subject_authz,
    request_as,
    write_identity_pki,
)
from real_servers import SERVER_NAME, ServerProcess, free_port, require_binary

from mtls_audit.checks.registry import BUILTIN_ORDER

CHECKS = BUILTIN_ORDER


def expect(**changes: str) -> dict[str, str]:
    verdicts = dict.fromkeys(CHECKS, "pass")
    verdicts.update({check.replace("_", "-"): status for check, status in changes.items()})
    return verdicts


NO_RULES = {"access_rules": "skip", "unknown_identity_rejected": "skip"}

SUBJECT_RULES = [
    {"identity": "payment", "request": "POST /transfer", "expect": "allow"},
    {"identity": "web", "request": "POST /transfer", "expect": "deny"},
    {"identity": "retired-payment", "expect": "deny"},  # GET /: the CRL keeps it out
]
SPIFFE_RULES = SUBJECT_RULES[:2]  # the Go server has no CRL


@dataclass(frozen=True)
class Case:
    server: str  # the fixture serving it
    target: dict  # inventory target, without name and address
    verdicts: dict[str, str]
    issuer: str | None = "client-ca"  # the CA the servers trust; None: no issuer


CASES = {
    # Subject-based authorization: the rules hold, the defective copies get nginx's
    # 400, but copies of CN=payment with no SAN or an unknown SPIFFE ID get in.
    "ledger-nginx": Case(
        "nginx_subject",
        {"server_name": SERVER_NAME, "server_identity": LEDGER_ID, "access": SUBJECT_RULES},
        expect(unknown_identity_rejected="fail"),
    ),
    # The same server, with web wrongly expected to get in: a locked-out caller.
    "ledger-nginx-web-expected-allow": Case(
        "nginx_subject",
        {
            "server_name": SERVER_NAME,
            "access": [
                {"identity": "payment", "request": "POST /transfer", "expect": "allow"},
                {"identity": "web", "request": "POST /transfer", "expect": "allow"},
            ],
        },
        expect(access_rules="fail", unknown_identity_rejected="fail"),
    ),
    # The same on TLS 1.2 and 1.3: every probe runs on both, nginx says 400 on both.
    "ledger-nginx-tls12": Case(
        "nginx_subject_tls12",
        {"server_name": SERVER_NAME, "access": SUBJECT_RULES},
        expect(tls13_only="fail", unknown_identity_rejected="fail"),
    ),
    "ledger-haproxy": Case(
        "haproxy_subject",
        {"server_name": SERVER_NAME, "access": SUBJECT_RULES},
        expect(unknown_identity_rejected="fail"),
    ),
    # Chain checked, dates and EKU not: expired, not-yet-valid and serverAuth-only get in.
    "ledger-go-lax": Case("go_lax", {"server_name": SERVER_NAME}, expect(client_cert_validity="fail", **NO_RULES)),
    # Normal verification, authorization on the exact SPIFFE ID: everything holds.
    "ledger-go-spiffe-authz": Case("go_spiffe_authz", {"server_name": SERVER_NAME, "access": SPIFFE_RULES}, expect()),
    # A server leaf with only URI:spiffe://svc/ledger, no server_name.
    "spiffe-ledger": Case("nginx_spiffe", {"server_identity": LEDGER_ID}, expect(**NO_RULES)),
    "spiffe-other": Case(
        "nginx_spiffe", {"server_identity": "spiffe://svc/other"}, expect(san_match="fail", **NO_RULES)
    ),
    # A server leaf valid for 825 days (> 398).
    "long-lived": Case("nginx_long", {"server_name": SERVER_NAME}, expect(cert_lifetime="warn", **NO_RULES)),
    # Without an issuer nothing can be minted: those checks skip.
    "no-issuer-ledger-nginx": Case(
        "nginx_subject",
        {"server_name": SERVER_NAME, "access": SUBJECT_RULES},
        expect(client_cert_validity="skip", unknown_identity_rejected="skip"),
        issuer=None,
    ),
    "no-issuer-ledger-go-lax": Case(
        "go_lax", {"server_name": SERVER_NAME}, expect(client_cert_validity="skip", **NO_RULES), issuer=None
    ),
    # An issuer the server does not trust: every copy is refused, the control too. That
    # proves nothing, so it is an error, never a pass.
    "untrusted-issuer-ledger-nginx": Case(
        "nginx_subject",
        {"server_name": SERVER_NAME, "access": SUBJECT_RULES},
        expect(client_cert_validity="error", unknown_identity_rejected="error"),
        issuer="other-ca",
    ),
}


# -- servers (module-wide, stopped by PID) ----------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> IdentityPKI:
    return write_identity_pki(tmp_path_factory.mktemp("identity-pki"))


@pytest.fixture(scope="module")
def go_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_go_server(tmp_path_factory.mktemp("go-build"))


def _serve(
    tmp_path_factory: pytest.TempPathFactory, name: str, argv: Callable[[Path, int], list[str]]
) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp(name)
    port = free_port()
    server = ServerProcess(argv(workdir, port), port, workdir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nginx_subject(tmp_path_factory, pki) -> Iterator[ServerProcess]:
    yield from _serve(tmp_path_factory, "nginx-subject", lambda d, p: nginx_subject_authz(pki, d, p))


@pytest.fixture(scope="module")
def nginx_subject_tls12(tmp_path_factory, pki) -> Iterator[ServerProcess]:
    yield from _serve(
        tmp_path_factory,
        "nginx-subject-tls12",
        lambda d, p: nginx_subject_authz(pki, d, p, protocols="TLSv1.2 TLSv1.3"),
    )


@pytest.fixture(scope="module")
def haproxy_subject(tmp_path_factory, pki) -> Iterator[ServerProcess]:
    yield from _serve(tmp_path_factory, "haproxy-subject", lambda d, p: haproxy_subject_authz(pki, d, p))


@pytest.fixture(scope="module")
def go_lax(tmp_path_factory, pki, go_binary) -> Iterator[ServerProcess]:
    yield from _serve(tmp_path_factory, "go-lax", lambda d, p: go_server(go_binary, pki, p))


@pytest.fixture(scope="module")
def go_spiffe_authz(tmp_path_factory, pki, go_binary) -> Iterator[ServerProcess]:
    yield from _serve(
        tmp_path_factory, "go-spiffe", lambda d, p: go_server(go_binary, pki, p, strict=True, allow=PAYMENT_ID)
    )


@pytest.fixture(scope="module")
def nginx_spiffe(tmp_path_factory, pki) -> Iterator[ServerProcess]:
    yield from _serve(
        tmp_path_factory, "nginx-spiffe", lambda d, p: nginx_plain(pki, d, p, server_cert="server-spiffe")
    )


@pytest.fixture(scope="module")
def nginx_long(tmp_path_factory, pki) -> Iterator[ServerProcess]:
    yield from _serve(tmp_path_factory, "nginx-long", lambda d, p: nginx_plain(pki, d, p, server_cert="server-long"))


@pytest.fixture(scope="module")
def scanned(request, pki, tmp_path_factory) -> Callable[[str], Scan]:
    """Scan one case (its server started on first use), once per module."""
    done: dict[str, Scan] = {}

    def run(name: str) -> Scan:
        if name not in done:
            case = CASES[name]
            server: ServerProcess = request.getfixturevalue(case.server)
            target = {"name": name, "address": f"127.0.0.1:{server.port}", **case.target}
            inventory = write_inventory(pki, name, [target], issuer=case.issuer)
            done[name] = scan(pki, inventory, tmp_path_factory.mktemp("scan") / "report.json")
        return done[name]

    return run


# -- verdicts ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_identity_verdicts(name: str, scanned):
    scanned(name).assert_verdicts(name, CASES[name].verdicts)


def _rule(result: Scan, name: str, identity: str) -> dict:
    rules = result.finding(name, "access-rules")["evidence"]["rules"]
    return next(rule for rule in rules if rule["identity"] == identity)


def _variants(result: Scan, name: str, check: str) -> dict[str, list[dict]]:
    return {m["variant"]: m["probes"] for m in result.finding(name, check)["evidence"]["minted"]}


def _alerts(probes: list[dict]) -> set[str]:
    return {(p["alert"] or {}).get("name", "") for p in probes}


def test_nginx_denies_at_http_403_for_web_and_400_for_the_revoked_certificate(scanned):
    result = scanned("ledger-nginx")
    assert {p["http_status"] for p in _rule(result, "ledger-nginx", "payment")["probes"]} == {200}
    web = _rule(result, "ledger-nginx", "web")["probes"]
    assert {(p["blocked_at"], p["http_status"]) for p in web} == {("http", 403)}
    retired = _rule(result, "ledger-nginx", "retired-payment")["probes"]
    assert {(p["blocked_at"], p["http_status"]) for p in retired} == {("http", 400)}
    validity = _variants(result, "ledger-nginx", "client-cert-validity")
    assert set(validity) == {"expired", "not-yet-valid", "server-auth-only"}
    for probes in validity.values():
        assert {(p["blocked_at"], p["http_status"]) for p in probes} == {("http", 400)}
    unknown = _variants(result, "ledger-nginx", "unknown-identity-rejected")
    assert set(unknown) == {"cn-only", "unknown-spiffe-id"}
    for probes in unknown.values():
        assert {(p["outcome"], p["http_status"]) for p in probes} == {("accepted", 200)}


def test_every_accepted_version_is_probed_with_every_identity_and_copy(scanned):
    result = scanned("ledger-nginx-tls12")
    assert result.target("ledger-nginx-tls12")["accepted_versions"] == ["TLSv1.2", "TLSv1.3"]
    both = {"TLSv1.2", "TLSv1.3"}
    for identity, status in (("payment", 200), ("web", 403), ("retired-payment", 400)):
        probes = _rule(result, "ledger-nginx-tls12", identity)["probes"]
        assert {p["tls_version"] for p in probes} == both, identity
        assert {p["http_status"] for p in probes} == {status}, identity
    for check, status in (("client-cert-validity", 400), ("unknown-identity-rejected", 200)):
        for variant, probes in _variants(result, "ledger-nginx-tls12", check).items():
            assert {p["tls_version"] for p in probes} == both, variant
            assert {p["http_status"] for p in probes} == {status}, variant


def test_haproxy_denies_web_with_403_and_the_revoked_certificate_in_tls(scanned):
    result = scanned("ledger-haproxy")
    web = _rule(result, "ledger-haproxy", "web")["probes"]
    assert {(p["blocked_at"], p["http_status"]) for p in web} == {("http", 403)}
    retired = _rule(result, "ledger-haproxy", "retired-payment")["probes"]
    assert {p["blocked_at"] for p in retired} == {"tls-post-handshake"}
    assert _alerts(retired) == {"certificate_revoked"}
    validity = _variants(result, "ledger-haproxy", "client-cert-validity")
    assert _alerts(validity["expired"]) == {"certificate_expired"}
    assert all(p["blocked_at"] == "tls-post-handshake" for probes in validity.values() for p in probes)


def test_lax_go_server_lets_every_defective_copy_in(scanned):
    result = scanned("ledger-go-lax")
    validity = _variants(result, "ledger-go-lax", "client-cert-validity")
    assert set(validity) == {"expired", "not-yet-valid", "server-auth-only"}
    for probes in validity.values():
        assert {(p["outcome"], p["http_status"]) for p in probes} == {("accepted", 200)}


def test_go_server_authorizing_on_the_spiffe_id_refuses_unknown_identities_with_403(scanned):
    result = scanned("ledger-go-spiffe-authz")
    unknown = _variants(result, "ledger-go-spiffe-authz", "unknown-identity-rejected")
    assert set(unknown) == {"cn-only", "unknown-spiffe-id"}
    for probes in unknown.values():
        assert {(p["blocked_at"], p["http_status"]) for p in probes} == {("http", 403)}
    validity = _variants(result, "ledger-go-spiffe-authz", "client-cert-validity")
    for probes in validity.values():
        assert {p["blocked_at"] for p in probes} == {"tls-post-handshake"}
        assert _alerts(probes) == {"bad_certificate"}


def test_spiffe_server_identity_is_matched_exactly(scanned):
    good = scanned("spiffe-ledger").finding("spiffe-ledger", "san-match")
    bad = scanned("spiffe-other").finding("spiffe-other", "san-match")
    assert good["evidence"]["subject_alternative_names"] == [f"URI:{LEDGER_ID}"]
    assert LEDGER_ID in good["summary"]
    assert "spiffe://svc/other" in bad["summary"], bad["summary"]


# -- the evidence commands, replayed by hand ----------------------------------------------


@pytest.mark.parametrize(
    "name, identity, expected",
    [
        ("ledger-nginx", "payment", "200"),
        ("ledger-nginx", "web", "403"),
        ("ledger-nginx", "retired-payment", "400"),
        ("ledger-haproxy", "payment", "200"),
        ("ledger-haproxy", "web", "403"),
        ("ledger-haproxy", "retired-payment", "alert certificate revoked"),
        ("ledger-go-spiffe-authz", "web", "403"),
    ],
)
def test_access_rule_commands_reproduce_the_verdict(scanned, pki, name, identity, expected):
    """The openssl s_client and curl lines in the access-rules evidence (the PKCS#12
    one reading its password from WEB_P12_PASSWORD) give what the scanner saw."""
    require_binary("openssl")
    require_binary("curl")
    commands = [
        c
        for c in scanned(name).finding(name, "access-rules")["commands"]
        if c["label"].startswith(f"identity:{identity}")
    ]
    assert {"openssl s_client" in c["command"] for c in commands} == {True, False}, commands  # s_client and curl
    for command in commands:
        completed = subprocess.run(
            ["sh", "-c", command["command"]],
            cwd=pki.directory,
            env=os.environ | {"WEB_P12_PASSWORD": pki.web_password},
            capture_output=True,
            text=True,
            timeout=30,
        )
        output = completed.stdout + completed.stderr
        if expected.isdigit():
            pattern = rf"HTTP/1\.1 {expected} " if "openssl" in command["command"] else rf"(?m)^{expected}$"
            assert re.search(pattern, output), (command["command"], output[-1500:])
        else:
            assert expected in output, (command["command"], output[-1500:])


# -- the servers as built, without the scanner -------------------------------------------

REFUSED = "refused"

AS_BUILT = [
    # server, identity (file stem), request, answer
    ("nginx_subject", "payment", "POST /transfer", "HTTP 200"),
    ("nginx_subject", "web", "POST /transfer", "HTTP 403"),
    ("nginx_subject", "web", "GET /", "HTTP 200"),
    ("nginx_subject", "retired-payment", "GET /", "HTTP 400"),
    ("nginx_subject", "payment-control", "GET /", "HTTP 200"),
    ("nginx_subject", "payment-expired", "GET /", "HTTP 400"),
    ("nginx_subject", "payment-not-yet-valid", "GET /", "HTTP 400"),
    ("nginx_subject", "payment-serverauth-only", "GET /", "HTTP 400"),
    ("nginx_subject", "payment-cn-only", "POST /transfer", "HTTP 200"),
    ("nginx_subject", "payment-unknown-spiffe", "POST /transfer", "HTTP 200"),
    ("haproxy_subject", "payment", "POST /transfer", "HTTP 200"),
    ("haproxy_subject", "web", "POST /transfer", "HTTP 403"),
    ("haproxy_subject", "retired-payment", "GET /", REFUSED),
    ("haproxy_subject", "payment-control", "GET /", "HTTP 200"),
    ("haproxy_subject", "payment-expired", "GET /", REFUSED),
    ("haproxy_subject", "payment-not-yet-valid", "GET /", REFUSED),
    ("haproxy_subject", "payment-serverauth-only", "GET /", REFUSED),
    ("haproxy_subject", "payment-cn-only", "POST /transfer", "HTTP 200"),
    ("go_lax", "payment-expired", "GET /", "HTTP 200"),
    ("go_lax", "payment-not-yet-valid", "GET /", "HTTP 200"),
    ("go_lax", "payment-serverauth-only", "GET /", "HTTP 200"),
    ("go_spiffe_authz", "payment", "POST /transfer", "HTTP 200"),
    ("go_spiffe_authz", "payment-control", "GET /", "HTTP 200"),
    ("go_spiffe_authz", "web", "POST /transfer", "HTTP 403"),
    ("go_spiffe_authz", "payment-cn-only", "GET /", "HTTP 403"),
    ("go_spiffe_authz", "payment-unknown-spiffe", "GET /", "HTTP 403"),
    ("go_spiffe_authz", "payment-expired", "GET /", REFUSED),
    ("go_spiffe_authz", "payment-not-yet-valid", "GET /", REFUSED),
    ("go_spiffe_authz", "payment-serverauth-only", "GET /", REFUSED),
    ("nginx_spiffe", "payment", "GET /", "HTTP 200"),
]


@pytest.mark.parametrize("server, identity, request_line, answer", AS_BUILT)
def test_servers_behave_as_built(request, pki, server, identity, request_line, answer):
    process: ServerProcess = request.getfixturevalue(server)
    got = request_as(
        pki, process.port, identity, request_line, server_name=None if server == "nginx_spiffe" else SERVER_NAME
    )
    assert got.startswith(REFUSED) if answer == REFUSED else got == answer, (server, identity, got)


def test_web_p12_opens_only_with_its_password(pki):
    data = pki.path("web.p12").read_bytes()
    key, certificate, extra = pkcs12.load_key_and_certificates(data, pki.web_password.encode())
    assert key is not None and certificate is not None and len(extra) == 1
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(data, b"not-the-password")


# -- no secret in any output --------------------------------------------------------------


def _pieces(der: bytes, secret: bytes) -> list[str]:
    """The encodings of ``der`` (a private key): whole, as base64 and hex, and every
    48-character piece of those that covers part of ``secret`` (the private scalar,
    so a partial leak shows and a public-key piece never matches a certificate)."""
    start = der.index(secret)
    end = start + len(secret)
    pieces = [base64.b64encode(der).decode(), der.hex()]
    for offset in range(0, len(der), 36):  # 36 bytes = 48 base64 characters
        if offset < end and offset + 36 > start:
            pieces.append(base64.b64encode(der[offset : offset + 36]).decode())
    for offset in range(0, len(der), 24):  # 24 bytes = 48 hex digits
        if offset < end and offset + 24 > start:
            pieces.append(der[offset : offset + 24].hex())
    return pieces


def _secrets(pki: IdentityPKI) -> dict[str, list[str]]:
    """What must never be printed: the issuer's key, the PKCS#12 identity's key, the
    PKCS#12 password and file; each in the encodings a careless writer would use."""
    issuer_key = serialization.load_pem_private_key(pki.key("client-ca").read_bytes(), None)
    web_key = pkcs12.load_key_and_certificates(pki.path("web.p12").read_bytes(), pki.web_password.encode())[0]
    found: dict[str, list[str]] = {}
    for label, key in (("issuer key", issuer_key), ("web key", web_key)):
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        value = key.private_numbers().private_value
        scalar = value.to_bytes(32, "big")
        found[f"{label} scalar"] = [f"{value:x}", f"{value:064x}", str(value), base64.b64encode(scalar).decode()]
        for name, fmt in (
            ("PKCS#8", serialization.PrivateFormat.PKCS8),
            ("traditional", serialization.PrivateFormat.TraditionalOpenSSL),
        ):
            pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()
            der = key.private_bytes(serialization.Encoding.DER, fmt, serialization.NoEncryption())
            lines = [line for line in pem.splitlines() if not line.startswith("-----")]
            private_lines = [
                line
                for i, line in enumerate(lines)
                if i * 48 < der.index(scalar) + 32 and (i + 1) * 48 > der.index(scalar)
            ]
            found[f"{label} {name} PEM"] = [pem, *private_lines]
            found[f"{label} {name} DER"] = _pieces(der, scalar)
    p12 = pki.path("web.p12").read_bytes()
    p12_base64 = base64.b64encode(p12).decode()
    found["PKCS#12 password"] = [pki.web_password]
    found["PKCS#12 file"] = [
        p12_base64,
        p12.hex(),
        *(p12_base64[i : i + 48] for i in range(48, len(p12_base64) - 48, 48)),
    ]
    return found


def _squashed(text: str) -> str:
    """The text lower-cased, without the line breaks, escapes and separators an encoder
    may put inside a secret."""
    for escape in ("\\n", "\\r", "&#10;", "&#xA;", "&#13;"):
        text = text.replace(escape, "")
    return re.sub(r"[\s:]+", "", text).lower()


def _leaks(texts: dict[str, str], secrets: dict[str, list[str]]) -> list[str]:
    """Which secret shows in which text, as written or squashed."""
    return [
        f"{what} in {name}"
        for name, text in texts.items()
        for what, needles in secrets.items()
        if any(needle in text or needle.lower() in _squashed(text) for needle in needles)
    ]


def test_no_key_or_password_in_any_output(pki, nginx_subject, go_lax, tmp_path: Path):
    targets = [
        {"name": "ledger-nginx", "address": f"127.0.0.1:{nginx_subject.port}", **CASES["ledger-nginx"].target},
        {"name": "ledger-go-lax", "address": f"127.0.0.1:{go_lax.port}", **CASES["ledger-go-lax"].target},
    ]
    inventory = write_inventory(pki, "every-output", targets)
    out = {name: tmp_path / name for name in ("report.json", "report.html", "junit.xml", "events.ndjson")}
    result = scan(
        pki, inventory, out["report.json"],
        "--html", str(out["report.html"]), "--junit", str(out["junit.xml"]),
        "--siem", "ecs", "--siem-out", str(out["events.ndjson"]),
    )  # fmt: skip
    assert result.completed.returncode == 1  # unknown-identity-rejected and client-cert-validity fail
    texts = {name: path.read_text() for name, path in out.items()}
    texts["stdout"] = result.completed.stdout
    texts["stderr"] = result.completed.stderr
    for name in ("report.json", "report.html", "junit.xml", "events.ndjson", "stdout"):
        assert texts[name].strip(), f"{name} is empty"

    # The outputs talk about the minted certificates (so a leak would have shown).
    # Minted once per identity and run: 3 defects for client-cert-validity, 2 unknown identities.
    minted = {
        entry["client_certificate_sha256"]
        for target in result.report["targets"]
        for finding in target["findings"]
        if finding["check"] in ("client-cert-validity", "unknown-identity-rejected")
        for entry in finding["evidence"].get("minted", [])
    }
    assert len(minted) == 5 and all(re.fullmatch(r"[0-9a-f]{64}", fp) for fp in minted), minted
    for name in ("report.json", "report.html", "junit.xml", "events.ndjson"):
        lowered = texts[name].lower().replace(":", "")
        missing = [fp for fp in minted if fp not in lowered]
        assert not missing, f"{name} lacks minted fingerprints {missing}"

    secrets = _secrets(pki)
    # The search finds what a careless writer would print (JSON-escaped PEM, one line
    # of it, the key as hex, the password), so "nothing found" means something.
    issuer_pem = pki.key("client-ca").read_text()
    planted = {
        "json": json.dumps({"key": issuer_pem}),
        "line": f"key: {issuer_pem.splitlines()[2]}",
        "hex": serialization.load_pem_private_key(issuer_pem.encode(), None)
        .private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .hex()
        .upper(),
        "password": f"password={pki.web_password}",
    }
    for name, text in planted.items():
        assert _leaks({name: text}, secrets), f"the search misses a planted {name} leak"
    leaks = _leaks(texts, secrets)
    assert not leaks, leaks


def test_explain_prints_the_identity_and_minted_probes(pki, nginx_subject):
    """`mtls-audit explain` on the inventory: one line per probe, the named identities'
    and the minted copies' included, with what came back; no secret in it."""
    target = {"name": "ledger-nginx", "address": f"127.0.0.1:{nginx_subject.port}", **CASES["ledger-nginx"].target}
    inventory = write_inventory(pki, "explain", [target])
    completed = run_cli("explain", str(inventory), env={"WEB_P12_PASSWORD": pki.web_password})
    output = completed.stdout + completed.stderr
    assert "Traceback" not in output, output[-3000:]
    # A probe id may hold a space ("identity:payment[POST /transfer]@tls1.3"): it ends
    # where "presented" begins.
    lines = {
        line.split("  presented ")[0].strip(): line
        for line in completed.stdout.splitlines()
        if "  presented " in line and "@tls" in line
    }
    expected = {
        "identity:payment[POST /transfer]@tls1.3": "HTTP 200",
        "identity:web[POST /transfer]@tls1.3": "HTTP 403",
        "identity:retired-payment@tls1.3": "HTTP 400",
        "minted@tls1.3": "HTTP 200",
        "expired@tls1.3": "HTTP 400",
        "not-yet-valid@tls1.3": "HTTP 400",
        "server-auth-only@tls1.3": "HTTP 400",
        "cn-only@tls1.3": "HTTP 200",
        "unknown-spiffe-id@tls1.3": "HTTP 200",
    }
    for probe, answer in expected.items():
        assert probe in lines and answer in lines[probe], (probe, lines.get(probe), sorted(lines))
    leaks = _leaks({"explain": output}, _secrets(pki))
    assert not leaks, leaks
