"""Verdicts against real server software, each configuration with the verdict
expected for every check written out here. These targets have no access rules and
the scan no issuer, so the identity checks skip (tests/test_identity_real_servers.py
proves them).

How they say no (README, "How a server says no"): nginx completes the handshake and answers 400;
HAProxy and `openssl s_server` reject in the handshake on TLS 1.2 and with an
alert right after it on TLS 1.3.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import trio
from real_servers import SERVER_NAME, ServerPKI, ServerProcess, free_port, haproxy, nginx, s_server, write_test_pki

from mtls_audit.checks.registry import load_checks
from mtls_audit.scanner.engine.engine import ScanOptions, scan
from mtls_audit.scanner.engine.results import TargetResult
from mtls_audit.scanner.inventory import target_from_command_line
from mtls_audit.scanner.judge import openssl_command
from mtls_audit.scanner.model.observations import Presented, TLSVersion
from mtls_audit.scanner.model.target import AppProtocol
from mtls_audit.scanner.probe.prober import Timeouts

OPTIONS = ScanOptions(timeouts=Timeouts(connect=3, handshake=3, post_handshake=0.5, http=3))
CHECKS = ("client-cert-required", "wrong-ca-rejected", "tls13-only", "chain-complete", "san-match", "expiry-soon")


NO_IDENTITY_POLICY = {
    "access-rules": "skip",
    "client-cert-validity": "skip",
    "unknown-identity-rejected": "skip",
    "cert-lifetime": "pass",
}


def expect(**fails: str) -> dict[str, str]:
    verdicts = dict.fromkeys(CHECKS, "pass") | NO_IDENTITY_POLICY
    verdicts.update({check.replace("_", "-"): status for check, status in fails.items()})
    return verdicts


# id: (server, options, expected verdicts)
CONFIGURATIONS = {
    "nginx-on-tls13": ("nginx", {"verify": "on"}, expect()),
    "nginx-on-tls12-tls13": ("nginx", {"verify": "on", "protocols": "TLSv1.2 TLSv1.3"}, expect(tls13_only="fail")),
    "nginx-optional": ("nginx", {"verify": "optional"}, expect(client_cert_required="fail")),
    "nginx-optional-no-ca": (
        "nginx",
        {"verify": "optional_no_ca"},
        expect(client_cert_required="fail", wrong_ca_rejected="fail"),
    ),
    "nginx-off": ("nginx", {"verify": "off"}, expect(client_cert_required="fail", wrong_ca_rejected="fail")),
    "nginx-leaf-only": ("nginx", {"verify": "on", "cert": "leaf"}, expect(chain_complete="fail")),
    "nginx-no-san": ("nginx", {"verify": "on", "cert": "nosan"}, expect(san_match="fail")),
    "haproxy-required": ("haproxy", {"verify": "required", "min_version": None}, expect(tls13_only="fail")),
    "haproxy-optional": ("haproxy", {"verify": "optional"}, expect(client_cert_required="fail")),
    "haproxy-none-with-ca-file": (
        "haproxy",
        {"verify": "none"},
        expect(client_cert_required="fail", wrong_ca_rejected="fail"),
    ),
    "haproxy-required-ca-ignore-err": (
        "haproxy",
        {"verify": "required", "extra": "ca-ignore-err all"},
        expect(wrong_ca_rejected="fail"),
    ),
    "s_server-Verify-return-error": (
        "s_server",
        ("-Verify", "1", "-verify_return_error"),
        expect(tls13_only="fail"),
    ),
    "s_server-verify-return-error": (
        "s_server",
        ("-verify", "1", "-verify_return_error"),
        expect(client_cert_required="fail", tls13_only="fail"),
    ),
    "s_server-Verify-accepts-any-cert": (
        "s_server",
        ("-Verify", "1"),
        expect(wrong_ca_rejected="fail", tls13_only="fail"),
    ),
    "s_server-tls13-only": ("s_server", ("-tls1_3", "-Verify", "1", "-verify_return_error"), expect()),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> ServerPKI:
    return write_test_pki(tmp_path_factory.mktemp("pki"))


def start(kind: str, options, pki: ServerPKI, workdir: Path) -> ServerProcess:
    port = free_port()
    if kind == "nginx":
        argv = nginx(pki, workdir, port, **options)
    elif kind == "haproxy":
        argv = haproxy(pki, workdir, port, **options)
    else:
        argv = s_server(pki, workdir, port, *options)
    return ServerProcess(argv, port, workdir)


def scan_one(pki: ServerPKI, port: int, app_protocol: AppProtocol = AppProtocol.HTTP) -> TargetResult:
    target = target_from_command_line(
        f"127.0.0.1:{port}",
        ca=pki.path("ca.pem"),
        cert=pki.path("client.pem"),
        key=pki.path("client.key"),
        server_name=SERVER_NAME,
    )
    if app_protocol is not AppProtocol.HTTP:
        from dataclasses import replace

        target = replace(target, app_protocol=app_protocol)

    async def main() -> TargetResult:
        send, receive = trio.open_memory_channel(1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(scan, [target], load_checks(), OPTIONS, send)
            async for result in receive:
                return result

    return trio.run(main)


def statuses(result: TargetResult) -> dict[str, str]:
    return {f.check: f.status.value for f in result.report.findings}


def finding(result: TargetResult, check_id: str):
    return next(f for f in result.report.findings if f.check == check_id)


@pytest.mark.parametrize("name", list(CONFIGURATIONS))
def test_real_server_verdicts(name: str, pki: ServerPKI, tmp_path: Path):
    kind, options, expected = CONFIGURATIONS[name]
    server = start(kind, options, pki, tmp_path)
    try:
        result = scan_one(pki, server.port)
    finally:
        server.stop()
    got = statuses(result)
    summaries = {f.check: f.summary for f in result.report.findings}
    assert got == expected, summaries


def test_nginx_says_no_at_the_http_layer_with_400(pki: ServerPKI, tmp_path: Path):
    server = start("nginx", {"verify": "on"}, pki, tmp_path)
    try:
        result = scan_one(pki, server.port)
    finally:
        server.stop()
    entry = finding(result, "client-cert-required").evidence["per_version"][0]
    assert entry["blocked_at"] == "http" and entry["certificate_request_seen"] is True
    assert [attempt["http_status"] for attempt in entry["attempts"]] == [400, 400]
    probes = finding(result, "wrong-ca-rejected").evidence["probes"]
    assert {p["presented"] for p in probes} == {"rogue-ca", "self-signed"}
    assert all(p["blocked_at"] == "http" and p["http_status"] == 400 for p in probes)


def test_haproxy_rejects_in_the_handshake_on_12_and_after_it_on_13(pki: ServerPKI, tmp_path: Path):
    server = start("haproxy", {"verify": "required", "min_version": None}, pki, tmp_path)
    try:
        result = scan_one(pki, server.port)
    finally:
        server.stop()
    by_version = {entry.version: entry for entry in result.report.client_auth}
    assert by_version["TLSv1.2"].classification == "required"
    assert by_version["TLSv1.2"].blocked_at == "tls-handshake"
    assert by_version["TLSv1.3"].blocked_at == "tls-post-handshake"
    per_version = finding(result, "client-cert-required").evidence["per_version"]
    alerts = {e["version"]: {a["alert"]["name"] for a in e["attempts"]} for e in per_version}
    assert alerts["TLSv1.3"] == {"certificate_required"}


def test_ticketless_server_is_decided_by_http_and_unknown_without_it(pki: ServerPKI, tmp_path: Path):
    """`-num_tickets 0`: after a TLS 1.3 handshake nothing comes, neither ticket nor
    alert. The HTTP probe decides (s_server -www answers 200: optional); with
    probe: none the verdict is unknown, never "accepted"."""
    server = start("s_server", ("-tls1_3", "-num_tickets", "0", "-verify", "1", "-verify_return_error"), pki, tmp_path)
    try:
        with_http = scan_one(pki, server.port)
        without_http = scan_one(pki, server.port, AppProtocol.NONE)
    finally:
        server.stop()
    decided = finding(with_http, "client-cert-required")
    assert decided.status.value == "fail"
    attempt = decided.evidence["per_version"][0]["attempts"][0]
    assert attempt["after_handshake"] == "timeout"
    assert attempt["http_status"] == 200
    undecided = finding(without_http, "client-cert-required")
    assert undecided.status.value == "error"
    assert "probe: none" in undecided.summary
    assert without_http.report.client_auth[0].classification == "unknown"


def test_own_identity_refused_is_an_error_not_a_pass(pki: ServerPKI, tmp_path: Path):
    """A server that trusts a different CA refuses us too: its rejections prove nothing."""
    other = write_test_pki(tmp_path / "other-pki")
    server = start("s_server", ("-tls1_3", "-Verify", "1", "-verify_return_error"), other, tmp_path)
    try:
        result = scan_one(pki, server.port)
    finally:
        server.stop()
    for check_id in ("client-cert-required", "wrong-ca-rejected"):
        assert finding(result, check_id).status.value == "error"
        assert "our own identity was not let in" in finding(result, check_id).summary


def _run_shell(command: str, cwd: Path) -> str:
    completed = subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=20)
    return completed.stdout + completed.stderr


@pytest.mark.parametrize("kind, options, presented, expect_text", [
    ("s_server", ("-tls1_3", "-Verify", "1", "-verify_return_error"), "no-cert", "alert certificate required"),
    ("s_server", ("-tls1_3", "-Verify", "1", "-verify_return_error"), "rogue-ca", "alert unknown ca"),
    ("s_server", ("-tls1_3", "-Verify", "1", "-verify_return_error"), "valid", "HTTP/1.0 200 ok"),
    ("nginx", {"verify": "on"}, "no-cert", "400 Bad Request"),
    ("nginx", {"verify": "on"}, "self-signed", "400 Bad Request"),
    ("nginx", {"verify": "on"}, "valid", "HTTP/1.1 200 OK"),
])  # fmt: skip
def test_evidence_command_reproduces_the_verdict_by_hand(
    pki: ServerPKI, tmp_path: Path, kind, options, presented, expect_text
):
    server = start(kind, options, pki, tmp_path)
    try:
        result = scan_one(pki, server.port)
        checked = finding(
            result, "wrong-ca-rejected" if presented in ("rogue-ca", "self-signed") else "client-cert-required"
        )
        if presented == "valid":
            command = openssl_command(result.target, Presented.VALID, TLSVersion.TLS1_3)
        else:
            command = next(c.command for c in checked.commands if c.label.startswith(f"{presented}@"))
        # The impostor commands name placeholder files; the test PKI wrote them here.
        output = _run_shell(command, cwd=pki.directory)
    finally:
        server.stop()
    assert "openssl s_client" in command
    assert expect_text in output, (command, output[-2000:])
