"""SARIF 2.1.0 for code scanning, through the real command line against the loopback
lab: valid against the OASIS schema (tests/schemas/sarif-2.1.0), a rule per check, a
result per finding that needs attention at the line the inventory declares its
target, fingerprints that survive a new port and a new line, waivers as suppressions,
the baseline as baselineState, and `report` giving what `scan` gave."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hostile_certificate import ANSI, HOSTILE_SANS
from test_cli import assert_one_line_error, run_cli

from mtls_audit.checks.registry import load_checks
from mtls_audit.reports.json_report import load_report
from mtls_audit.reports.sarif import FINGERPRINT, SarifReportWriter, rule_name
from mtls_audit.scanner.model.finding import Finding
from mtls_audit.scanner.model.report import ReportDocument, ScanInfo, Summary, TargetReport
from mtls_audit.scanner.model.status import Severity, Status

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-2.1.0" / "sarif-schema-2.1.0.json").read_text())
LEVELS = {"fail": "error", "warn": "warning", "error": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}


def assert_valid_sarif(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="ascii")  # only JSON escapes, never a raw control character
    document = json.loads(text)
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    assert document["version"] == "2.1.0" and len(document["runs"]) == 1
    run = document["runs"][0]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is True
    for key in ("startTimeUtc", "endTimeUtc"):  # jsonschema checks date-time only with an extra package
        assert invocation[key].endswith("Z") and datetime.fromisoformat(invocation[key])
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    return document


def inventory_text(lab, targets: dict[str, str], *, padding: int = 0) -> str:
    """An inventory with comments and blank lines between targets, so each target's line
    is not a simple function of its position. ``targets``: name -> lab endpoint."""
    pki = lab.directory / "pki"
    lines = [
        "# inventory for the SARIF tests",
        "",
        "defaults:",
        f"  trust: {json.dumps(str(pki / 'ca.pem'))}",
        "  identity:",
        f"    cert: {json.dumps(str(pki / 'client.pem'))}",
        f"    key: {json.dumps(str(pki / 'client.key'))}",
        *[""] * padding,
        "targets:",
    ]
    for number, (name, endpoint) in enumerate(targets.items()):
        lines += [f"  # target {number}: {name}", *[""] * (number % 3)]
        lines += [
            f"  - name: {name}",
            f"    address: {lab.address(endpoint)}",
            f"    server_name: {lab.server_names.get(endpoint, 'strict.mtls-lab.test')}",
        ]
        lines += ["", "  # (end)"] if number % 2 else []
    return "\n".join(lines) + "\n"


def declared_lines(text: str) -> dict[str, int]:
    """name -> the 1-based line of ``- name: NAME``, where the target is declared."""
    return {
        line.split("- name: ", 1)[1]: number
        for number, line in enumerate(text.splitlines(), start=1)
        if "- name: " in line
    }


def results_by_key(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    results = document["runs"][0]["results"]
    keyed = {(r["properties"]["target"], r["ruleId"]): r for r in results}
    assert len(keyed) == len(results), "one result per target x check"
    return keyed


def needs_attention(document: ReportDocument) -> dict[tuple[str, str], tuple[TargetReport, Finding]]:
    return {
        (target.name, finding.check): (target, finding)
        for target in document.targets
        for finding in target.findings
        if finding.status.value in LEVELS
    }


@pytest.fixture(scope="module")
def scanned(tmp_path_factory, lab_process):
    """An inventory under a directory with a space in its name, scanned from its parent
    (so the SARIF names it by a relative path): (directory, inventory text, result)."""
    directory = tmp_path_factory.mktemp("sarif")
    (directory / "ops dir").mkdir()
    text = inventory_text(
        lab_process, {"strict": "strict", "optional": "optional", "expiring": "expiring", "any-ca": "any-ca"}
    )
    (directory / "ops dir" / "inventory.yaml").write_text(text)
    result = run_cli(
        "scan", str(directory / "ops dir" / "inventory.yaml"),  # absolute: made relative to the working directory
        "--json", "r.json", "--sarif", "r.sarif", "--quiet", cwd=directory,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    return directory, text


def test_scan_writes_valid_sarif_with_a_rule_per_check(scanned):
    directory, _ = scanned
    document = assert_valid_sarif(directory / "r.sarif")
    driver = document["runs"][0]["tool"]["driver"]
    assert driver["name"] == "mtls-audit" and driver["version"]
    checks = load_checks()
    rules = driver["rules"]
    assert [rule["id"] for rule in rules] == [check.id for check in checks]
    for rule, check in zip(rules, checks, strict=True):
        assert rule["name"] == rule_name(check.id) and rule["name"][0].isupper() and "-" not in rule["name"]
        assert rule["shortDescription"]["text"] == check.title
        assert check.description in rule["fullDescription"]["text"]
        assert check.description in rule["help"]["text"] and rule["help"]["markdown"]
        assert rule["properties"]["security-severity"] == SECURITY_SEVERITY[check.severity.value]
        assert rule["properties"]["tags"] == ["security", "mtls"]
        expected = {"critical": "error", "high": "error", "medium": "warning"}.get(check.severity.value, "note")
        assert rule["defaultConfiguration"]["level"] == expected
    assert rule_name("client-cert-required") == "ClientCertRequired" and rule_name("tls13-only") == "Tls13Only"
    # The help carries the remediation a failing finding gave.
    report = load_report(directory / "r.json")
    optional = next(t for t in report.targets if t.name == "optional").finding("client-cert-required")
    assert optional is not None and optional.remediation
    by_id = {rule["id"]: rule for rule in rules}
    assert optional.remediation in by_id["client-cert-required"]["help"]["text"]


def test_one_result_per_finding_that_needs_attention_at_its_inventory_line(scanned):
    directory, text = scanned
    document = assert_valid_sarif(directory / "r.sarif")
    report = load_report(directory / "r.json")
    expected = needs_attention(report)
    results = results_by_key(document)
    assert set(results) == set(expected)
    assert ("optional", "client-cert-required") in results and ("expiring", "expiry-soon") in results
    assert not any(name == "strict" for name, _ in results)  # passes and skips give nothing
    lines = declared_lines(text)
    assert len(set(lines.values())) == 4 and lines["optional"] > 12  # not the trivial 1, 2, 3...
    for key, result in results.items():
        target, finding = expected[key]
        assert result["level"] == LEVELS[finding.status.value]
        assert result["message"]["text"] == f"{target.name} ({target.address}): {finding.summary}"
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == "ops%20dir/inventory.yaml"
        assert physical["region"]["startLine"] == lines[target.name] == target.inventory_line
        assert result["properties"]["status"] == finding.status.value
        assert result["properties"]["address"] == target.address
        assert "suppressions" not in result and "baselineState" not in result
    warn = results[("expiring", "expiry-soon")]
    assert warn["level"] == "warning" and warn["properties"]["evidence"]


def test_report_rerenders_the_same_sarif_offline(scanned):
    directory, _ = scanned
    result = run_cli("report", "r.json", "--sarif", "again.sarif", cwd=directory)
    assert result.returncode == 0, result.stderr
    assert "SARIF report: again.sarif" in result.stdout
    assert assert_valid_sarif(directory / "again.sarif") == assert_valid_sarif(directory / "r.sarif")


def test_merged_shards_give_the_results_of_one_scan(scanned):
    directory, _ = scanned
    for shard in ("0/2", "1/2"):
        name = f"shard{shard[0]}.json"
        result = run_cli("scan", "ops dir/inventory.yaml", "--shard", shard, "--json", name, "--quiet", cwd=directory)
        assert result.returncode in (0, 1), result.stderr
    merged = run_cli("merge", "shard0.json", "shard1.json", "--sarif", "merged.sarif", "--quiet", cwd=directory)
    assert merged.returncode == 1, merged.stderr

    def placed(path: Path) -> dict[tuple[str, str], tuple[Any, ...]]:
        return {
            key: (r["level"], r["locations"], r["partialFingerprints"], r["ruleIndex"])
            for key, r in results_by_key(assert_valid_sarif(path)).items()
        }

    assert placed(directory / "merged.sarif") == placed(directory / "r.sarif")


def test_fingerprints_survive_a_new_port_and_a_new_line(tmp_path: Path, lab_process):
    def sarif(run: str, targets: dict[str, str], padding: int) -> dict[str, Any]:
        (tmp_path / run).mkdir()
        (tmp_path / run / "inventory.yaml").write_text(inventory_text(lab_process, targets, padding=padding))
        result = run_cli("scan", f"{run}/inventory.yaml", "--sarif", f"{run}.sarif", "--quiet", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        return results_by_key(assert_valid_sarif(tmp_path / f"{run}.sarif"))

    # The same names on other endpoints (other ports) that fail the same checks, at other lines.
    first = sarif("first", {"gateway": "optional", "legacy": "no-client-auth"}, padding=0)
    second = sarif("second", {"legacy": "any-ca", "gateway": "no-client-auth"}, padding=5)
    gateway, again = first[("gateway", "client-cert-required")], second[("gateway", "client-cert-required")]
    assert gateway["properties"]["address"] != again["properties"]["address"]
    assert gateway["locations"][0] != again["locations"][0]
    assert gateway["partialFingerprints"] == again["partialFingerprints"]
    legacy, later = first[("legacy", "wrong-ca-rejected")], second[("legacy", "wrong-ca-rejected")]
    assert legacy["properties"]["address"] != later["properties"]["address"]
    assert legacy["partialFingerprints"] == later["partialFingerprints"]
    # ... and a fingerprint names its finding: one per target x check.
    prints = {r["partialFingerprints"][FINGERPRINT] for r in [*first.values(), *second.values()]}
    assert len(prints) == len(set(first) | set(second))


def test_waived_findings_are_suppressed_and_the_baseline_maps(tmp_path: Path, lab_process):
    targets = {"optional": "optional", "any-ca": "any-ca"}
    (tmp_path / "inventory.yaml").write_text(inventory_text(lab_process, {"optional": "optional"}))
    run_cli("scan", "inventory.yaml", "--json", "before.json", "--quiet", cwd=tmp_path)
    (tmp_path / "inventory.yaml").write_text(inventory_text(lab_process, targets))
    waiver = {
        "target": "opt*",
        "check": "client-cert-required",
        "reason": "legacy client fleet, fixed in Q3",
        "owner": "netsec@example.com",
        "expires": (date.today() + timedelta(days=30)).isoformat(),
    }
    (tmp_path / "waivers.yaml").write_text(yaml.safe_dump({"waivers": [waiver]}))
    result = run_cli(
        "scan", "inventory.yaml", "--sarif", "now.sarif", "--baseline", "before.json",
        "--waivers", "waivers.yaml", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr  # any-ca is new and not waived
    results = results_by_key(assert_valid_sarif(tmp_path / "now.sarif"))
    waived = results[("optional", "client-cert-required")]
    assert waived["level"] == "error"  # a waiver accepts the risk; it does not change the verdict
    (suppression,) = waived["suppressions"]
    assert suppression["kind"] == "external" and suppression["status"] == "accepted"
    assert suppression["justification"] == waiver["reason"]
    assert suppression["properties"]["owner"] == waiver["owner"]
    assert suppression["properties"]["expires"] == waiver["expires"]
    assert waived["baselineState"] == "unchanged"  # failing in before.json too
    new = results[("any-ca", "wrong-ca-rejected")]
    assert "suppressions" not in new and new["baselineState"] == "new"


def test_ad_hoc_scan_names_the_address_instead_of_a_file(tmp_path: Path, lab_process):
    pki = lab_process.directory / "pki"
    result = run_cli(
        "scan", lab_process.address("optional"), "--ca", str(pki / "ca.pem"), "--cert", str(pki / "client.pem"),
        "--key", str(pki / "client.key"), "--server-name", "optional.mtls-lab.test",
        "--sarif", str(tmp_path / "adhoc.sarif"), "--quiet",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    results = assert_valid_sarif(tmp_path / "adhoc.sarif")["runs"][0]["results"]
    assert results
    for result_ in results:
        (location,) = result_["locations"]
        assert "physicalLocation" not in location
        assert location["logicalLocations"][0]["name"] == lab_process.address("optional")
        assert result_["message"]["text"].startswith(f"{lab_process.address('optional')}: ")


def test_hostile_certificate_text_is_only_json_escaped(tmp_path: Path, lab_process):
    (tmp_path / "inventory.yaml").write_text(inventory_text(lab_process, {"hostile": "hostile"}))
    result = run_cli("scan", "inventory.yaml", "--sarif", "h.sarif", "--json", "h.json", "--quiet", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    document = assert_valid_sarif(tmp_path / "h.sarif")  # ASCII: ESC and newlines are \u escapes
    raw = (tmp_path / "h.sarif").read_text()
    assert "\\u001b" in raw and ANSI not in raw
    results = results_by_key(document)
    san = results[("hostile", "san-match")]
    report = load_report(tmp_path / "h.json")
    finding = report.targets[0].finding("san-match")
    assert finding is not None and HOSTILE_SANS[1] in finding.summary  # the hostile name, newline and ESC
    assert san["message"]["text"] == f"hostile ({report.targets[0].address}): {finding.summary}"  # as it was
    assert san["properties"]["evidence"] == json.loads(json.dumps(finding.evidence))


def test_sarif_path_is_checked_before_scanning(tmp_path: Path, lab_process):
    (tmp_path / "inventory.yaml").write_text(inventory_text(lab_process, {"strict": "strict"}))
    missing = run_cli("scan", "inventory.yaml", "--sarif", "nowhere/r.sarif", cwd=tmp_path)
    assert_one_line_error(missing, "--sarif", "does not exist")
    same = run_cli("scan", "inventory.yaml", "--junit", "r.xml", "--sarif", "./r.xml", cwd=tmp_path)
    assert_one_line_error(same, "the same file")
    assert not list(tmp_path.glob("*.sarif")) and not (tmp_path / "r.xml").exists()


# -- the writer on its own: what the lab does not produce ------------------------------


def _target(name: str, findings: tuple[Finding, ...], error: str | None = None, line: int | None = 3) -> TargetReport:
    return TargetReport(
        name=name,
        address="10.0.0.1:443",
        server_name="api.internal",
        tags=(),
        status=Status.ERROR if error else Status.FAIL,
        error=error,
        scanned_at=datetime(2026, 1, 2, 3, 4, 5),
        accepted_versions=(),
        client_auth=(),
        certificates=(),
        findings=findings,
        probes=(),
        inventory_line=line,
    )


def test_writer_handles_unscanned_targets_unknown_checks_and_lone_surrogates(tmp_path: Path):
    scan = ScanInfo(datetime(2026, 1, 2, 3, 4, 5), datetime(2026, 1, 2, 3, 5, 0), "0.1.0", "/x/inv.yaml", {})
    odd = "evil\ud800name\x00<script>"
    finding = Finding("my-plugin-check", Status.FAIL, Severity.HIGH, f"bad {odd}", evidence={"seen": odd})
    targets = [_target(odd, (finding,), line=None), _target("down", (), error="connection refused")]
    writer = SarifReportWriter(tmp_path / "w.sarif", cwd=Path("/x/y"))
    writer.start(scan)
    for target in targets:
        writer.add(target)
    assert not (tmp_path / "w.sarif").exists()  # nothing under the name before finish
    writer.finish(scan, Summary(2, {}, {}))
    document = assert_valid_sarif(tmp_path / "w.sarif")
    rules = document["runs"][0]["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == ["my-plugin-check", "scan"]
    assert rules[0]["properties"]["security-severity"] == "8.0" and rules[0]["name"] == "MyPluginCheck"
    first, down = document["runs"][0]["results"]
    assert first["properties"]["target"] == odd and first["properties"]["evidence"] == {"seen": odd}
    physical = first["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "../inv.yaml"}, "region": {"startLine": 1}}
    assert down["ruleId"] == "scan" and down["level"] == "note" and "connection refused" in down["message"]["text"]
    assert not list(tmp_path.glob(".w.sarif.*"))  # the spill and the temporary file are gone


def test_abort_leaves_nothing(tmp_path: Path):
    scan = ScanInfo(datetime(2026, 1, 2), None, "0.1.0", None, {})
    writer = SarifReportWriter(tmp_path / "a.sarif")
    writer.start(scan)
    writer.add(_target("t", (Finding("c", Status.WARN, Severity.LOW, "w"),)))
    writer.abort()
    assert list(tmp_path.iterdir()) == []
