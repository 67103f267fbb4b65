"""The real prober, engine and checks against loopback TLS servers started here.

Each lab endpoint carries the verdicts it was built to produce; misbehaving ones
(hung, mute after the handshake, not TLS, nothing listening) must come out as
errors, never as passes, and must not stop the scan.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from mtls_audit.checks.registry import load_checks
from mtls_audit.scanner.cli.demo import P12_PASSWORD_ENV, write_inventory
from mtls_audit.scanner.engine.engine import ScanOptions, scan
from mtls_audit.scanner.engine.results import TargetResult
from mtls_audit.scanner.inventory import load_inventory
from mtls_audit.scanner.lab.endpoints import LabEndpoint, demo_endpoints
from mtls_audit.scanner.lab.pki import LabPKI
from mtls_audit.scanner.lab.servers import ClientAuthMode, LabServerConfig, running_lab
from mtls_audit.scanner.model.observations import Presented, TLSVersion
from mtls_audit.scanner.model.target import AppProtocol, ClientAuthExpectation, ClientCredential, ClientIdentity, Target
from mtls_audit.scanner.probe.prober import Timeouts

FAST = ScanOptions(timeouts=Timeouts(connect=2, handshake=1, post_handshake=0.3, http=1))


def lab_target(pki: LabPKI, name: str, port: int, server_name: str, index: int = 0, **changes) -> Target:
    credential = ClientCredential(pki.client.certificate, (), pki.client.private_key)
    fields = dict(
        name=name,
        host="127.0.0.1",
        port=port,
        server_name=server_name,
        index=index,
        trust_anchors=(pki.root.certificate,),
        identity=ClientIdentity(credential, Path("client.pem"), Path("client.key")),
    )
    return Target(**(fields | changes))


async def _garbage_server(stream: trio.SocketStream) -> None:
    """Answers a ClientHello with an SSH banner."""
    await stream.receive_some(1024)
    await stream.send_all(b"SSH-2.0-OpenSSH_9.6\r\n" * 4)
    await stream.aclose()


def scan_with_lab(
    configs: list[LabServerConfig], make_targets, options: ScanOptions = FAST, with_garbage: bool = False
) -> list[TargetResult]:
    async def main() -> list[TargetResult]:
        async with trio.open_nursery() as nursery:
            garbage_port = 0
            if with_garbage:
                listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
                garbage_port = listeners[0].socket.getsockname()[1]
                nursery.start_soon(trio.serve_listeners, _garbage_server, listeners)
            async with running_lab(configs) as ports:
                ports = ports | {"garbage": garbage_port}
                send, receive = trio.open_memory_channel(0)
                results = []
                async with trio.open_nursery() as scan_nursery:
                    scan_nursery.start_soon(scan, make_targets(ports), load_checks(), options, send)
                    async for result in receive:
                        results.append(result)
            nursery.cancel_scope.cancel()
        return results

    return trio.run(main)


@pytest.fixture(scope="module")
def demo_results(lab_pki: LabPKI, tmp_path_factory) -> tuple[list[LabEndpoint], list[TargetResult]]:
    """The demo's endpoints scanned from the inventory the demo writes (identities,
    issuer and access rules included)."""
    endpoints = demo_endpoints(lab_pki)
    directory = tmp_path_factory.mktemp("demo")
    lab_pki.write(directory / "pki", b"lab password")

    def targets(ports):
        write_inventory(directory / "inventory.yaml", endpoints, ports)
        return list(load_inventory(directory / "inventory.yaml", {P12_PASSWORD_ENV: "lab password"}))

    return endpoints, scan_with_lab([e.server for e in endpoints], targets)


def test_every_demo_endpoint_gets_the_verdicts_it_was_built_for(demo_results):
    endpoints, results = demo_results
    assert [r.target.name for r in results] == [e.name for e in endpoints]  # inventory order
    wrong = []
    for endpoint, result in zip(endpoints, results, strict=True):
        got = {f.check: f.status.value for f in result.report.findings}
        for check_id, want in endpoint.expected.items():
            if got.get(check_id) != want:
                wrong.append((endpoint.name, check_id, want, got.get(check_id)))
    assert wrong == []


def _result(demo_results, name: str) -> TargetResult:
    return next(r for r in demo_results[1] if r.target.name == name)


def _finding(result: TargetResult, check_id: str):
    return next(f for f in result.report.findings if f.check == check_id)


def test_tls13_rejection_after_the_handshake_is_seen_as_blocked(demo_results):
    strict = _result(demo_results, "strict")
    no_cert = next(o for o in strict.observations if o.spec.presented is Presented.NO_CERT)
    assert no_cert.handshake_completed  # TLS 1.3: the client finished first...
    assert no_cert.alert_received is not None and no_cert.alert_received.code == 116  # ...then the verdict
    assert no_cert.alert_received.phase.value == "post-handshake"
    assert no_cert.certificate_request_seen
    finding = _finding(strict, "client-cert-required")
    entry = finding.evidence["per_version"][0]
    assert entry["blocked_at"] == "tls-post-handshake"
    assert {attempt["alert"]["name"] for attempt in entry["attempts"]} == {"certificate_required"}
    [command] = finding.commands
    assert "-tls1_3" in command.command and "openssl s_client" in command.command


def test_tls12_rejection_happens_in_the_handshake(demo_results):
    result = _result(demo_results, "tls12-allowed")
    by_version = {entry.version: entry for entry in result.report.client_auth}
    assert by_version[TLSVersion.TLS1_2].classification == "required"
    assert by_version[TLSVersion.TLS1_2].blocked_at == "tls-handshake"
    assert by_version[TLSVersion.TLS1_3].blocked_at == "tls-post-handshake"
    assert result.report.accepted_versions == ("TLSv1.2", "TLSv1.3")


def test_http_layer_enforcement_is_blocked_at_http_with_the_status(demo_results):
    result = _result(demo_results, "http-layer")
    entry = _finding(result, "client-cert-required").evidence["per_version"][0]
    assert entry["blocked_at"] == "http"
    assert [attempt["http_status"] for attempt in entry["attempts"]] == [400, 400]
    assert all(p["http_status"] == 400 for p in _finding(result, "wrong-ca-rejected").evidence["probes"])


def test_optional_and_not_requested_are_told_apart(demo_results):
    assert _result(demo_results, "optional").report.client_auth[0].classification == "optional"
    assert _result(demo_results, "no-client-auth").report.client_auth[0].classification == "not-requested"


def test_impostors_are_minted_in_memory_and_reported_by_fingerprint_only(demo_results):
    result = _result(demo_results, "any-ca")
    impostor_probes = [o for o in result.observations if o.spec.presented is Presented.ROGUE_CA]
    assert impostor_probes and all(o.client_certificate_sha256 for o in impostor_probes)
    valid = next(o for o in result.observations if o.spec.presented is Presented.VALID)
    assert impostor_probes[0].client_certificate_sha256 != valid.client_certificate_sha256


def test_misbehaving_targets_become_errors_and_the_scan_goes_on(lab_pki: LabPKI, closed_port: int):
    strict = demo_endpoints(lab_pki)[0]
    silent = LabServerConfig("silent", strict.server.chain, strict.server.private_key, ClientAuthMode.SILENT)
    configs = [strict.server, silent]

    def targets(ports):
        names = ["strict", "silent", "garbage", "nothing-listening"]
        port_of = ports | {"nothing-listening": closed_port}
        return [lab_target(lab_pki, n, port_of[n], strict.server_name, index=i) for i, n in enumerate(names)]

    results = scan_with_lab(configs, targets, with_garbage=True)
    by_name = {r.target.name: r for r in results}
    assert list(by_name) == ["strict", "silent", "garbage", "nothing-listening"]
    assert by_name["strict"].report.status.value == "pass"
    for name, reason in [
        ("silent", "timeout"),
        ("garbage", "wrong version number"),
        ("nothing-listening", "Connection refused"),
    ]:
        result = by_name[name]
        assert result.report.status.value == "error", name
        assert reason in result.report.error, (name, result.report.error)
        statuses = {f.check: f.status.value for f in result.report.findings}
        assert set(statuses.values()) == {"error"}, (name, statuses)
        assert len(statuses) == len(load_checks())


def test_a_server_that_stays_mute_after_the_handshake_is_unknown_never_accepted(lab_pki: LabPKI):
    strict = demo_endpoints(lab_pki)[0].server
    mute = LabServerConfig(
        "mute", strict.chain, strict.private_key, ClientAuthMode.MUTE_AFTER_HANDSHAKE, client_ca=strict.client_ca
    )
    for protocol in (AppProtocol.HTTP, AppProtocol.NONE):
        results = scan_with_lab(
            [mute],
            lambda ports, protocol=protocol: [
                lab_target(lab_pki, "mute", ports["mute"], "strict.mtls-lab.test", app_protocol=protocol)
            ],
        )
        finding = _finding(results[0], "client-cert-required")
        assert finding.status.value == "error", (protocol, finding.summary)
        # Our own identity gets no verdict either, and that alone makes the impostor
        # verdicts undecided (the guard), before the no-cert probe is even read.
        assert "our own identity was not let in on TLSv1.3 (unknown" in finding.summary
        assert results[0].report.client_auth[0].classification == "unknown"


def test_target_expecting_no_client_auth_skips_the_mtls_checks(lab_pki: LabPKI):
    endpoint = next(e for e in demo_endpoints(lab_pki) if e.name == "no-client-auth")
    results = scan_with_lab(
        [endpoint.server],
        lambda ports: [
            lab_target(
                lab_pki,
                endpoint.name,
                ports[endpoint.name],
                endpoint.server_name,
                client_auth=ClientAuthExpectation.NONE,
                disabled_checks=frozenset({"expiry-soon"}),
            )
        ],
    )
    statuses = {f.check: f.status.value for f in results[0].report.findings}
    assert statuses["client-cert-required"] == "skip"
    assert statuses["wrong-ca-rejected"] == "skip"
    assert statuses["expiry-soon"] == "skip"
    assert statuses["tls13-only"] == "pass"
    assert results[0].report.status.value == "pass"
    # Skipped mTLS checks cost no impostor connections.
    assert {o.spec.presented for o in results[0].observations} == {Presented.VALID}


def test_own_identity_refused_makes_mtls_verdicts_errors(lab_pki: LabPKI):
    from mtls_audit.scanner.credentials.factory import CLIENT_AUTH, common_name, issue

    stranger = issue(common_name("not-from-the-lab-ca"), extended_key_usages=[CLIENT_AUTH])
    credential = ClientCredential(stranger.certificate, (), stranger.private_key)
    endpoint = demo_endpoints(lab_pki)[0]
    results = scan_with_lab(
        [endpoint.server],
        lambda ports: [
            lab_target(
                lab_pki,
                "strict",
                ports["strict"],
                endpoint.server_name,
                identity=ClientIdentity(credential, Path("c.pem"), Path("c.key")),
            )
        ],
    )
    for check_id in ("client-cert-required", "wrong-ca-rejected"):
        finding = _finding(results[0], check_id)
        assert finding.status.value == "error"
        assert "our own identity was not let in" in finding.summary


def test_a_probe_that_crashes_costs_one_target_not_the_scan(lab_pki: LabPKI, monkeypatch):
    import mtls_audit.scanner.engine.engine as engine

    real_run_probe = engine.run_probe

    async def flaky(endpoint, spec, credential, timeouts, http):
        if endpoint.server_name == "broken.mtls-lab.test":
            raise RuntimeError("simulated bug")
        return await real_run_probe(endpoint, spec, credential, timeouts, http)

    monkeypatch.setattr(engine, "run_probe", flaky)
    strict = demo_endpoints(lab_pki)[0]
    results = scan_with_lab(
        [strict.server],
        lambda ports: [
            lab_target(lab_pki, "broken", ports["strict"], "broken.mtls-lab.test", index=0),
            lab_target(lab_pki, "strict", ports["strict"], strict.server_name, index=1),
        ],
    )
    assert [r.target.name for r in results] == ["broken", "strict"]
    assert results[0].report.status.value == "error" and "simulated bug" in results[0].report.error
    assert results[1].report.status.value == "pass"
