"""The JSON report at scale: small per target, and every probe's facts exactly as
they were observed.

The targets are a real scan of the lab (every demo endpoint, with the issuer's
minted copies and the authz endpoints' access rules: the fullest targets a scan
makes), repeated to 10,000 with a server leaf of its own each, as a real fleet has.
bench/report_size.py measures the same through the command line with every writer on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import yaml

from mtls_audit.checks.registry import load_checks
from mtls_audit.reports.json_report import JsonReportWriter, load_report, validation_problem
from mtls_audit.scanner.engine.engine import ScanOptions, scan
from mtls_audit.scanner.inventory import load_inventory
from mtls_audit.scanner.model.observations import ProbeObservation
from mtls_audit.scanner.model.report import SCHEMA_VERSION, ReportDocument, ScanInfo, SummaryCounter, TargetReport
from mtls_audit.scanner.probe import Timeouts

# Bytes of report.json per target without its certificates table, and how many
# targets the generated report has (the size per target does not depend on the count:
# the plain fleet is smaller to keep the suite quick). The goal is 8 KB per
# target. Measured (schema 1.3): 7.2 KB plain, 12.4 KB full (14.8 and 24.2 KB with the
# table in 1.2). Here every target has a server leaf of its own, which the table holds
# once per target: LEAF bounds that (about 1.1 KB, most of it the PEM).
LIMITS = {
    "plain": (8 * 1024, 2_000),  # probed with the inventory's identity and the impostors
    "full": (13 * 1024, 10_000),  # plus five minted copies, a control and access rules
}
LEAF = 1_250


def _inventory(path: Path, lab, *, issuer: bool) -> Path:
    pki = lab.directory / "pki"
    targets = [
        {"name": name, "address": lab.address(name), "server_name": server_name}
        for name, server_name in lab.server_names.items()
    ]
    document: dict = {
        "identities": {"lab-client": {"cert": str(pki / "client.pem"), "key": str(pki / "client.key")}},
        "defaults": {"trust": str(pki / "ca.pem"), "identity": "lab-client"},
        "targets": targets,
    }
    if issuer:
        document["issuer"] = {"cert": str(pki / "ca.pem"), "key": str(pki / "issuer.key")}
        for target in targets:
            if target["name"].startswith("authz-"):
                target["access"] = [{"identity": "lab-client", "request": "POST /transfer", "expect": "allow"}]
    path.write_text(yaml.safe_dump(document))
    return path


def _scan(inventory: Path) -> tuple[TargetReport, ...]:
    checks = load_checks()
    targets = load_inventory(inventory, known_checks=[check.id for check in checks])
    options = ScanOptions(timeouts=Timeouts(post_handshake=0.5), concurrency=16, per_host=16)

    async def run() -> list[TargetReport]:
        send, receive = trio.open_memory_channel(0)
        reports = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(scan, targets, checks, options, send)
            async for result in receive:
                reports.append(result.report)
        return reports

    return tuple(trio.run(run))


@pytest.fixture(scope="module", params=["plain", "full"])
def scanned(request, lab_process, tmp_path_factory) -> tuple[str, tuple[TargetReport, ...]]:
    inventory = _inventory(tmp_path_factory.mktemp("inventory") / "inventory.yaml", lab_process, issuer=True)
    if request.param == "plain":
        inventory = _inventory(inventory, lab_process, issuer=False)
    targets = _scan(inventory)
    assert len(targets) == len(lab_process.server_names) and all(t.probes for t in targets)
    return request.param, targets


def _scan_info() -> ScanInfo:
    from datetime import UTC, datetime

    return ScanInfo(
        datetime.now(UTC), datetime.now(UTC), "test", "inventory.yaml", {}, tuple(c.info for c in load_checks())
    )


def _write(path: Path, targets: Iterator[TargetReport]) -> Path:
    counter = SummaryCounter()
    writer = JsonReportWriter(path)
    writer.start(_scan_info())
    for target in targets:
        writer.add(target)
        counter.add(target)
    return writer.finish(_scan_info(), counter.summary())


def _fleet(targets: tuple[TargetReport, ...], count: int) -> Iterator[TargetReport]:
    """``count`` targets made of ``targets`` in turn, each with a server leaf of its own
    (a distinct fingerprint, as every service in a fleet has its own certificate)."""
    for number in range(count):
        target = targets[number % len(targets)]
        if not target.certificates:
            yield dataclasses.replace(target, name=f"{target.name}-{number:05d}", index=number)
            continue
        old = [certificate.sha256 for certificate in target.certificates]
        leaf = dataclasses.replace(target.certificates[0], sha256=hashlib.sha256(f"{number}".encode()).hexdigest())
        chain = (leaf, *target.certificates[1:])
        new = tuple(certificate.sha256 for certificate in chain)
        probes = tuple(
            dataclasses.replace(p, peer_chain_sha256=new, peer_chain_der=()) if list(p.chain_fingerprints) == old else p
            for p in target.probes
        )
        yield dataclasses.replace(
            target, name=f"{target.name}-{number:05d}", index=number, certificates=chain, probes=probes
        )


def test_a_fleet_of_targets_stays_within_the_size_limit(scanned, tmp_path):
    mix, targets = scanned
    limit, count = LIMITS[mix]
    path = _write(tmp_path / "report.json", _fleet(targets, count))
    size = path.stat().st_size
    table = len(json.dumps(json.loads(path.read_bytes())["certificates"], separators=(",", ":")).encode())
    per_target = (size - table) / count
    assert per_target <= limit, f"{mix}: {per_target:.0f} bytes per target (limit {limit})"
    assert table / count <= LEAF, f"{mix}: certificates table {table / count:.0f} bytes per target"
    # compact: one target per line, no indentation
    with path.open(encoding="utf-8") as report:
        assert report.readline() == f'{{"schema_version":"{SCHEMA_VERSION}","targets":[\n'
        second = report.readline()
    assert second.startswith('{"name":') and second.endswith("},\n") and "\n  " not in second


def _fields(probe: ProbeObservation) -> dict[str, object]:
    """Every fact of a probe, the chain by fingerprint (what a report can hold)."""
    facts = {field.name: getattr(probe, field.name) for field in dataclasses.fields(probe)}
    facts["peer_chain_sha256"] = probe.chain_fingerprints
    del facts["peer_chain_der"]
    return facts


def test_a_written_report_reads_back_every_probe_fact(scanned, tmp_path):
    _, targets = scanned
    path = _write(tmp_path / "report.json", iter(targets))
    assert validation_problem(json.loads(path.read_text(encoding="utf-8"))) is None
    loaded = load_report(path)
    assert [t.name for t in loaded.targets] == [t.name for t in targets]
    probes = 0
    for original, read in zip(targets, loaded.targets, strict=True):
        assert len(read.probes) == len(original.probes)
        for before, after in zip(original.probes, read.probes, strict=True):
            assert _fields(after) == _fields(before), before.spec.id
            probes += 1
        # and everything else of the target: findings with their full evidence, certificates...
        assert dataclasses.replace(read, probes=()) == dataclasses.replace(original, probes=())
    assert probes > 10 * len(targets)
    # what load_report gives is the document that was written
    again = tmp_path / "again.json"
    _write(again, iter(loaded.targets))
    assert (
        json.loads(again.read_text(encoding="utf-8"))["targets"]
        == json.loads(path.read_text(encoding="utf-8"))["targets"]
    )
    assert ReportDocument.from_dict(loaded.to_dict()) == loaded


def test_evidence_names_probes_instead_of_repeating_their_facts(scanned, tmp_path):
    _, targets = scanned
    path = _write(tmp_path / "report.json", iter(targets))
    written = json.loads(path.read_text(encoding="utf-8"))
    strict = next(t for t in written["targets"] if t["name"] == "strict")
    first, second = strict["findings"][0]["evidence"]["per_version"][0]["attempts"]
    assert set(first) == {"probe", "outcome", "blocked_at", "reason"}
    # the second attempt is like the first: it says only what differs (its id, the time)
    assert second["like"] == 0 and {"probe"} <= set(second) <= {"like", "probe", "outcome", "blocked_at", "reason"}
    # the typed finding has the facts back, as the checks made them
    finding = next(t for t in load_report(path).targets if t.name == "strict").findings[0]
    original = next(t for t in targets if t.name == "strict").findings[0]
    assert finding.evidence == original.evidence
    assert "alert" in finding.evidence["per_version"][0]["attempts"][0]


def test_repeated_facts_are_written_once(scanned, tmp_path):
    """Schema 1.3: what a target repeats is said once and named; the typed report read
    back is the one written (test_a_written_report_reads_back_every_probe_fact)."""
    _, targets = scanned
    path = _write(tmp_path / "report.json", _fleet(targets, 2 * len(targets)))
    lines = path.read_text(encoding="utf-8").splitlines()
    written = json.loads("".join(lines))
    severities = {check["id"]: check["severity"] for check in written["scan"]["checks"]}
    catalog = {c.id: c.severity.value for c in load_checks()}
    assert severities == catalog
    number = next(n for n, target in enumerate(targets) if target.name == "strict")
    strict = written["targets"][number]
    line = next(line for line in lines if line.startswith(f'{{"name":"{strict["name"]}"'))
    # the probes after the first are like an earlier one, and say less than it
    assert [p["probe"] for p in strict["probes"] if "like" in p]
    # the commands' shared arguments (the request, the address) are written once
    assert line.count(f"-connect {strict['address']}") == 1
    assert any(f"-connect {strict['address']}" in part for part in strict["command_parts"])
    findings = {f["check"]: f for f in strict["findings"]}
    assert all(isinstance(label, str) for f in findings.values() for label in f.get("commands", {}))
    # the chain's certificates by their position, not by restating them
    presented = findings["chain-complete"]["evidence"]["presented"]
    assert [entry["subject"] for entry in presented] == list(range(len(strict["certificates"])))
    # a finding at its check's severity leaves it to the catalog
    assert all("severity" not in f for f in strict["findings"])
    # the second copy of a target names the texts its first copy spelled out
    texts = written["texts"]
    copy = written["targets"][number + len(targets)]
    assert copy["name"] == f"strict-{number + len(targets):05d}"
    skipped = [f["summary"] for f in copy["findings"] if f["status"] == "skip"]
    assert skipped and all(isinstance(summary, int) and texts[summary] for summary in skipped)
    loaded = load_report(path).targets
    assert [t.findings for t in loaded[: len(targets)]] == [t.findings for t in targets]


def test_probe_facts_at_their_edges_read_back_exactly(scanned, tmp_path):
    """What the compact encoding leaves out or shares with the target comes back
    exactly, including the cases where it must not be left out."""
    from mtls_audit.scanner.model.observations import AfterHandshake, Presented, ProbeSpec, TLSVersion

    _, targets = scanned
    target = next(t for t in targets if t.certificates)
    first = target.probes[0]
    odd = (
        # a time of 0.0 is a fact, not a default; "" is not null
        dataclasses.replace(first, connect_ms=0.0, connect_error="", tls_error=""),
        # an identity the probe id cannot spell unambiguously ("a[b]" looks like a request)
        dataclasses.replace(first, spec=ProbeSpec(Presented.IDENTITY, TLSVersion.TLS1_2, 3, "a[b]", None)),
        dataclasses.replace(first, spec=ProbeSpec(Presented.IDENTITY, TLSVersion.TLS1_3, 1, "web", "POST /x@y")),
        # no SNI and another address than the target's; no chain, or another chain
        dataclasses.replace(first, sni=None, address="192.0.2.1:443", peer_chain_der=(), peer_chain_sha256=()),
        dataclasses.replace(first, peer_chain_der=(), peer_chain_sha256=("e" * 64,)),
        dataclasses.replace(first, after_handshake=AfterHandshake.TIMEOUT, connected=False, client_ca_names=()),
    )
    edited = dataclasses.replace(target, probes=target.probes + odd)
    path = _write(tmp_path / "report.json", iter([edited]))
    read = load_report(path).targets[0]
    assert [_fields(p) for p in read.probes] == [_fields(p) for p in edited.probes]
    written = json.loads(path.read_text(encoding="utf-8"))["targets"][0]["probes"][-6:]
    assert written[0]["connect_ms"] == 0.0 and written[0]["connect_error"] == ""
    assert written[1]["identity"] == "a[b]" and "presented" in written[1]
    assert "presented" not in written[2]  # identity:web[POST /x@y]@tls1.3 spells it
    assert written[3]["sni"] is None and written[3]["peer_chain_sha256"] == []
