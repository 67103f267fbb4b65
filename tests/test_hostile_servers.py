"""Servers that misbehave in ways that once gave wrong answers (issue 7), each started
by the test and scanned through the command line, as a user would.

``MTLS_AUDIT_CLI`` (e.g. ``/tmp/old/bin/mtls-audit``) runs these scans with another
build of the scanner: that is how each test was seen to fail before its fix.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from real_servers import SERVER_NAME, ServerPKI, require_binary, write_test_pki

from mtls_audit.reports.json_report import load_report
from mtls_audit.scanner.model.report import TargetReport

TESTS = Path(__file__).parent


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> ServerPKI:
    return write_test_pki(tmp_path_factory.mktemp("pki"))


@contextmanager
def running(argv: list[str]) -> Iterator[int]:
    """A server process that prints {"port": N} when it listens; stopped by PID."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"{argv[:3]} exited early with {process.wait(timeout=5)}")
        yield json.loads(line)["port"]
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def hostile(kind: str, pki: ServerPKI) -> list[str]:
    return [sys.executable, str(TESTS / "hostile_servers.py"), kind, str(pki.directory)]


def scan(port: int, pki: ServerPKI, out: Path, *, identity: bool = True, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """`mtls-audit scan 127.0.0.1:PORT` with the test PKI; the one target's JSON report."""
    cli = shlex.split(os.environ.get("MTLS_AUDIT_CLI", "")) or [sys.executable, "-m", "mtls_audit.scanner.cli"]
    argv = [*cli, "scan", f"127.0.0.1:{port}", "--ca", str(pki.path("ca.pem")), "--server-name", SERVER_NAME]
    if identity:
        argv += ["--cert", str(pki.path("client.pem")), "--key", str(pki.path("client.key"))]
    argv += ["--json", str(out), "--post-handshake-wait", "0.5", "--http-timeout", "2", "--quiet", *extra]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert completed.returncode in (0, 1, 3), completed.stderr
    return _spelled_out(load_report(out).targets[0])


def _spelled_out(target: TargetReport) -> dict[str, Any]:
    """The one target with every fact spelled out, as the checks and the prober made
    them: the JSON report says each fact once (defaults left out, evidence naming
    probes), and loading it puts them back."""
    data = target.to_dict()
    data["findings"] = [finding.to_dict() | {"evidence": finding.evidence} for finding in target.findings]
    data["probes"] = [
        dataclasses.asdict(probe)
        | {"presented": probe.spec.presented.value, "pinned_version": probe.spec.version.value}
        for probe in target.probes
    ]
    return data


def findings(target: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {finding["check"]: finding for finding in target["findings"]}


def test_key_updates_after_the_handshake_do_not_pass_for_a_refusal(pki: ServerPKI, tmp_path: Path):
    """Certificate optional, KeyUpdate(update_requested) after the handshake and before
    the answer, then 200: a client without a certificate gets in, and the scanner's
    own session must survive the key updates to see it."""
    with running(
        [sys.executable, str(TESTS / "keyupdate_server.py"), require_binary("openssl"), str(pki.directory)]
    ) as port:
        target = scan(port, pki, tmp_path / "report.json")
    required = findings(target)["client-cert-required"]
    assert required["status"] == "fail", required["summary"]
    assert "TLSv1.3: optional" in required["summary"]
    no_cert = [p for p in target["probes"] if p["presented"] == "no-cert"]
    assert no_cert and all(p["http"]["status"] == 200 and p["alert_sent"] is None for p in no_cert)


def test_a_broken_session_is_an_error_never_blocked(pki: ServerPKI, tmp_path: Path):
    """The server answers a client without a certificate with bad_record_mac after the
    handshake: the session broke, nobody judged the client. It used to read as
    "blocked at tls-post-handshake" and pass."""
    with running(hostile("bad-record-mac-for-no-cert", pki)) as port:
        target = scan(port, pki, tmp_path / "report.json")
    required = findings(target)["client-cert-required"]
    assert required["status"] == "error", required["summary"]
    assert "bad_record_mac" in required["summary"] and "not a refusal" in required["summary"]


def test_own_identity_undecided_makes_the_impostor_verdicts_errors(pki: ServerPKI, tmp_path: Path):
    """Required client certificate, but the legitimate identity gets neither a ticket nor
    an HTTP answer: undecided. The impostors' refusals then prove nothing."""
    with running(hostile("required-then-mute", pki)) as port:
        target = scan(port, pki, tmp_path / "report.json")
    for check in ("client-cert-required", "wrong-ca-rejected"):
        finding = findings(target)[check]
        assert finding["status"] == "error", (check, finding["summary"])
        assert "our own identity was not let in on TLSv1.3 (unknown" in finding["summary"]


@pytest.mark.parametrize("kind", ["refuse-everyone-with-400", "close-everyone"])
def test_no_certificate_request_means_no_impostor_was_rejected(pki: ServerPKI, tmp_path: Path, kind: str):
    """Scanned without an identity, a server that never asks for a certificate and
    refuses everyone: the impostors' certificates were never even sent."""
    with running(hostile(kind, pki)) as port:
        target = scan(port, pki, tmp_path / "report.json", identity=False)
    wrong_ca = findings(target)["wrong-ca-rejected"]
    assert wrong_ca["status"] == "error", wrong_ca["summary"]
    assert "never asked for a certificate" in wrong_ca["summary"]


def test_node_closing_after_an_untrusted_certificate_is_a_rejection(pki: ServerPKI, tmp_path: Path):
    """Node.js https with rejectUnauthorized closes without an alert right after an
    untrusted certificate on TLS 1.2. That is a refusal in the handshake, not "our
    client aborted"."""
    with running([require_binary("node"), str(TESTS / "node_reject_server.js"), str(pki.directory)]) as port:
        target = scan(port, pki, tmp_path / "report.json")
    wrong_ca = findings(target)["wrong-ca-rejected"]
    assert wrong_ca["status"] == "pass", wrong_ca["summary"]
    on_tls12 = [p for p in wrong_ca["evidence"]["probes"] if p["tls_version"] == "TLSv1.2"]
    assert on_tls12 and all(p["blocked_at"] == "tls-handshake" and p["alert"] is None for p in on_tls12)
    closed = [p for p in target["probes"] if p["presented"] == "rogue-ca" and p["pinned_version"] == "TLSv1.2"]
    assert closed and all(p["closed_by_server"] == "handshake" and p["certificate_sent"] for p in closed)


def test_a_reset_before_the_server_hello_is_not_a_refused_version(pki: ServerPKI, tmp_path: Path):
    """TLS 1.3 works, and every older ClientHello is reset before any TLS byte (what a
    listener that went away looks like): that proves nothing about TLS 1.2."""
    with running(hostile("reset-old-versions", pki)) as port:
        target = scan(port, pki, tmp_path / "report.json")
    tls13_only = findings(target)["tls13-only"]
    assert tls13_only["status"] == "error", tls13_only["summary"]
    assert "ambiguous" in tls13_only["summary"]
    assert findings(target)["client-cert-required"]["status"] == "pass"


def test_backends_that_disagree_fail_on_every_scan(pki: ServerPKI, tmp_path: Path):
    """Every other connection goes to a backend where the certificate is optional. With
    one probe per kind one scan in two used to pass; with two attempts each (the
    default --rounds), every scan sees both backends."""
    with running(hostile("alternating-backends", pki)) as port:
        targets = [scan(port, pki, tmp_path / f"report-{n}.json") for n in range(3)]
    for target in targets:
        required = findings(target)["client-cert-required"]
        assert required["status"] == "fail", required["summary"]
        assert "inconsistent: 1 of 2 attempts got in" in required["summary"]
        attempts = required["evidence"]["per_version"][0]["attempts"]
        assert sorted(a["outcome"] for a in attempts) == ["accepted", "blocked"]
