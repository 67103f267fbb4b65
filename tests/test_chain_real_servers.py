"""chain-complete against a real nginx serving chains that link by signature but
are not valid paths (an intermediate with CA:FALSE, a pathLenConstraint exceeded,
an intermediate without keyCertSign), and a complete chain whose intermediate has
expired. nginx loads every one of them as given: it does not validate its own chain.

Each server is started on a free loopback port and stopped by PID; with
MTLS_AUDIT_REQUIRE_SERVERS=1 a missing nginx fails instead of skipping."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from cryptography import x509
from real_servers import (
    SERVER_NAME,
    ServerProcess,
    free_port,
    issue_ca_certificate,
    nginx_serving,
    write_key,
    write_pem,
)

from mtls_audit.checks.base import Status
from mtls_audit.checks.registry import load_checks
from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, SERVER_AUTH, Issued, common_name, issue
from mtls_audit.scanner.engine.engine import ScanOptions, scan
from mtls_audit.scanner.engine.results import TargetResult
from mtls_audit.scanner.inventory import target_from_command_line
from mtls_audit.scanner.model.finding import Finding
from mtls_audit.scanner.probe.prober import Timeouts

OPTIONS = ScanOptions(timeouts=Timeouts(connect=3, handshake=3, post_handshake=0.5, http=3))
NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
DAY = datetime.timedelta(days=1)
ROOT_CN = "CN=chain test root CA"


@dataclass(frozen=True)
class ChainPKI:
    directory: Path
    root: Issued

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def client(self) -> tuple[Path, Path]:
        return self.directory / "client.pem", self.directory / "client.key"

    def serve(self, name: str, chain: list[Issued]) -> tuple[Path, Path]:
        """The server's certificate file (leaf first, then the chain as given) and key."""
        certificate = write_pem(self.directory / f"{name}-chain.pem", [c.certificate for c in chain])
        return certificate, write_key(self.directory / f"{name}.key", chain[0])


def server_leaf(issuer: Issued) -> Issued:
    return issue(
        common_name(SERVER_NAME),
        issuer=issuer,
        subject_alternative_names=[x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        extended_key_usages=[SERVER_AUTH],
        not_before=NOW - 30 * DAY,
        not_after=NOW + 335 * DAY,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ChainPKI:
    directory = tmp_path_factory.mktemp("chain-pki")
    root = issue(common_name("chain test root CA"), is_ca=True, not_before=NOW - 3650 * DAY, not_after=NOW + 3650 * DAY)
    client = issue(
        common_name("chain-test-client"),
        issuer=root,
        subject_alternative_names=[x509.UniformResourceIdentifier("spiffe://mtls.test/client")],
        extended_key_usages=[CLIENT_AUTH],
    )
    write_pem(directory / "ca.pem", [root.certificate])
    write_pem(directory / "client.pem", [client.certificate])
    write_key(directory / "client.key", client)
    return ChainPKI(directory, root)


def chain_for(case: str, root: Issued) -> list[Issued]:
    """The certificates the server sends, leaf first."""
    if case == "good":
        good = issue_ca_certificate("good intermediate CA", issuer=root)
        return [server_leaf(good), good]
    if case == "ca-false":
        not_a_ca = issue_ca_certificate("not-a-CA intermediate", issuer=root, ca=False)
        return [server_leaf(not_a_ca), not_a_ca]
    if case == "pathlen-exceeded":
        upper = issue_ca_certificate("upper intermediate CA (pathlen 0)", issuer=root, path_length=0)
        lower = issue_ca_certificate("lower intermediate CA", issuer=upper)
        return [server_leaf(lower), lower, upper]
    if case == "no-keyCertSign":
        no_cert_sign = issue_ca_certificate("no-keyCertSign intermediate CA", issuer=root, key_cert_sign=False)
        return [server_leaf(no_cert_sign), no_cert_sign]
    if case == "expired-intermediate":
        # The leaf was issued while the intermediate was in date: complete, but expired.
        expired = issue_ca_certificate(
            "expired intermediate CA", issuer=root, not_before=NOW - 1000 * DAY, not_after=NOW - DAY
        )
        return [server_leaf(expired), expired]
    raise ValueError(case)


def scan_nginx(pki: ChainPKI, case: str, workdir: Path) -> dict[str, Finding]:
    certificate, key = pki.serve(case, chain_for(case, pki.root))
    port = free_port()
    server = ServerProcess(
        nginx_serving(workdir, port, certificate=certificate, key=key, client_ca=pki.ca), port, workdir
    )
    try:
        result = scan_one(pki, port)
    finally:
        server.stop()
    return {f.check: f for f in result.report.findings}


def scan_one(pki: ChainPKI, port: int) -> TargetResult:
    cert, key = pki.client
    target = target_from_command_line(f"127.0.0.1:{port}", ca=pki.ca, cert=cert, key=key, server_name=SERVER_NAME)

    async def main() -> TargetResult:
        send, receive = trio.open_memory_channel[TargetResult](1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(scan, [target], load_checks(), OPTIONS, send)
            async for result in receive:
                return result
        raise AssertionError("the scan sent no result")

    return trio.run(main)


def test_good_chain_passes(pki: ChainPKI, tmp_path: Path):
    findings = scan_nginx(pki, "good", tmp_path)
    chain = findings["chain-complete"]
    assert chain.status is Status.PASS, chain.summary
    assert chain.evidence["built_path"] == ["CN=mtls.test", "CN=good intermediate CA", ROOT_CN]
    # the baseline is sound: our identity got in, so the scan really saw the server
    assert findings["client-cert-required"].status is Status.PASS, findings["client-cert-required"].summary


INVALID = {
    "ca-false": "basicConstraints.cA must be asserted in a CA certificate",
    "pathlen-exceeded": "path length constraint violated",
    "no-keyCertSign": "keyUsage.keyCertSign must be asserted in a CA certificate",
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_intermediate_fails_with_the_verifiers_reason(case: str, pki: ChainPKI, tmp_path: Path):
    findings = scan_nginx(pki, case, tmp_path)
    chain = findings["chain-complete"]
    assert chain.status is Status.FAIL, chain.summary
    assert INVALID[case] in chain.summary
    assert ROOT_CN in chain.summary
    assert chain.remediation
    # the chain is otherwise in date: this is not an expiry problem
    assert findings["expiry-soon"].status is Status.PASS, findings["expiry-soon"].summary


def test_expired_intermediate_passes_chain_complete_and_fails_expiry_soon(pki: ChainPKI, tmp_path: Path):
    findings = scan_nginx(pki, "expired-intermediate", tmp_path)
    chain = findings["chain-complete"]
    assert chain.status is Status.PASS, chain.summary
    assert chain.evidence["built_path"] == ["CN=mtls.test", "CN=expired intermediate CA", ROOT_CN]
    expiry = findings["expiry-soon"]
    assert expiry.status is Status.FAIL, expiry.summary
    assert "server chain CN=expired intermediate CA expired on" in expiry.summary
