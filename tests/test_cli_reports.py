"""The report-side command line: JUnit and SIEM outputs, re-rendering a saved
report offline, diffs, baselines and waivers, and their exit codes."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from datetime import date, timedelta
from pathlib import Path

import yaml
from test_cli import assert_one_line_error, run_cli, write_inventory
from test_junit_schemas import assert_valid

from mtls_audit.checks.registry import load_checks
from mtls_audit.reports.json_report import load_report
from mtls_audit.scanner.model.report import ReportDocument
from mtls_audit.scanner.model.status import Status


def baseline_marks(document: ReportDocument) -> dict[tuple[str, str], str | None]:
    return {
        (t.name, f.check): f.baseline.value if f.baseline is not None else None
        for t in document.targets
        for f in t.findings
    }


def scan_to(tmp_path: Path, lab_process, names: list[str], *extra: str, name: str = "r.json"):
    inventory = write_inventory(tmp_path / "inventory.yaml", lab_process, names)
    result = run_cli("scan", str(inventory), "--json", str(tmp_path / name), "--quiet", *extra)
    return result, tmp_path / name


def test_junit_and_ecs_outputs_from_a_scan(tmp_path: Path, lab_process):
    result, _ = scan_to(
        tmp_path,
        lab_process,
        ["strict", "optional"],
        "--junit",
        str(tmp_path / "junit.xml"),
        "--siem",
        "ecs",
        "--siem-out",
        str(tmp_path / "events.ndjson"),
    )
    assert result.returncode == 1
    root = ElementTree.parse(tmp_path / "junit.xml").getroot()
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    assert len(cases) == 2 * len(load_checks())
    assert cases[("optional", "client-cert-required")].find("failure") is not None
    assert cases[("strict", "client-cert-required")].find("failure") is None
    events = [json.loads(line) for line in (tmp_path / "events.ndjson").read_text().splitlines()]
    assert len(events) == 2 * len(load_checks()) + 1  # a finding per target x check, + the scan summary
    assert {e["event"]["dataset"] for e in events} == {"mtls_audit.finding", "mtls_audit.scan"}


def test_siem_to_stdout_keeps_stdout_pure_ndjson(tmp_path: Path, lab_process):
    inventory = write_inventory(tmp_path / "inventory.yaml", lab_process, ["strict"])
    result = run_cli("scan", str(inventory), "--siem", "ocsf", "--siem-out", "-")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]  # every line is an event
    assert len(events) == len(load_checks()) + 1
    assert all(e["class_uid"] in (2003, 6007) for e in events)
    assert "mtls-audit summary" in result.stderr


def test_report_rerenders_a_saved_json_offline(tmp_path: Path, lab_process):
    _, saved = scan_to(tmp_path, lab_process, ["strict", "any-ca"])
    result = run_cli(
        "report",
        str(saved),
        "--html",
        str(tmp_path / "again.html"),
        "--junit",
        str(tmp_path / "again.xml"),
        "--siem",
        "ecs",
        "--siem-out",
        str(tmp_path / "again.ndjson"),
    )
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "again.html").read_text()
    assert "any-ca" in html and "wrong-ca-rejected" in html
    failures = [
        c for c in ElementTree.parse(tmp_path / "again.xml").getroot().iter("testcase") if c.find("failure") is not None
    ]
    assert [(c.get("classname"), c.get("name")) for c in failures] == [("any-ca", "wrong-ca-rejected")]
    assert len((tmp_path / "again.ndjson").read_text().splitlines()) == 2 * len(load_checks()) + 1


def test_report_rejects_what_is_not_a_report(tmp_path: Path):
    (tmp_path / "bad.json").write_text('{"schema_version": "1.0", "targets": "nope"}')
    assert_one_line_error(run_cli("report", str(tmp_path / "bad.json"), "--html", str(tmp_path / "x.html")), "bad.json")
    assert_one_line_error(run_cli("report", str(tmp_path / "bad.json")), "nothing to write")
    assert_one_line_error(
        run_cli("report", str(tmp_path / "bad.json"), "--siem", "ecs"), "--siem and --siem-out go together"
    )


def test_diff_exits_1_when_something_got_worse(tmp_path: Path, lab_process):
    _, old = scan_to(tmp_path, lab_process, ["strict"], name="old.json")
    (tmp_path / "old").mkdir()
    # The same target name now points at an endpoint that lets clients without a cert in.
    inventory = write_inventory(tmp_path / "old" / "inventory.yaml", lab_process, ["optional"])
    data = yaml.safe_load(inventory.read_text())
    data["targets"][0]["name"] = "strict"
    inventory.write_text(yaml.safe_dump(data))
    run_cli("scan", str(inventory), "--json", str(tmp_path / "new.json"), "--quiet")

    worse = run_cli("diff", str(old), str(tmp_path / "new.json"))
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert "client-cert-required" in worse.stdout and "pass" in worse.stdout and "fail" in worse.stdout
    better = run_cli("diff", str(tmp_path / "new.json"), str(old))
    assert better.returncode == 0
    assert "client-cert-required" in better.stdout
    same = run_cli("diff", str(old), str(old))
    assert same.returncode == 0


def test_baseline_marks_findings_and_fail_on_new_only_fails_regressions(tmp_path: Path, lab_process):
    _, baseline = scan_to(tmp_path, lab_process, ["optional", "any-ca"], name="baseline.json")
    known_only, report = scan_to(
        tmp_path, lab_process, ["optional", "any-ca"], "--baseline", str(baseline), "--fail-on-new", name="now.json"
    )
    assert known_only.returncode == 0, known_only.stderr  # both failures were there last time
    marks = baseline_marks(load_report(report))
    assert marks[("optional", "client-cert-required")] == "known"
    assert marks[("any-ca", "client-cert-required")] is None  # passing then and now

    # A new failing endpoint (no-client-auth) is a regression: --fail-on-new fails.
    regression, report = scan_to(
        tmp_path,
        lab_process,
        ["optional", "any-ca", "no-client-auth"],
        "--baseline",
        str(baseline),
        "--fail-on-new",
        name="later.json",
    )
    assert regression.returncode == 1
    marks = baseline_marks(load_report(report))
    assert marks[("no-client-auth", "client-cert-required")] == "new"
    assert_one_line_error(run_cli("scan", str(tmp_path / "inventory.yaml"), "--fail-on-new"), "--baseline")


def test_waivers_keep_a_finding_from_failing_until_they_expire(tmp_path: Path, lab_process):
    today = date.today()

    def waivers(expires: date) -> Path:
        path = tmp_path / f"waivers-{expires}.yaml"
        entry = {
            "target": "opt*",
            "check": "client-cert-required",
            "reason": "legacy client fleet, fixed in Q3",
            "owner": "netsec@example.com",
            "expires": expires.isoformat(),
        }
        path.write_text(yaml.safe_dump({"waivers": [entry]}))
        return path

    waived, report = scan_to(
        tmp_path, lab_process, ["optional"], "--waivers", str(waivers(today + timedelta(days=30))), name="w.json"
    )
    assert waived.returncode == 0, waived.stderr
    document = load_report(report)
    finding = document.targets[0].finding("client-cert-required")
    assert finding is not None
    assert finding.status is Status.FAIL and finding.waived is True
    assert finding.waiver is not None and finding.waiver.owner == "netsec@example.com"

    expired, report = scan_to(
        tmp_path, lab_process, ["optional"], "--waivers", str(waivers(today - timedelta(days=1))), name="x.json"
    )
    assert expired.returncode == 1
    scan = load_report(report).scan
    assert scan.waivers is not None
    assert [w.target for w in scan.waivers.expired] == ["opt*"]
    printed = run_cli(
        "scan", str(tmp_path / "inventory.yaml"), "--waivers", str(waivers(today - timedelta(days=1)))
    ).stdout
    assert (
        f"WAIVER expired: opt* client-cert-required (owner netsec@example.com, expires {today - timedelta(days=1)})"
        in printed
    )

    unused, report = scan_to(
        tmp_path, lab_process, ["strict"], "--waivers", str(waivers(today + timedelta(days=5))), name="u.json"
    )
    assert unused.returncode == 0
    unused_waivers = load_report(report).scan.waivers
    assert unused_waivers is not None and [w.target for w in unused_waivers.unused] == ["opt*"]

    (tmp_path / "broken.yaml").write_text(yaml.safe_dump({"waivers": [{"target": "x", "check": "tls13-only"}]}))
    assert_one_line_error(
        run_cli("scan", str(tmp_path / "inventory.yaml"), "--waivers", str(tmp_path / "broken.yaml")), "broken.yaml"
    )


def test_demo_writes_all_four_reports(tmp_path: Path):
    result = run_cli("demo", "--output", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 0, result.stderr
    for name in ("report.json", "report.html", "junit.xml", "findings.ecs.ndjson"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    document = load_report(tmp_path / "out" / "report.json")
    findings = sum(len(t.findings) for t in document.targets)
    # the demo's JUnit file is what Jenkins' xUnit plugin and the Ant schema accept
    assert_valid(tmp_path / "out" / "junit.xml")
    assert len((tmp_path / "out" / "findings.ecs.ndjson").read_text().splitlines()) == findings + 1
    # Running the demo again leaves one scan in the SIEM file, not two.
    run_cli("demo", "--output", str(tmp_path / "out"), "--quiet")
    assert len((tmp_path / "out" / "findings.ecs.ndjson").read_text().splitlines()) == findings + 1
