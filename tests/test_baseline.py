"""Baseline comparison (new / known / resolved), report diffs, and exit-code gating."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from mtls_audit.reports.json_report import validation_problem
from mtls_audit.scanner.cli.exit_codes import ExitCode, exit_code, scan_exit_code
from mtls_audit.scanner.cli.scan_run import load_baseline
from mtls_audit.scanner.model.finding import BaselineLabel, Finding, WaiverNote
from mtls_audit.scanner.model.report import (
    BaselineReport,
    ReportDocument,
    ScanInfo,
    Summary,
    TargetDigest,
    TargetReport,
)
from mtls_audit.scanner.model.status import Severity, Status, worst_status
from mtls_audit.scanner.triage.baseline import (
    Baseline,
    BaselineError,
    DiffEntry,
    diff_reports,
    gating_status,
    gating_target_status,
)


def _finding(check: str, status: str, summary: str | None = None) -> Finding:
    return Finding(
        check=check,
        status=Status(status),
        severity=Severity.HIGH,
        summary=summary if summary is not None else f"{check} {status}",
    )


def _target(name: str, statuses: dict[str, str], *, error: str | None = None) -> TargetReport:
    findings = tuple(_finding(check, status) for check, status in statuses.items())
    return TargetReport(
        name=name,
        address="10.0.0.5:8443",
        server_name="svc.internal",
        tags=(),
        status=Status.ERROR if error else worst_status(f.status for f in findings),
        error=error,
        scanned_at=datetime(2026, 11, 26, 10, 0, 5, tzinfo=UTC),
        accepted_versions=(),
        client_auth=(),
        certificates=(),
        findings=findings,
        probes=(),
    )


SCAN = ScanInfo(
    started=datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC),
    finished=datetime(2026, 11, 26, 10, 0, 9, tzinfo=UTC),
    tool_version="0.1.0",
    inventory=None,
    options={},
)


def _document(targets: list[TargetReport]) -> ReportDocument:
    return ReportDocument(scan=SCAN, summary=Summary(len(targets), {}, {}), targets=tuple(targets))


def _report(spec: dict[str, dict[str, str]]) -> ReportDocument:
    return _document([_target(name, statuses) for name, statuses in spec.items()])


def _with_summary(document: ReportDocument, target: int, finding: int, summary: str) -> ReportDocument:
    """``document`` with one finding's summary replaced (the model is immutable)."""
    targets = list(document.targets)
    findings = list(targets[target].findings)
    findings[finding] = replace(findings[finding], summary=summary)
    targets[target] = targets[target].with_findings(findings)
    return replace(document, targets=tuple(targets))


def _as_version_1_0(document: ReportDocument) -> dict[str, Any]:
    """The JSON of ``document`` as a 1.0 report (last week's tool): no commands, no check catalog."""
    data = document.to_dict()
    data["schema_version"] = "1.0"
    del data["scan"]["checks"]
    for target in data["targets"]:
        for finding in target["findings"]:
            for key in ("commands", "waived", "waiver", "baseline"):
                finding.pop(key, None)
    return data


LAST_WEEK = {
    "payments-api": {
        "client-cert-required": "pass",
        "wrong-ca-rejected": "fail",
        "tls13-only": "fail",
        "chain-complete": "warn",
        "san-match": "pass",
        "expiry-soon": "warn",
    },
    "legacy-db": {"tls13-only": "fail"},
    "old-proxy": {"client-cert-required": "fail"},
}


@pytest.fixture
def baseline() -> Baseline:
    return Baseline.from_document(_report(LAST_WEEK), "last-week.json")


def _labels(target: TargetReport) -> dict[str, BaselineLabel | None]:
    return {f.check: f.baseline for f in target.findings}


# -- annotate -----------------------------------------------------------------------------


def test_annotate_labels_new_known_resolved_and_none(baseline):
    target = _target(
        "payments-api",
        {
            "client-cert-required": "fail",  # pass -> fail: new
            "wrong-ca-rejected": "fail",  # fail -> fail: known
            "tls13-only": "pass",  # fail -> pass: resolved
            "chain-complete": "warn",  # warn -> warn: known
            "san-match": "pass",  # pass -> pass: None
            "expiry-soon": "fail",  # warn -> fail: an escalation is new
        },
    )
    assert _labels(baseline.annotate(target)) == {
        "client-cert-required": "new",
        "wrong-ca-rejected": "known",
        "tls13-only": "resolved",
        "chain-complete": "known",
        "san-match": None,
        "expiry-soon": "new",
    }


