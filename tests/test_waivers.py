"""Waivers: loading and validation, matching, expiry, and the scan-metadata report."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mtls_audit.reports.json_report import validation_problem
from mtls_audit.scanner.model.finding import Finding, WaiverNote
from mtls_audit.scanner.model.report import ReportDocument, ScanInfo, Summary, TargetReport
from mtls_audit.scanner.model.status import Severity, Status
from mtls_audit.scanner.triage.baseline import gating_status
from mtls_audit.scanner.triage.waivers import WaiverError, Waivers, load_waivers

CHECKS = frozenset(
    {
        "client-cert-required",
        "wrong-ca-rejected",
        "tls13-only",
        "chain-complete",
        "san-match",
        "expiry-soon",
    }
)
TODAY = date(2026, 11, 26)

EXAMPLE = """\
waivers:
  - target: legacy-*          # target name or glob (fnmatch)
    check: tls13-only         # check id
    reason: vendor appliance, TLS 1.3 in Q3 firmware
    owner: netsec@example.com
    expires: 2027-03-31       # date; the waiver stops applying after this day
  - target: payments-api
    check: expiry-soon
    reason: renewal booked
    owner: payments-team
    expires: 2026-11-30
  - target: db-[ab]
    check: chain-complete
    reason: client ships the intermediate
    owner: dba@example.com
    expires: "2026-12-31"
  - target: retired-service
    check: san-match
    reason: being decommissioned
    owner: ops
    expires: 2026-01-31
