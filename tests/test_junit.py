"""The JUnit XML report: structure, status mapping, waivers, and hostile text."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from junitparser import Failure, JUnitXml

from mtls_audit.reports.junit import JunitReportWriter, command_lines, xml_safe
from mtls_audit.scanner.model.finding import ReproCommand
from mtls_audit.scanner.model.report import ReportDocument, ScanInfo, Summary, TargetReport
from mtls_audit.scanner.triage.baseline import Baseline
from mtls_audit.scanner.triage.waivers import load_waivers

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
STARTED = "2026-11-26T10:00:00+00:00"
# The Ant schema's timestamp pattern allows no zone and no fraction: the scan start, UTC.
TIMESTAMP = "2026-11-26T10:00:00"
FINISHED = "2026-11-26T10:00:42.500000+00:00"
CMD_TOP = "openssl s_client -connect 10.0.0.5:8443 -tls1_2 -servername payments.internal"
CMD_NESTED = "openssl s_client -connect 10.0.0.5:8443 -tls1_3 -cert rogue-ca-client.pem"
CMD_TLS12 = "openssl s_client -connect 10.0.0.5:8443 -tls1_2 -servername payments.internal -cert client.pem"


def _finding(
    check: str,
    status: str,
    summary: str = "",
    severity: str = "high",
    commands: tuple[tuple[str, str], ...] = (),
    **evidence: Any,
) -> dict[str, Any]:
    return {
        "check": check,
        "status": status,
        "severity": severity,
        "summary": summary or f"{check} is {status}",
        "remediation": "" if status == "pass" else f"Fix {check}.",
        "commands": [{"label": label, "command": command} for label, command in commands],
        "evidence": evidence,
    }


def _target(
    name: str,
    findings: list[dict[str, Any]],
    *,
    status: str | None = None,
    error: str | None = None,
    address: str = "10.0.0.5:8443",
) -> dict[str, Any]:
    ranks = {"skip": 0, "pass": 1, "warn": 2, "error": 3, "fail": 4}
    worst = max((f["status"] for f in findings), key=ranks.__getitem__, default="skip")
    return {
        "name": name,
        "address": address,
        "server_name": "payments.internal",
        "tags": ["prod"],
        "status": status or worst,
        "error": error,
        "scanned_at": "2026-11-26T10:00:05+00:00",
        "accepted_versions": ["TLSv1.3"],
        "client_auth": [],
        "certificates": [],
        "findings": findings,
        "probes": [],
    }


def _scan() -> ScanInfo:
    return ScanInfo.from_dict(
        {
            "started": STARTED,
            "finished": FINISHED,
            "tool": "mtls-audit",
            "tool_version": "0.1.0",
            "inventory": "inventory.yaml",
            "options": {},
        }
    )


def _summary(targets: list[TargetReport]) -> Summary:
    return Summary(len(targets), {}, {})


def _typed(targets: list[dict[str, Any]]) -> list[TargetReport]:
    return [TargetReport.from_dict(target) for target in targets]


def _targets() -> list[dict[str, Any]]:
    payments = _target(
        "payments-api",
        [
            _finding(
                "client-cert-required",
                "fail",
                "a client without a certificate gets in",
                "critical",
                commands=(("no-cert@tls1.2", CMD_TOP), ("rogue-ca@tls1.3", CMD_NESTED)),
                per_version=[{"version": "TLSv1.3"}, {"version": "TLSv1.2"}],
            ),
            _finding("wrong-ca-rejected", "pass", commands=(("rogue-ca@tls1.3", CMD_NESTED),)),
            _finding(
                "tls13-only",
                "warn",
                "accepts TLSv1.2",
                "medium",
                commands=(("valid@tls1.2", CMD_TLS12),),
                accepted=["TLSv1.2", "TLSv1.3"],
            ),
            _finding("chain-complete", "error", "could not decide: timeout", "medium"),
            _finding("san-match", "skip", "not applicable"),
            _finding("expiry-soon", "pass"),
        ],
    )
    unreachable = _target(
        "billing-db",
        [
            _finding(check, "error", "target could not be scanned: connection refused")
            for check in ("client-cert-required", "tls13-only")
        ],
        status="error",
        error="connection refused",
        address="10.0.0.9:5432",
    )
    no_findings = _target("ghost", [], status="error", error="no route to host", address="10.0.0.10:443")
    return [payments, unreachable, no_findings]


def _write(tmp_path: Path, targets: list[TargetReport], **options: Any) -> Path:
    path = tmp_path / "junit.xml"
    writer = JunitReportWriter(path, **options)
    writer.start(_scan())
    for target in targets:
        writer.add(target)
    assert writer.finish(_scan(), _summary(targets)) == path
    return path


def _cases(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {(case.get("classname"), case.get("name")): case for case in root.iter("testcase")}


def _suite_output(root: ET.Element, name: str) -> str:
    """The ``<system-out>`` of the target's suite (a test case may have none: Ant)."""
    suite = next(suite for suite in root.iter("testsuite") if suite.get("name") == name)
    return suite.find("system-out").text or ""