@pytest.mark.parametrize(
    ("before", "now", "label"),
    [
        (None, "fail", "new"),
        (None, "warn", "new"),
        (None, "error", "new"),
        (None, "pass", None),
        ("pass", "pass", None),
        ("skip", "fail", "new"),
        ("pass", "error", "new"),
        ("fail", "fail", "known"),
        ("fail", "warn", "known"),  # less bad than before, still failing
        ("fail", "error", "known"),
        ("error", "error", "known"),
        ("error", "fail", "new"),  # last week we could not tell; now it fails
        ("warn", "error", "new"),
        ("warn", "fail", "new"),
        ("fail", "pass", "resolved"),
        ("warn", "pass", "resolved"),
        ("error", "pass", "resolved"),
        ("fail", "skip", None),  # skipped is not proof of a fix
        ("skip", "pass", None),
    ],
)
def test_label_for_every_transition(before, now, label):
    statuses = {} if before is None else {"tls13-only": before}
    baseline = Baseline.from_document(_report({"svc": statuses}))
    expected = BaselineLabel(label) if label is not None else None
    assert baseline.label("svc", "tls13-only", Status(now)) is expected
    assert _labels(baseline.annotate(_target("svc", {"tls13-only": now}))) == {"tls13-only": expected}


def test_a_renamed_target_is_new(baseline):
    renamed = _target("payments-api-v2", {"wrong-ca-rejected": "fail", "san-match": "pass"})
    assert _labels(baseline.annotate(renamed)) == {"wrong-ca-rejected": "new", "san-match": None}


def test_annotate_returns_a_new_target_and_changes_only_the_labels(baseline):
    target = _target("payments-api", {"client-cert-required": "fail", "san-match": "pass"})
    annotated = baseline.annotate(target)
    assert annotated is not target
    assert [f.baseline for f in target.findings] == [None, None]  # the input keeps no labels
    assert [f.baseline for f in annotated.findings] == [BaselineLabel.NEW, None]
    assert replace(annotated, findings=target.findings) == target
    assert [replace(f, baseline=None) for f in annotated.findings] == list(target.findings)


def test_missing_targets_and_the_scan_metadata(baseline):
    assert baseline.missing_targets(["payments-api", "brand-new"]) == ["legacy-db", "old-proxy"]
    assert baseline.missing_targets(["payments-api", "legacy-db", "old-proxy"]) == []
    report = baseline.report(["legacy-db"])
    assert report == BaselineReport("last-week.json", ("payments-api", "old-proxy"))
    assert report.to_dict() == {
        "file": "last-week.json",
        "missing_targets": ["payments-api", "old-proxy"],
    }


def test_annotated_targets_and_baseline_metadata_satisfy_the_schema(baseline):
    targets = [
        baseline.annotate(
            _target(
                "payments-api",
                {
                    "client-cert-required": "fail",
                    "tls13-only": "pass",
                    "san-match": "pass",
                    "wrong-ca-rejected": "fail",
                },
            )
        )
    ]
    document = replace(_document(targets), scan=replace(SCAN, baseline=baseline.report(["payments-api"]))).to_dict()
    assert document["targets"][0]["findings"][0]["baseline"] == "new"
    assert document["scan"]["baseline"] == {"file": "last-week.json", "missing_targets": ["legacy-db", "old-proxy"]}
    assert validation_problem(document) is None
    document["targets"][0]["findings"][0]["baseline"] = "regressed"
    assert "regressed" in validation_problem(document)
    document["targets"][0]["findings"][0]["baseline"] = "new"
    document["scan"]["baseline"]["extra"] = 1
    assert validation_problem(document) is not None


# -- load_baseline ----------------------------------------------------------------------