"""

LEGACY_NOTE = WaiverNote(
    target="legacy-*",
    check="tls13-only",
    reason="vendor appliance, TLS 1.3 in Q3 firmware",
    owner="netsec@example.com",
    expires=date(2027, 3, 31),
)


def _finding(check: str, status: str) -> Finding:
    return Finding(check=check, status=Status(status), severity=Severity.MEDIUM, summary=f"{check} {status}")


def _target(name: str, statuses: dict[str, str]) -> TargetReport:
    return TargetReport(
        name=name,
        address="10.0.0.5:8443",
        server_name="svc.internal",
        tags=(),
        status=Status.FAIL,
        error=None,
        scanned_at=datetime(2026, 11, 26, 10, 0, 5, tzinfo=UTC),
        accepted_versions=(),
        client_auth=(),
        certificates=(),
        findings=tuple(_finding(c, s) for c, s in statuses.items()),
        probes=(),
    )


def _write(tmp_path: Path, text: str, name: str = "waivers.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def waivers(tmp_path) -> Waivers:
    return load_waivers(_write(tmp_path, EXAMPLE), CHECKS)


def _state(target: TargetReport) -> dict[str, tuple[bool, WaiverNote | None]]:
    return {f.check: (f.waived, f.waiver) for f in target.findings}


def _first(waivers: Waivers, name: str, statuses: dict[str, str], today: date = TODAY) -> Finding:
    return waivers.apply(_target(name, statuses), today).findings[0]


# -- loading ------------------------------------------------------------------------------


def test_load_the_documented_example(waivers, tmp_path):
    assert len(waivers) == 4
    first = list(waivers)[0]
    assert (first.target, first.check, first.owner) == ("legacy-*", "tls13-only", "netsec@example.com")
    assert first.reason == "vendor appliance, TLS 1.3 in Q3 firmware"
    assert first.expires == date(2027, 3, 31)
    assert list(waivers)[2].expires == date(2026, 12, 31)  # a quoted date works too
    assert waivers.file == str(tmp_path / "waivers.yaml")


def test_an_empty_list_is_no_waivers(tmp_path):
    assert len(load_waivers(_write(tmp_path, "waivers: []\n"), CHECKS)) == 0
    assert len(load_waivers(_write(tmp_path, "waivers:\n# - target: x\n"), CHECKS)) == 0


def test_known_checks_none_skips_the_check_id_test(tmp_path):
    path = _write(tmp_path, EXAMPLE.replace("tls13-only", "from-a-plugin"))
    assert list(load_waivers(path))[0].check == "from-a-plugin"


# -- matching -----------------------------------------------------------------------------


def test_glob_and_exact_matching(waivers):
    cases = {
        "legacy-db": True,
        "legacy-": True,
        "legacy-mail.internal": True,
        "my-legacy-db": False,
        "Legacy-db": False,
        "legacy": False,
    }
    for name, expected in cases.items():
        assert _first(waivers, name, {"tls13-only": "fail"}).waived is expected, name
    assert _first(waivers, "db-a", {"chain-complete": "fail"}).waived
    assert not _first(waivers, "db-c", {"chain-complete": "fail"}).waived
    assert _first(waivers, "payments-api", {"expiry-soon": "warn"}).waived
    assert not _first(waivers, "payments-api-2", {"expiry-soon": "warn"}).waived


def test_apply_marks_failing_findings_and_keeps_their_status(waivers):
    target = _target("legacy-db", {"tls13-only": "fail", "san-match": "fail", "chain-complete": "pass"})
    applied = waivers.apply(target, TODAY)
    assert applied is not target
    assert [(f.waived, f.waiver) for f in target.findings] == [(False, None)] * 3  # the input keeps no marks
    assert [replace(f, waived=False, waiver=None) for f in applied.findings] == list(target.findings)
    assert [f.status for f in applied.findings] == ["fail", "fail", "pass"]
    assert _state(applied) == {
        "tls13-only": (True, LEGACY_NOTE),
        "san-match": (False, None),  # no waiver for this check
        "chain-complete": (False, None),
    }
    # What the JSON report shows for it:
    assert applied.findings[0].to_dict()["waiver"] == {
        "target": "legacy-*",
        "check": "tls13-only",
        "reason": "vendor appliance, TLS 1.3 in Q3 firmware",
        "owner": "netsec@example.com",
        "expires": "2027-03-31",
    }
    assert applied.findings[0].to_dict()["waived"] is True
    assert gating_status(applied.findings[0]) is None
    assert gating_status(applied.findings[1]) is Status.FAIL


@pytest.mark.parametrize("status", ["fail", "warn", "error"])
def test_every_failing_status_can_be_waived(waivers, status):
    assert _first(waivers, "legacy-x", {"tls13-only": status}).waived is True


@pytest.mark.parametrize("status", ["pass", "skip"])
def test_a_passing_finding_needs_no_waiver(waivers, status):
    applied = waivers.apply(_target("legacy-x", {"tls13-only": status}), TODAY)
    assert _state(applied) == {"tls13-only": (False, None)}
    assert waivers.report(TODAY).unused[0].target == "legacy-*"


# -- expiry -------------------------------------------------------------------------------


def test_a_waiver_is_valid_through_its_expiry_day(waivers):
    expires = date(2027, 3, 31)
    for today in (expires - timedelta(days=1), expires):
        finding = _first(waivers, "legacy-db", {"tls13-only": "fail"}, today)
        assert finding.waived is True and finding.waiver == LEGACY_NOTE
        assert "expired" not in finding.to_dict()["waiver"]
    finding = _first(waivers, "legacy-db", {"tls13-only": "fail"}, expires + timedelta(days=1))
    assert finding.waived is False
    assert finding.waiver == replace(LEGACY_NOTE, expired=True)
    assert finding.to_dict()["waiver"] == {
        "target": "legacy-*",
        "check": "tls13-only",
        "reason": "vendor appliance, TLS 1.3 in Q3 firmware",
        "owner": "netsec@example.com",
        "expires": "2027-03-31",
        "expired": True,
    }
    assert finding.status is Status.FAIL
    assert gating_status(finding) is Status.FAIL  # an expired waiver fails the job again


def test_expired_waivers_are_reported_and_not_applied(waivers):
    finding = _first(waivers, "retired-service", {"san-match": "fail"})
    assert finding.waived is False
    assert finding.waiver is not None and finding.waiver.expired is True
    report = waivers.report(TODAY)
    assert [w.target for w in report.expired] == ["retired-service"]
    assert report.expired[0].expired is True
    assert report.to_dict()["expired"][0]["expired"] is True


def test_unused_waivers_are_reported(waivers, tmp_path):
    waivers.apply(_target("legacy-db", {"tls13-only": "fail"}), TODAY)
    waivers.apply(_target("payments-api", {"expiry-soon": "pass"}), TODAY)  # fixed: no longer needs it
    report = waivers.report(TODAY)
    assert report.file == str(tmp_path / "waivers.yaml")
    assert [(w.target, w.check) for w in report.unused] == [
        ("payments-api", "expiry-soon"),
        ("db-[ab]", "chain-complete"),
    ]
    # the expired one is listed under expired only
    assert [(w.target, w.check) for w in report.expired] == [("retired-service", "san-match")]
    # on a later day the 2026-11-30 waiver has expired and moves over
    later = waivers.report(date(2026, 12, 1))
    assert [w.target for w in later.expired] == ["payments-api", "retired-service"]
    assert [w.target for w in later.unused] == ["db-[ab]"]


def test_a_waiver_in_force_wins_over_an_expired_one(tmp_path):
    path = _write(
        tmp_path,
        """\
        waivers:
          - {target: "legacy-*", check: tls13-only, reason: old, owner: a, expires: 2026-01-01}
          - {target: legacy-db, check: tls13-only, reason: renewed, owner: b, expires: 2027-01-01}
    """,
    )
    waivers = load_waivers(path, CHECKS)
    finding = _first(waivers, "legacy-db", {"tls13-only": "fail"})
    assert finding.waived is True and finding.waiver is not None and finding.waiver.reason == "renewed"


def test_a_waiver_note_names_the_waiver_as_written(waivers):
    first = list(waivers)[0]
    assert first.note() == LEGACY_NOTE
    assert first.note(expired=True) == replace(LEGACY_NOTE, expired=True)


def test_applied_targets_and_the_report_satisfy_the_schema(waivers):
    targets = (
        waivers.apply(_target("legacy-db", {"tls13-only": "fail", "san-match": "pass"}), TODAY),
        waivers.apply(_target("retired-service", {"san-match": "fail"}), TODAY),
    )
    scan = ScanInfo(
        started=datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC),
        finished=None,
        tool_version="0.1.0",
        inventory=None,
        options={},
        waivers=waivers.report(TODAY),
    )
    document = ReportDocument(scan=scan, summary=Summary(2, {}, {}), targets=targets).to_dict()
    assert document["scan"]["waivers"]["expired"][0]["target"] == "retired-service"
    assert validation_problem(document) is None
    document["targets"][0]["findings"][0]["waiver"]["expires"] = "next year"
    assert validation_problem(document) is not None


# -- bad input ----------------------------------------------------------------------------


VALID = {"target": "legacy-*", "check": "tls13-only", "reason": "vendor", "owner": "netsec", "expires": "2027-03-31"}


def _entry(**changes: Any) -> str:
    fields = {**VALID, **changes}
    lines = []
    for key, value in fields.items():
        if value is _DROP:
            continue
        lines.append(f"{key}: {value}")
    return "  - " + "\n    ".join(lines) + "\n"


_DROP = object()


def _file(*entries: str) -> str:
    return "waivers:\n" + "".join(entries)


ENTRY_CASES = [
    # (id, the second entry, field, fragment of the reason)
    ("unknown-key", _entry(ownr="x"), "ownr", "unknown key 'ownr'"),
    ("typo-hint", _entry(expire="2027-01-01"), "expire", "did you mean 'expires'?"),
    ("missing-target", _entry(target=_DROP), "target", "missing"),
    ("missing-check", _entry(check=_DROP), "check", "missing"),
    ("missing-reason", _entry(reason=_DROP), "reason", "missing"),
    ("missing-owner", _entry(owner=_DROP), "owner", "missing"),
    ("missing-expires", _entry(expires=_DROP), "expires", "missing"),
    ("bad-day", _entry(expires="2027-02-30"), "expires", "'2027-02-30' is not a valid date"),
    ("bad-month", _entry(expires="2027-13-01"), "expires", "not a valid date"),
    ("words", _entry(expires="next year"), "expires", "'next year' is not a date YYYY-MM-DD"),
    ("short", _entry(expires="2027-3-31"), "expires", "not a date YYYY-MM-DD"),
    ("date-time", _entry(expires="2027-03-31T00:00:00"), "expires", "not a date YYYY-MM-DD"),
    ("tagged-date-time", _entry(expires="!!timestamp 2027-03-31 10:00:00"), "expires", "not a date and time"),
    ("number", _entry(expires="20270331"), "expires", "got an integer 20270331"),
    ("null-date", _entry(expires="null"), "expires", "got null"),
    ("unknown-check", _entry(check="tls13-onyl"), "check", "unknown check id 'tls13-onyl'"),
    ("check-hint", _entry(check="tls13-onyl"), "check", "did you mean 'tls13-only'?"),
    ("empty-reason", _entry(reason='""'), "reason", "must not be empty"),
    ("blank-owner", _entry(owner='"   "'), "owner", "must not be empty"),
    ("null-owner", _entry(owner="null"), "owner", "must be a non-empty string, got null"),
    ("list-reason", _entry(reason="[a, b]"), "reason", "got a list"),
    ("numeric-target", _entry(target="42"), "target", "got an integer 42"),
    ("empty-target", _entry(target='""'), "target", "must not be empty"),
    ("multiline-owner", _entry(owner='"a\\nb"'), "owner", "single line"),
    ("duplicate", _entry(), "target", "duplicate of waiver #1"),
]


@pytest.mark.parametrize(("second", "field", "fragment"), [c[1:] for c in ENTRY_CASES], ids=[c[0] for c in ENTRY_CASES])
def test_a_bad_entry_is_one_line_naming_file_entry_and_field(tmp_path, second, field, fragment):
    path = _write(tmp_path, _file(_entry(), second))
    with pytest.raises(WaiverError) as raised:
        load_waivers(path, CHECKS)
    error = raised.value
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{path}: waiver #2")
    assert f"field '{field}': " in message
    assert fragment in message
    assert (error.source, error.entry, error.field) == (str(path), 2, field)


def test_the_entry_label_names_the_target_and_check(tmp_path):
    path = _write(tmp_path, _file(_entry(owner='""')))
    with pytest.raises(WaiverError) as raised:
        load_waivers(path, CHECKS)
    assert str(raised.value) == (
        f"{path}: waiver #1 (target 'legacy-*', check 'tls13-only'): field 'owner': must not be empty"
    )


def test_an_entry_that_is_not_a_mapping(tmp_path):
    path = _write(tmp_path, "waivers:\n  - legacy-db tls13-only\n")
    with pytest.raises(WaiverError) as raised:
        load_waivers(path, CHECKS)
    message = str(raised.value)
    assert message == f"{path}: waiver #1: expected a mapping with target, check, reason, owner, expires, got a string"
    assert raised.value.entry == 1


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "is empty"),
        ("- target: x\n", "expected a mapping with a 'waivers' list, got a list"),
        ("waiver: []\n", "unknown key 'waiver' at top level"),
        ("targets: []\nwaivers: []\n", "unknown key 'targets'"),
        ("{}\n", "missing key 'waivers'"),
        ("waivers: legacy-db\n", "'waivers' must be a list, got a string"),
        ("waivers:\n  - target: a\n    target: b\n", "duplicate key 'target'"),
        ("waivers: [\n", "invalid YAML at line"),
        ("waivers:\n  - target: [unclosed\n", "invalid YAML at line"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file(tmp_path, text, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(WaiverError) as raised:
        load_waivers(path, CHECKS)
    message = str(raised.value)
    assert "\n" not in message
    assert str(path) in message
    assert fragment in message


def test_an_unreadable_or_binary_file(tmp_path):
    missing = tmp_path / "absent.yaml"
    with pytest.raises(WaiverError, match=f"cannot read {missing}"):
        load_waivers(missing, CHECKS)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"waivers: [\xff\xfe]\n")
    with pytest.raises(WaiverError, match="not UTF-8"):
        load_waivers(binary, CHECKS)


def test_control_characters_in_a_bad_value_are_not_echoed_raw(tmp_path):
    path = _write(tmp_path, _file(_entry(check='"\\e[31mred"')))
    with pytest.raises(WaiverError) as raised:
        load_waivers(path, CHECKS)
    message = str(raised.value)
    assert "\x1b" not in message and "\\x1b[31mred" in message