def _outcome(case: ET.Element) -> str:
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            return tag
    return "passed"


# -- structure and counts ---------------------------------------------------------------


def test_counts_and_names_with_junitparser(tmp_path):
    path = _write(tmp_path, _typed(_targets()))
    xml = JUnitXml.fromfile(str(path))
    assert xml.name is None  # a bare <testsuites>: the Ant schema allows no attribute there
    xml.update_statistics()  # totals, added up from the suites as CI tools do
    # 6 + 2 + the synthetic "scan" case of the target without findings
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (9, 1, 4, 1)
    suites = list(xml)
    assert [suite.name for suite in suites] == ["payments-api", "billing-db", "ghost"]
    payments = suites[0]
    assert (payments.tests, payments.failures, payments.errors, payments.skipped) == (6, 1, 1, 1)
    assert payments.timestamp == TIMESTAMP
    assert payments.hostname == "localhost"
    assert [case.name for case in payments] == [
        "client-cert-required",
        "wrong-ca-rejected",
        "tls13-only",
        "chain-complete",
        "san-match",
        "expiry-soon",
    ]
    assert {case.classname for case in payments} == {"payments-api"}
    properties = {prop.name: prop.value for prop in payments.properties()}
    assert properties["address"] == "10.0.0.5:8443"
    assert properties["server_name"] == "payments.internal"
    assert properties["tags"] == "prod"
    assert "error" not in properties

    by_name = {case.name: case for case in payments}
    assert by_name["client-cert-required"].is_failure
    assert by_name["chain-complete"].is_error
    assert by_name["san-match"].is_skipped
    assert by_name["wrong-ca-rejected"].is_passed
    assert by_name["tls13-only"].is_passed  # warn passes by default ...
    assert by_name["tls13-only"].system_out is None  # (Ant: a test case holds no system-out)
    # ... with the summary in its suite's system-out, named by check
    assert "WARN tls13-only: accepts TLSv1.2" in _suite_output(ET.parse(path).getroot(), "payments-api")
    failure = by_name["client-cert-required"].result[0]
    assert isinstance(failure, Failure)
    assert failure.message == "a client without a certificate gets in"
    assert failure.type == "critical"


def test_counts_and_mapping_with_elementtree(tmp_path):
    path = _write(tmp_path, _typed(_targets()))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert root.attrib == {}  # Ant allows none; xUnit rejects skipped there
    suites = root.findall("testsuite")
    assert len(suites) == 3
    totals = {a: sum(int(s.get(a)) for s in suites) for a in ("tests", "failures", "errors", "skipped")}
    assert totals == {"tests": 9, "failures": 1, "errors": 4, "skipped": 1}
    for number, suite in enumerate(suites):
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        for tag, attribute in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            assert int(suite.get(attribute)) == sum(case.find(tag) is not None for case in cases)
        assert suite.get("timestamp") == TIMESTAMP
        assert (suite.get("hostname"), suite.get("id"), suite.get("package")) == (
            "localhost",
            str(number),
            "mtls-audit",
        )
        assert float(suite.get("time")) == 0  # these targets have no probes
        assert all(case.get("time") == "0" for case in cases)  # GitLab shows no duration without it
        assert [child.tag for child in suite][0] == "properties"
        assert [child.tag for child in suite][-2:] == ["system-out", "system-err"]
    outcomes = {key: _outcome(case) for key, case in _cases(root).items()}
    assert outcomes == {
        ("payments-api", "client-cert-required"): "failure",
        ("payments-api", "wrong-ca-rejected"): "passed",
        ("payments-api", "tls13-only"): "passed",
        ("payments-api", "chain-complete"): "error",
        ("payments-api", "san-match"): "skipped",
        ("payments-api", "expiry-soon"): "passed",
        ("billing-db", "client-cert-required"): "error",
        ("billing-db", "tls13-only"): "error",
        ("ghost", "scan"): "error",
    }
    ghost = _cases(root)[("ghost", "scan")].find("error")
    assert ghost.get("message") == "target could not be scanned: no route to host"
    properties = {p.get("name"): p.get("value") for p in suites[2].iter("property")}
    assert properties["error"] == "no route to host" and properties["status"] == "error"