def test_load_baseline_reads_a_saved_report(tmp_path):
    path = tmp_path / "last-week.json"
    path.write_text(json.dumps(_report(LAST_WEEK).to_dict()), encoding="utf-8")
    baseline = load_baseline(path)
    assert baseline.file == str(path)
    assert baseline.target_names == ("payments-api", "legacy-db", "old-proxy")
    assert baseline.status("payments-api", "wrong-ca-rejected") is Status.FAIL
    assert baseline.status("payments-api", "nope") is None
    assert baseline.status("nope", "tls13-only") is None


def test_a_1_0_report_still_works_as_a_baseline(tmp_path):
    path = tmp_path / "last-week.json"
    path.write_text(json.dumps(_as_version_1_0(_report(LAST_WEEK))), encoding="utf-8")
    baseline = load_baseline(path)
    assert baseline.target_names == ("payments-api", "legacy-db", "old-proxy")
    assert baseline.status("legacy-db", "tls13-only") is Status.FAIL
    assert baseline.label("legacy-db", "tls13-only", Status.FAIL) is BaselineLabel.KNOWN


def _assert_one_line(error: BaselineError, path: Path, *fragments: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert error.file == str(path)


def test_load_baseline_errors_are_one_line_naming_the_file(tmp_path):
    missing = tmp_path / "absent.json"
    with pytest.raises(BaselineError) as raised:
        load_baseline(missing)
    _assert_one_line(raised.value, missing, "baseline", "cannot read")

    truncated = tmp_path / "truncated.json"
    truncated.write_text('{"schema_version": "1.0", "targets": [', encoding="utf-8")
    with pytest.raises(BaselineError) as raised:
        load_baseline(truncated)
    _assert_one_line(raised.value, truncated, "not valid JSON")

    wrong = tmp_path / "wrong.json"
    document = _report(LAST_WEEK).to_dict()
    document["targets"][1]["findings"][0]["status"] = "broken"
    wrong.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(BaselineError) as raised:
        load_baseline(wrong)
    _assert_one_line(raised.value, wrong, "broken", "targets[1]")


def test_a_baseline_with_duplicate_target_names_is_refused(tmp_path):
    path = tmp_path / "dup.json"
    document = _document([_target("svc", {"tls13-only": "pass"}), _target("svc", {"tls13-only": "fail"})])
    path.write_text(json.dumps(document.to_dict()), encoding="utf-8")
    with pytest.raises(BaselineError) as raised:
        load_baseline(path)
    _assert_one_line(raised.value, path, "'svc' (#2)", "matched by name")


def test_a_target_that_could_not_be_scanned_is_compared_too():
    old = _document([_target("svc", {}, error="connection refused")])
    baseline = Baseline.from_document(old)
    assert baseline.status("svc", None) is Status.ERROR
    new = _document([_target("svc", {"tls13-only": "pass"})])
    diff = diff_reports(old, new)
    assert diff.better == [
        DiffEntry(
            "svc", None, Status.ERROR, None, "no longer reported (was: target could not be scanned: connection refused)"
        )
    ]
    assert diff_reports(new, old).worse == [
        DiffEntry("svc", None, None, Status.ERROR, "target could not be scanned: connection refused")
    ]


# -- diff ---------------------------------------------------------------------------------


def test_identical_reports_have_an_empty_diff():
    diff = diff_reports(_report(LAST_WEEK), _report(LAST_WEEK))
    assert diff.empty
    assert (diff.worse, diff.better, diff.added_targets, diff.removed_targets) == ([], [], [], [])
    assert diff.format_lines() == ["no differences"]


def test_pass_and_skip_are_the_same_level():
    diff = diff_reports(_report({"svc": {"a": "pass", "b": "skip"}}), _report({"svc": {"a": "skip", "b": "pass"}}))
    assert diff.empty


def test_diff_worse_and_better_in_both_directions():
    old = _report({"svc": {"a": "pass", "b": "warn", "c": "fail", "d": "warn", "e": "error"}})
    new = _report({"svc": {"a": "fail", "b": "error", "c": "pass", "d": "warn", "e": "fail"}})
    diff = diff_reports(old, new)
    assert [(e.check, e.old_status, e.new_status) for e in diff.worse] == [
        ("a", "pass", "fail"),
        ("b", "warn", "error"),
        ("e", "error", "fail"),
    ]
    assert [(e.check, e.old_status, e.new_status) for e in diff.better] == [("c", "fail", "pass")]
    assert diff.worse[0] == DiffEntry("svc", "a", Status.PASS, Status.FAIL, "a fail")

    backwards = diff_reports(new, old)
    assert [(e.check, e.old_status, e.new_status) for e in backwards.better] == [
        ("a", "fail", "pass"),
        ("b", "error", "warn"),
        ("e", "fail", "error"),
    ]
    assert [(e.check, e.old_status, e.new_status) for e in backwards.worse] == [("c", "pass", "fail")]


def test_a_new_failing_check_is_worse_and_a_vanished_one_better():
    old = _report({"svc": {"a": "pass", "gone-fail": "fail", "gone-pass": "pass"}})
    new = _report({"svc": {"a": "pass", "new-fail": "warn", "new-pass": "pass"}})
    diff = diff_reports(old, new)
    assert diff.worse == [DiffEntry("svc", "new-fail", None, Status.WARN, "new-fail warn")]
    assert diff.better == [DiffEntry("svc", "gone-fail", Status.FAIL, None, "no longer reported (was: gone-fail fail)")]
    assert diff.added_targets == diff.removed_targets == []


def test_an_added_target_is_listed_and_its_failures_are_worse():
    old = _report({"svc": {"a": "pass"}})
    new = _report({"svc": {"a": "pass"}, "fresh": {"a": "fail", "b": "pass"}, "clean": {"a": "pass"}})
    diff = diff_reports(old, new)
    assert diff.added_targets == ["fresh", "clean"]
    assert diff.worse == [DiffEntry("fresh", "a", None, Status.FAIL, "a fail")]
    assert diff.better == [] and diff.removed_targets == []
    assert not diff.empty


def test_a_removed_target_is_listed_and_its_failures_are_gone():
    old = _report({"svc": {"a": "pass"}, "retired": {"a": "fail", "b": "pass"}})
    new = _report({"svc": {"a": "pass"}})
    diff = diff_reports(old, new)
    assert diff.removed_targets == ["retired"]
    assert diff.better == [DiffEntry("retired", "a", Status.FAIL, None, "target no longer scanned (was: a fail)")]
    assert diff.worse == [] and diff.added_targets == []


def test_a_rename_is_one_target_removed_and_one_added():
    diff = diff_reports(_report({"old-name": {"a": "fail"}}), _report({"new-name": {"a": "fail"}}))
    assert diff.added_targets == ["new-name"] and diff.removed_targets == ["old-name"]
    assert [e.target for e in diff.worse] == ["new-name"]
    assert [e.target for e in diff.better] == ["old-name"]


def test_format_lines_and_escaping():
    old = _report({"svc": {"a": "pass", "b": "fail"}, "retired": {"a": "pass"}})
    new = _report({"svc": {"a": "fail", "b": "pass"}, "fresh\x1b[31m": {"a": "pass"}})
    new = _with_summary(new, 0, 0, "evil \x1b]0;pwned\x07 summary\nsecond line")
    lines = diff_reports(old, new).format_lines()
    assert lines == [
        "WORSE svc a: pass -> fail: evil \\x1b]0;pwned\\x07 summary\\nsecond line",
        "BETTER svc b: fail -> pass: b pass",
        "ADDED target fresh\\x1b[31m",
        "REMOVED target retired",
        "1 worse, 1 better, 1 target added, 1 target removed",
    ]
    assert all(line.isprintable() for line in lines)


def test_diff_refuses_duplicate_target_names():
    report = _document([_target("svc", {"a": "pass"}), _target("svc", {"a": "pass"})])
    with pytest.raises(BaselineError, match="new report: target 'svc'"):
        diff_reports(_report({}), report)


def test_diff_to_dict_is_json():
    diff = diff_reports(_report({"svc": {"a": "pass"}}), _report({"svc": {"a": "fail"}}))
    assert json.loads(json.dumps(diff.to_dict())) == {
        "worse": [{"target": "svc", "check": "a", "old_status": "pass", "new_status": "fail", "summary": "a fail"}],
        "better": [],
        "added_targets": [],
        "removed_targets": [],
    }


# -- exit-code gating ---------------------------------------------------------------------


EXPIRED_WAIVER = WaiverNote("svc", "tls13-only", "old", "ops", date(2026, 1, 1), expired=True)


def _with(status: str, **changes: Any) -> Finding:
    if isinstance(changes.get("baseline"), str):
        changes["baseline"] = BaselineLabel(changes["baseline"])
    return replace(_finding("tls13-only", status), **changes)


@pytest.mark.parametrize(
    ("finding", "fail_on_new", "expected"),
    [
        (_with("fail"), False, "fail"),
        (_with("fail"), True, "fail"),  # never compared: counts
        (_with("fail", baseline="new"), True, "fail"),
        (_with("fail", baseline="known"), True, None),
        (_with("fail", baseline="known"), False, "fail"),
        (_with("warn", baseline="known"), True, None),
        (_with("warn", baseline="new"), True, "warn"),
        (_with("error", baseline="known"), True, "error"),  # an outage is never hidden
        (_with("pass", baseline="resolved"), True, "pass"),
        (_with("fail", waived=True), False, None),
        (_with("error", waived=True), False, None),
        (_with("fail", waived=False, waiver=EXPIRED_WAIVER), False, "fail"),
        (_with("fail", baseline="new", waived=True), True, None),
    ],
)
def test_gating_status(finding, fail_on_new, expected):
    assert gating_status(finding, fail_on_new) is (Status(expected) if expected is not None else None)


def test_gating_feeds_exit_code():
    findings = [_with("fail", baseline="known"), _with("warn", baseline="new", waived=True), _with("pass")]
    statuses = [s for s in (gating_status(f, True) for f in findings) if s is not None]
    assert exit_code(statuses, [Status.FAIL], fail_on="warn") == ExitCode.OK
    statuses = [s for s in (gating_status(f, False) for f in findings) if s is not None]
    assert exit_code(statuses, [Status.FAIL], fail_on="warn") == ExitCode.FINDINGS


def _digest(status: str, *findings: Finding, error: str | None = None) -> TargetDigest:
    target = replace(_target("svc", {}), status=Status(status), error=error, findings=findings)
    return TargetDigest.of(target)


def test_scan_exit_code_applies_the_same_gating_to_digests():
    known = _digest("fail", _with("fail", baseline="known"), _with("pass"))
    assert scan_exit_code([known]) == ExitCode.FINDINGS
    assert scan_exit_code([known], fail_on_new=True) == ExitCode.OK
    new_warning = _digest("warn", _with("warn", baseline="new"))
    assert scan_exit_code([known, new_warning], fail_on_new=True) == ExitCode.OK
    assert scan_exit_code([known, new_warning], "warn", fail_on_new=True) == ExitCode.FINDINGS
    waived = _digest("fail", _with("fail", waived=True))
    assert scan_exit_code([waived]) == ExitCode.OK
    expired = _digest("fail", _with("fail", waiver=EXPIRED_WAIVER))
    assert scan_exit_code([waived, expired]) == ExitCode.FINDINGS
    outage = _digest("error", _with("error", baseline="known"), error="connection refused")
    assert scan_exit_code([outage], fail_on_new=True) == ExitCode.INCOMPLETE
    waived_outage = _digest("error", _with("error", waived=True), error="connection refused")
    assert scan_exit_code([waived_outage]) == ExitCode.OK
    assert scan_exit_code([_digest("error", error="connection refused")]) == ExitCode.INCOMPLETE


def test_gating_target_status():
    unreachable = _target("svc", {"a": "error", "b": "error"}, error="connection refused")
    assert gating_target_status(unreachable.status, unreachable.findings) is Status.ERROR
    first_waived = (replace(unreachable.findings[0], waived=True), unreachable.findings[1])
    assert gating_target_status(unreachable.status, first_waived) is Status.ERROR
    both_waived = tuple(replace(f, waived=True) for f in unreachable.findings)
    assert gating_target_status(unreachable.status, both_waived) is None
    failing = _target("svc", {"a": "fail"})
    assert gating_target_status(failing.status, failing.findings) is Status.FAIL
    no_findings = _target("svc", {}, error="refused")
    assert gating_target_status(no_findings.status, no_findings.findings) is Status.ERROR
