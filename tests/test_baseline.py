"""Baseline comparison (new / known / resolved), report diffs, and exit-code gating."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mtls_audit.reports.json_report import validation_problem
from mtls_audit.scanner.cli.exit_codes import ExitCode, exit_code
from mtls_audit.scanner.triage.baseline import (
    Baseline,
    BaselineError,
    DiffEntry,
    annotate,
    diff_reports,
    gating_status,
    gating_target_status,
    load_baseline,
)


def _finding(check: str, status: str, summary: str | None = None) -> dict[str, Any]:
    return {
        "check": check,
        "status": status,
        "severity": "high",
        "summary": summary if summary is not None else f"{check} {status}",
        "remediation": "",
        "evidence": {},
    }


def _target(name: str, statuses: dict[str, str], *, error: str | None = None) -> dict[str, Any]:
    ranks = {"skip": 0, "pass": 1, "warn": 2, "error": 3, "fail": 4}
    findings = [_finding(check, status) for check, status in statuses.items()]
    worst = max((f["status"] for f in findings), key=ranks.__getitem__, default="skip")
    return {
        "name": name,
        "address": "10.0.0.5:8443",
        "server_name": "svc.internal",
        "tags": [],
        "status": "error" if error else worst,
        "error": error,
        "scanned_at": "2026-11-26T10:00:05+00:00",
        "accepted_versions": [],
        "client_auth": [],
        "certificates": [],
        "findings": findings,
        "probes": [],
    }


def _document(targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema_version": "1.0",
        "scan": {
            "started": "2026-11-26T10:00:00+00:00",
            "finished": "2026-11-26T10:00:09+00:00",
            "tool": "mtls-audit",
            "tool_version": "0.1.0",
            "inventory": None,
            "options": {},
        },
        "summary": {"targets": len(targets), "targets_by_status": {}, "findings_by_status": {}},
        "targets": targets,
    }


def _report(spec: dict[str, dict[str, str]]) -> dict[str, Any]:
    return _document([_target(name, statuses) for name, statuses in spec.items()])


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


def _labels(target: dict[str, Any]) -> dict[str, str | None]:
    return {f["check"]: f["baseline"] for f in target["findings"]}


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
    assert _labels(annotate(target, baseline)) == {
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
    assert baseline.label("svc", "tls13-only", now) == label
    assert _labels(annotate(_target("svc", {"tls13-only": now}), baseline)) == {"tls13-only": label}


def test_a_renamed_target_is_new(baseline):
    renamed = _target("payments-api-v2", {"wrong-ca-rejected": "fail", "san-match": "pass"})
    assert _labels(annotate(renamed, baseline)) == {"wrong-ca-rejected": "new", "san-match": None}


def test_annotate_does_not_mutate_its_input(baseline):
    target = _target("payments-api", {"client-cert-required": "fail"})
    before = copy.deepcopy(target)
    annotated = annotate(target, baseline)
    assert target == before
    assert annotated is not target and annotated["findings"][0] is not target["findings"][0]
    assert {k: v for k, v in annotated.items() if k != "findings"} == {
        k: v for k, v in target.items() if k != "findings"
    }


def test_missing_targets_and_the_scan_metadata(baseline):
    assert baseline.missing_targets(["payments-api", "brand-new"]) == ["legacy-db", "old-proxy"]
    assert baseline.missing_targets(["payments-api", "legacy-db", "old-proxy"]) == []
    assert baseline.report(["legacy-db"]) == {
        "file": "last-week.json",
        "missing_targets": ["payments-api", "old-proxy"],
    }


def test_annotated_targets_and_baseline_metadata_satisfy_the_schema(baseline):
    targets = [
        annotate(
            _target(
                "payments-api",
                {
                    "client-cert-required": "fail",
                    "tls13-only": "pass",
                    "san-match": "pass",
                    "wrong-ca-rejected": "fail",
                },
            ),
            baseline,
        )
    ]
    document = _document(targets)
    document["scan"]["baseline"] = baseline.report(["payments-api"])
    assert validation_problem(document) is None
    document["targets"][0]["findings"][0]["baseline"] = "regressed"
    assert "regressed" in validation_problem(document)
    document["targets"][0]["findings"][0]["baseline"] = "new"
    document["scan"]["baseline"]["extra"] = 1
    assert validation_problem(document) is not None


# -- load_baseline ----------------------------------------------------------------------


def test_load_baseline_reads_a_saved_report(tmp_path):
    path = tmp_path / "last-week.json"
    path.write_text(json.dumps(_report(LAST_WEEK)), encoding="utf-8")
    baseline = load_baseline(path)
    assert baseline.file == str(path)
    assert baseline.target_names == ("payments-api", "legacy-db", "old-proxy")
    assert baseline.status("payments-api", "wrong-ca-rejected") == "fail"
    assert baseline.status("payments-api", "nope") is None
    assert baseline.status("nope", "tls13-only") is None


def _assert_one_line(error: BaselineError, path: Path, *fragments: str) -> None:
    message = str(error)
    assert "\n" not in message
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


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
    document = _report(LAST_WEEK)
    document["targets"][1]["findings"][0]["status"] = "broken"
    wrong.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(BaselineError) as raised:
        load_baseline(wrong)
    _assert_one_line(raised.value, wrong, "broken", "targets[1]")


def test_a_baseline_with_duplicate_target_names_is_refused(tmp_path):
    path = tmp_path / "dup.json"
    document = _document([_target("svc", {"tls13-only": "pass"}), _target("svc", {"tls13-only": "fail"})])
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(BaselineError) as raised:
        load_baseline(path)
    _assert_one_line(raised.value, path, "'svc' (#2)", "matched by name")


def test_a_target_that_could_not_be_scanned_is_compared_too():
    old = _document([_target("svc", {}, error="connection refused")])
    baseline = Baseline.from_document(old)
    assert baseline.status("svc", None) == "error"
    new = _document([_target("svc", {"tls13-only": "pass"})])
    diff = diff_reports(old, new)
    assert diff.better == [
        DiffEntry(
            "svc", None, "error", None, "no longer reported (was: target could not be scanned: connection refused)"
        )
    ]
    assert diff_reports(new, old).worse == [
        DiffEntry("svc", None, None, "error", "target could not be scanned: connection refused")
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
    assert diff.worse[0] == DiffEntry("svc", "a", "pass", "fail", "a fail")

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
    assert diff.worse == [DiffEntry("svc", "new-fail", None, "warn", "new-fail warn")]
    assert diff.better == [DiffEntry("svc", "gone-fail", "fail", None, "no longer reported (was: gone-fail fail)")]
    assert diff.added_targets == diff.removed_targets == []


def test_an_added_target_is_listed_and_its_failures_are_worse():
    old = _report({"svc": {"a": "pass"}})
    new = _report({"svc": {"a": "pass"}, "fresh": {"a": "fail", "b": "pass"}, "clean": {"a": "pass"}})
    diff = diff_reports(old, new)
    assert diff.added_targets == ["fresh", "clean"]
    assert diff.worse == [DiffEntry("fresh", "a", None, "fail", "a fail")]
    assert diff.better == [] and diff.removed_targets == []
    assert not diff.empty


def test_a_removed_target_is_listed_and_its_failures_are_gone():
    old = _report({"svc": {"a": "pass"}, "retired": {"a": "fail", "b": "pass"}})
    new = _report({"svc": {"a": "pass"}})
    diff = diff_reports(old, new)
    assert diff.removed_targets == ["retired"]
    assert diff.better == [DiffEntry("retired", "a", "fail", None, "target no longer scanned (was: a fail)")]
    assert diff.worse == [] and diff.added_targets == []


def test_a_rename_is_one_target_removed_and_one_added():
    diff = diff_reports(_report({"old-name": {"a": "fail"}}), _report({"new-name": {"a": "fail"}}))
    assert diff.added_targets == ["new-name"] and diff.removed_targets == ["old-name"]
    assert [e.target for e in diff.worse] == ["new-name"]
    assert [e.target for e in diff.better] == ["old-name"]


def test_format_lines_and_escaping():
    old = _report({"svc": {"a": "pass", "b": "fail"}, "retired": {"a": "pass"}})
    new = _report({"svc": {"a": "fail", "b": "pass"}, "fresh\x1b[31m": {"a": "pass"}})
    new["targets"][0]["findings"][0]["summary"] = "evil \x1b]0;pwned\x07 summary\nsecond line"
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


def _with(status: str, **extra: Any) -> dict[str, Any]:
    finding = _finding("tls13-only", status)
    finding.update(extra)
    return finding


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
        (_with("fail", waived=False, waiver={"expired": True}), False, "fail"),
        (_with("fail", baseline="new", waived=True), True, None),
    ],
)
def test_gating_status(finding, fail_on_new, expected):
    assert gating_status(finding, fail_on_new) == expected


def test_gating_feeds_exit_code():
    findings = [_with("fail", baseline="known"), _with("warn", baseline="new", waived=True), _with("pass")]
    statuses = [s for s in (gating_status(f, True) for f in findings) if s is not None]
    assert exit_code(statuses, ["fail"], fail_on="warn") == ExitCode.OK
    statuses = [s for s in (gating_status(f, False) for f in findings) if s is not None]
    assert exit_code(statuses, ["fail"], fail_on="warn") == ExitCode.FINDINGS


def test_gating_target_status():
    unreachable = _target("svc", {"a": "error", "b": "error"}, error="connection refused")
    assert gating_target_status(unreachable) == "error"
    unreachable["findings"][0]["waived"] = True
    assert gating_target_status(unreachable) == "error"
    unreachable["findings"][1]["waived"] = True
    assert gating_target_status(unreachable) is None
    assert gating_target_status(_target("svc", {"a": "fail"})) == "fail"
    assert gating_target_status(_target("svc", {}, error="refused")) == "error"