def test_failure_body_has_summary_remediation_evidence_and_commands(tmp_path):
    path = _write(tmp_path, _typed(_targets()))
    case = _cases(ET.parse(path).getroot())[("payments-api", "client-cert-required")]
    body = case.find("failure").text
    assert body.startswith("a client without a certificate gets in\n")
    assert "Fix client-cert-required." in body
    assert "Target: payments-api (10.0.0.5:8443, server name payments.internal)" in body
    reproduce = body.split("Reproduce:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    # every command, labelled with the probe it repeats, indented under the heading
    assert reproduce == ["  # no-cert@tls1.2", f"  {CMD_TOP}", "  # rogue-ca@tls1.3", f"  {CMD_NESTED}"]
    evidence = json.loads(body.split("Evidence:\n", 1)[1])
    assert evidence == {"per_version": [{"version": "TLSv1.3"}, {"version": "TLSv1.2"}]}  # commands are not evidence
    error = _cases(ET.parse(path).getroot())[("payments-api", "chain-complete")].find("error")
    assert error.get("message") == "could not decide: timeout" and "Fix chain-complete." in error.text


def test_command_lines_label_each_command():
    assert command_lines(()) == []
    assert command_lines((ReproCommand("no-cert@tls1.3", "a"), ReproCommand("", "b"))) == ["# no-cert@tls1.3", "a", "b"]


@pytest.mark.parametrize("fail_on", ["fail", "warn"])
def test_every_check_shows_its_reproduce_commands(tmp_path, fail_on):
    """The commands are the finding's, whatever the check (wrong-ca-rejected and
    tls13-only kept theirs elsewhere in the evidence and used to lose them)."""
    target = _target(
        "api",
        [
            _finding("wrong-ca-rejected", "fail", commands=(("rogue-ca@tls1.3", CMD_NESTED),)),
            _finding("tls13-only", "warn", "accepts TLSv1.2", commands=(("valid@tls1.2", CMD_TLS12),)),
        ],
    )
    root = ET.parse(_write(tmp_path, _typed([target]), fail_on=fail_on)).getroot()
    text = "".join(root.itertext())
    assert f"# rogue-ca@tls1.3\n  {CMD_NESTED}" in text
    assert f"# valid@tls1.2\n  {CMD_TLS12}" in text


def test_warn_is_a_failure_with_fail_on_warn(tmp_path):
    path = _write(tmp_path, _typed(_targets()), fail_on="warn")
    xml = JUnitXml.fromfile(str(path))
    xml.update_statistics()
    assert (xml.failures, xml.errors) == (2, 4)
    case = _cases(ET.parse(path).getroot())[("payments-api", "tls13-only")]
    failure = case.find("failure")
    assert failure.get("message") == "accepts TLSv1.2" and failure.get("type") == "medium"
    assert case.find("system-out") is None
    assert "WARN" not in (_suite_output(ET.parse(path).getroot(), "payments-api"))


def test_fail_on_must_be_fail_or_warn(tmp_path):
    with pytest.raises(ValueError, match="fail_on"):
        JunitReportWriter(tmp_path / "x.xml", fail_on="error")


def test_a_report_with_no_targets_is_valid(tmp_path):
    path = _write(tmp_path, [])
    xml = JUnitXml.fromfile(str(path))
    xml.update_statistics()
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (0, 0, 0, 0)
    assert ET.parse(path).getroot().findall("testsuite") == []


# -- waivers and baseline ----------------------------------------------------------------


WAIVERS = """\
waivers:
  - target: payments-*
    check: client-cert-required
    reason: legacy clients, cut-over on 2027-03-01
    owner: netsec@example.com
    expires: 2027-03-31
  - target: payments-api
    check: tls13-only
    reason: vendor appliance
    owner: appliance-team
    expires: 2026-01-01
"""


def test_waived_findings_are_skipped_and_expired_waivers_are_not(tmp_path):
    waivers_file = tmp_path / "waivers.yaml"
    waivers_file.write_text(WAIVERS, encoding="utf-8")
    waivers = load_waivers(waivers_file, known_checks={"client-cert-required", "tls13-only"})
    targets = [waivers.apply(target, date(2026, 11, 26)) for target in _typed(_targets())]
    path = _write(tmp_path, targets, fail_on="warn")

    xml = JUnitXml.fromfile(str(path))
    xml.update_statistics()
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (9, 1, 4, 2)
    cases = _cases(ET.parse(path).getroot())
    skipped = cases[("payments-api", "client-cert-required")].find("skipped")
    assert skipped is not None and cases[("payments-api", "client-cert-required")].find("failure") is None
    assert skipped.get("message") == (
        "waived: legacy clients, cut-over on 2027-03-01 (owner netsec@example.com, until 2027-03-31)"
    )
    assert skipped.text.startswith("FAIL (waived)\n")  # the original verdict and evidence stay visible
    assert CMD_NESTED in skipped.text
    # the tls13-only waiver expired on 2026-01-01: the warning fails, and says so
    failure = cases[("payments-api", "tls13-only")].find("failure")
    assert failure is not None
    assert "Waiver EXPIRED on 2026-01-01 (not applied): vendor appliance (owner appliance-team)" in failure.text


def test_a_waived_warning_is_skipped_not_reported_as_a_warning(tmp_path):
    target = _target("payments-api", [_finding("tls13-only", "warn", "accepts TLSv1.2")])
    target["findings"][0].update(
        waived=True,
        waiver={"target": "payments-api", "check": "tls13-only", "reason": "r", "owner": "o", "expires": "2027-01-01"},
    )
    case = _cases(ET.parse(_write(tmp_path, _typed([target]))).getroot())[("payments-api", "tls13-only")]
    assert case.find("skipped").get("message") == "waived: r (owner o, until 2027-01-01)"
    assert case.find("system-out") is None
    assert "WARN" not in (ET.parse(tmp_path / "junit.xml").getroot().find("testsuite/system-out").text or "")


def test_baseline_labels_appear_in_the_body(tmp_path):
    earlier = _target(
        "payments-api",
        [
            _finding("client-cert-required", "pass"),
            _finding("wrong-ca-rejected", "fail"),
        ],
    )
    baseline = Baseline.from_document(
        ReportDocument(_scan(), _summary([]), (TargetReport.from_dict(earlier),)), "baseline.json"
    )
    target = baseline.annotate(_typed(_targets())[0])
    root = ET.parse(_write(tmp_path, [target])).getroot()
    cases = _cases(root)
    assert "Baseline: new" in cases[("payments-api", "client-cert-required")].find("failure").text
    assert "RESOLVED wrong-ca-rejected: was failing in the baseline" in _suite_output(root, "payments-api")
    assert _outcome(cases[("payments-api", "wrong-ca-rejected")]) == "passed"


# -- hostile text -------------------------------------------------------------------------


HOSTILE = [
    SCRIPT,
    IMG,
    "first line\nsecond line",
    "red \x1b[31mALERT\x1b[0m",
    "nul \x00 byte",
    "bell \x07 vt \x0b ff \x0c",
    "surrogate \ud800 and \ufffe",
]


def _hostile_target(text: str) -> dict[str, Any]:
    finding = _finding(
        "san-match",
        "fail",
        f"summary {text}",
        commands=((f"no-cert@{text}", f"openssl s_client -servername '{text}'"),),
        subject=f"CN={text}",
    )
    finding["remediation"] = f"remediation {text}"
    waived = _finding("tls13-only", "fail", f"waived {text}")
    waived.update(
        waived=True,
        waiver={
            "target": "*",
            "check": "tls13-only",
            "reason": f"reason {text}",
            "owner": f"owner {text}",
            "expires": "2027-01-01",
        },
    )
    return _target(
        f"target {text}",
        [finding, waived, _finding("tls13-only", "warn", f"warn {text}")],
        error=None,
        address=f"{text}:443",
    )


def _expected(text: str) -> str:
    """What a reader sees: text XML can carry is kept as is, the rest as visible escapes."""
    return xml_safe(text)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_stays_well_formed_and_round_trips(tmp_path, text):
    path = _write(tmp_path, _typed([_hostile_target(text)]))
    raw = path.read_bytes()
    # No character XML 1.0 forbids made it into the file.
    for forbidden in ("\x00", "\x1b", "\x07", "\x0b", "\x0c"):
        assert forbidden.encode() not in raw
    assert b"<script" not in raw and b"<img" not in raw
    raw.decode("utf-8")  # and it is valid UTF-8 (no lone surrogate)

    # Both parsers accept it ...
    root = ET.fromstring(raw)
    xml = JUnitXml.fromfile(str(path))
    xml.update_statistics()
    assert (xml.tests, xml.failures, xml.skipped) == (3, 1, 1)

    # ... and read back the text, markup escaped rather than lost.
    expected = _expected(text)
    suite = root.find("testsuite")
    assert suite.get("name") == f"target {expected}"
    cases = root.findall("testsuite/testcase")
    assert {case.get("classname") for case in cases} == {f"target {expected}"}
    failure = cases[0].find("failure")
    assert failure.get("message") == f"summary {expected}"
    assert f"remediation {expected}" in failure.text
    assert f"# no-cert@{expected}\n  openssl s_client -servername '{expected}'" in failure.text
    skipped = cases[1].find("skipped")
    assert skipped.get("message") == f"waived: reason {expected} (owner owner {expected}, until 2027-01-01)"
    assert f"WARN tls13-only: warn {expected}" in suite.find("system-out").text
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["address"] == f"{expected}:443"

    junit_suite = list(xml)[0]
    junit_case = next(iter(junit_suite))
    assert junit_case.result[0].message == f"summary {expected}"


def test_xml_safe_escapes_only_what_xml_cannot_carry():
    assert xml_safe("\x1b[31m") == "\\x1b[31m"
    assert xml_safe("a\x00b") == "a\\x00b"
    assert xml_safe("\ud800\ufffe\uffff") == "\\ud800\\ufffe\\uffff"
    kept = "tab\tnewline\ncr\r <&>\"' é 漢 \U0001f512"
    assert xml_safe(kept) == kept
    assert xml_safe(42) == "42"


def test_script_in_a_name_is_escaped_in_the_raw_file(tmp_path):
    path = _write(tmp_path, _typed([_hostile_target(SCRIPT)]))
    text = path.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>" not in text


# -- atomic publishing ----------------------------------------------------------------------


def test_nothing_is_written_before_finish_and_no_temp_file_remains(tmp_path):
    path = tmp_path / "out" / "junit.xml"
    path.parent.mkdir()  # writers do not create directories: the CLI checks output paths first
    writer = JunitReportWriter(path)
    writer.start(_scan())
    writer.add(_typed(_targets())[0])
    assert not path.exists()
    writer.finish(_scan(), _summary([]))
    assert [p.name for p in path.parent.iterdir()] == ["junit.xml"]


def test_an_aborted_writer_publishes_nothing_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text("previous", encoding="utf-8")
    writer = JunitReportWriter(path)
    writer.start(_scan())
    writer.add(_typed(_targets())[0])
    writer.abort()  # what the pipeline does when the scan crashes
    assert path.read_text(encoding="utf-8") == "previous"
    assert list(tmp_path.iterdir()) == [path]


def test_finish_replaces_an_old_file(tmp_path):
    path = tmp_path / "junit.xml"
    path.write_text("previous", encoding="utf-8")
    _write(tmp_path, _typed(_targets()))
    assert sum(suite.tests for suite in JUnitXml.fromfile(str(path))) == 9


def test_writer_refuses_out_of_order_calls(tmp_path):
    target = _typed(_targets())[0]
    writer = JunitReportWriter(tmp_path / "junit.xml")
    with pytest.raises(RuntimeError, match="not started"):
        writer.add(target)
    writer.start(_scan())
    with pytest.raises(RuntimeError):
        writer.start(_scan())
    writer.finish(_scan(), _summary([]))
    with pytest.raises(RuntimeError, match="finished"):
        writer.add(target)
    with pytest.raises(RuntimeError):
        writer.finish(_scan(), _summary([]))


def test_a_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "junit.xml"
    writer = JunitReportWriter(path)
    writer.start(_scan())
    writer.add(_typed(_targets())[0])

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("mtls_audit.reports.atomic.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        writer.finish(_scan(), _summary([]))
    assert list(tmp_path.iterdir()) == []


def test_many_targets_are_written_in_order(tmp_path):
    targets = _typed([_target(f"svc-{i:04d}", [_finding("tls13-only", "pass")]) for i in range(2000)])
    xml = JUnitXml.fromfile(str(_write(tmp_path, targets)))
    xml.update_statistics()
    assert xml.tests == 2000
    names = [suite.name for suite in xml]
    assert names == [f"svc-{i:04d}" for i in range(2000)]
    ids = [suite.get("id") for suite in ET.parse(tmp_path / "junit.xml").getroot().iter("testsuite")]
    assert ids == [str(i) for i in range(2000)]  # Ant: 0 for the first suite, then one more each
    assert (xml.failures, xml.errors, xml.skipped) == (0, 0, 0)
