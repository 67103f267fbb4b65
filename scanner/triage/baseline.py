"""Regressions against an earlier report (last week's ``report.json``).

Everything here works on the typed model: a baseline is built from a
``ReportDocument`` (``Baseline.from_document``; reading the file is the command
line's job, ``scanner.cli.scan_run.load_baseline``), and findings are ``Finding``
values on a ``TargetReport``.

Targets are matched **by name** (the inventory guarantees names are unique): a renamed
target is a new target, and all its failing findings are ``new``; the old name is a
missing target. Findings are matched by (target name, check id).

``Baseline.annotate(target)`` returns the ``TargetReport`` with each finding's
``baseline`` set to a ``BaselineLabel`` (``Baseline.label`` decides one pair):

* ``NEW``: the finding is failing (``Status.failing``: fail, warn or error) and the
  baseline had this pair passing, skipped or absent, **or failing less badly**
  (warn → fail, error → fail, warn → error): an escalation is a regression, and
  ``--fail-on-new`` must catch a certificate that was expiring last week and has
  expired now;
* ``KNOWN``: failing now, and failing at least as badly in the baseline;
* ``RESOLVED``: pass now, failing in the baseline;
* ``None``: everything else (passing both times, or skipped now).

``Baseline.report(seen_names)`` is the ``BaselineReport`` of ``ScanInfo.baseline``: the
file and the baseline's targets this scan did not report.

``diff_reports(old, new)`` compares two ``ReportDocument``s for ``mtls-audit diff OLD
NEW``. Statuses are ordered pass = skip < warn < error < fail (``Status.rank``); a
move up that order is *worse*, a move down is *better*, and pass ↔ skip is no change.

``gating_status(finding, fail_on_new)`` says which ``Status`` a finding contributes to
the exit code once waivers and ``--fail-on-new`` are taken into account, and
``gating_target_status`` the same for a target's own status
(``scanner.cli.exit_codes.scan_exit_code`` applies both to the scan's digests).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from mtls_audit.scanner.model.errors import UserError
from mtls_audit.scanner.model.finding import BaselineLabel, Finding
from mtls_audit.scanner.model.report import BaselineReport, ReportDocument, TargetReport
from mtls_audit.scanner.model.status import Status
from mtls_audit.scanner.model.text import printable
from mtls_audit.scanner.model.text import show as _show


class BaselineError(UserError):
    """A baseline report that cannot be used, as one line naming the file."""


def _rank(status: Status | None) -> int:
    """Badness for comparing two scans: skip counts as pass (nothing to act on either way)."""
    if status is None or status is Status.SKIP:
        return Status.PASS.rank
    return status.rank


@dataclass(frozen=True)
class _Entry:
    status: Status
    summary: str


def _index(document: ReportDocument, source: str) -> dict[str, dict[str | None, _Entry]]:
    """target name -> check id -> (status, summary), in report order.

    A target with no findings but an ``error`` (it could not be scanned) is indexed under
    the check ``None`` so its outage is still compared. Duplicate target names or
    duplicate checks within a target make name matching ambiguous: BaselineError.
    """
    index: dict[str, dict[str | None, _Entry]] = {}
    for position, target in enumerate(document.targets, start=1):
        if target.name in index:
            raise BaselineError(
                f"{source}: target {_show(target.name)} (#{position}) appears more than once; "
                "targets are matched by name, so names must be unique",
                file=source,
            )
        checks: dict[str | None, _Entry] = {}
        for finding in target.findings:
            if finding.check in checks:
                raise BaselineError(
                    f"{source}: target {_show(target.name)} (#{position}): "
                    f"check {_show(finding.check)} appears more than once",
                    file=source,
                )
            checks[finding.check] = _Entry(finding.status, finding.summary)
        if not checks and target.error:
            checks[None] = _Entry(Status.ERROR, f"target could not be scanned: {target.error}")
        index[target.name] = checks
    return index


# --------------------------------------------------------------------------- baseline


@dataclass(frozen=True)
class Baseline:
    """The statuses of an earlier scan, by target name and check id."""

    file: str
    statuses: dict[str, dict[str | None, Status]]  # target name -> check -> status

    @classmethod
    def from_document(cls, document: ReportDocument, file: str = "<baseline>") -> Baseline:
        index = _index(document, file)
        return cls(
            file=file,
            statuses={name: {check: entry.status for check, entry in checks.items()} for name, checks in index.items()},
        )

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(self.statuses)

    def status(self, target: str, check: str | None) -> Status | None:
        """The baseline's status for this pair, or None when it was not there."""
        return self.statuses.get(target, {}).get(check)

    def label(self, target: str, check: str | None, status: Status) -> BaselineLabel | None:
        """``new`` / ``known`` / ``resolved`` / None for a finding of the new scan."""
        old = self.status(target, check)
        if status.failing:
            if old is not None and old.failing and _rank(old) >= _rank(status):
                return BaselineLabel.KNOWN
            return BaselineLabel.NEW
        if status is Status.PASS and old is not None and old.failing:
            return BaselineLabel.RESOLVED
        return None

    def missing_targets(self, seen_names: Iterable[str]) -> list[str]:
        """Names in the baseline that the new scan did not report (removed, renamed, or
        not scanned this time), in baseline order."""
        seen = set(seen_names)
        return [name for name in self.statuses if name not in seen]

    def report(self, seen_names: Iterable[str]) -> BaselineReport:
        """The ``scan.baseline`` object of the JSON report."""
        return BaselineReport(self.file, tuple(self.missing_targets(seen_names)))

    def annotate(self, target: TargetReport) -> TargetReport:
        """``target`` with each finding labelled (see the module doc)."""
        return target.with_findings(
            replace(finding, baseline=self.label(target.name, finding.check, finding.status))
            for finding in target.findings
        )


# --------------------------------------------------------------------------- exit code


def gating_status(finding: Finding, fail_on_new: bool = False) -> Status | None:
    """The status this finding contributes to the exit code, or None if it must not count.

    * a waived finding (a waiver that has not expired) never counts, whatever its status;
    * with ``--fail-on-new``, a ``fail`` or ``warn`` counts only when its baseline label
      is ``new`` (a finding that was not compared counts);
    * an ``error`` (could not decide) always counts unless waived, also with
      ``--fail-on-new``: an outage that was there last week is still not a pass, and
      must keep giving exit code 3.
    """
    if finding.waived:
        return None
    if (
        fail_on_new
        and finding.status in (Status.FAIL, Status.WARN)
        and finding.baseline not in (None, BaselineLabel.NEW)
    ):
        return None
    return finding.status


def gating_target_status(status: Status, findings: Iterable[Finding]) -> Status | None:
    """The target status to count: None for an unscanned (``error``) target when every
    one of its findings is waived, its own status otherwise."""
    findings = list(findings)
    if status is Status.ERROR and findings and all(f.waived for f in findings):
        return None
    return status


# --------------------------------------------------------------------------- diff


@dataclass(frozen=True)
class DiffEntry:
    """One change between two reports. ``check`` is None for a target that could not be
    scanned and has no findings; ``old_status`` is None for something new, and
    ``new_status`` None for something that is gone."""

    target: str
    check: str | None
    old_status: Status | None
    new_status: Status | None
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "check": self.check,
            "old_status": self.old_status.value if self.old_status else None,
            "new_status": self.new_status.value if self.new_status else None,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class ReportDiff:
    """What changed from OLD to NEW. ``worse`` non-empty means a regression (``mtls-audit
    diff`` exits 1)."""

    worse: list[DiffEntry] = field(default_factory=list)
    better: list[DiffEntry] = field(default_factory=list)
    added_targets: list[str] = field(default_factory=list)
    removed_targets: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.worse or self.better or self.added_targets or self.removed_targets)

    def format_lines(self) -> list[str]:
        """Human-readable lines, control characters escaped; the last line is a count."""
        lines: list[str] = []
        for word, entries in (("WORSE", self.worse), ("BETTER", self.better)):
            for entry in entries:
                where = printable(entry.target) + (f" {printable(entry.check)}" if entry.check else "")
                old = entry.old_status.value if entry.old_status else "absent"
                new = entry.new_status.value if entry.new_status else "gone"
                lines.append(f"{word} {where}: {old} -> {new}: {printable(entry.summary)}")
        lines += [f"ADDED target {printable(name)}" for name in self.added_targets]
        lines += [f"REMOVED target {printable(name)}" for name in self.removed_targets]
        if self.empty:
            lines.append("no differences")
        else:
            lines.append(
                f"{len(self.worse)} worse, {len(self.better)} better, "
                f"{_plural(len(self.added_targets), 'target')} added, "
                f"{_plural(len(self.removed_targets), 'target')} removed"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "worse": [entry.to_dict() for entry in self.worse],
            "better": [entry.to_dict() for entry in self.better],
            "added_targets": list(self.added_targets),
            "removed_targets": list(self.removed_targets),
        }


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def diff_reports(old: ReportDocument, new: ReportDocument) -> ReportDiff:
    """Compare two reports, targets matched by name.

    * same target, same check: worse/better by ``Status.rank`` (skip counts as pass);
    * a check (or a whole target) only in NEW: *worse* if it is failing, else ignored;
    * a check (or a whole target) only in OLD: *better* if it was failing (``new_status``
      None: resolved or gone), else ignored;
    * added/removed target names are listed in ``added_targets`` / ``removed_targets``.

    Entries follow NEW's order (then OLD's for what is gone). Raises ``BaselineError``
    when a report has duplicate target names.
    """
    old_index = _index(old, "old report")
    new_index = _index(new, "new report")
    diff = ReportDiff()
    for name, checks in new_index.items():
        old_checks = old_index.get(name)
        if old_checks is None:
            diff.added_targets.append(name)
            old_checks = {}
        for check, entry in checks.items():
            before = old_checks.get(check)
            if before is None:
                if entry.status.failing:
                    diff.worse.append(DiffEntry(name, check, None, entry.status, entry.summary))
                continue
            if _rank(entry.status) > _rank(before.status):
                diff.worse.append(DiffEntry(name, check, before.status, entry.status, entry.summary))
            elif _rank(entry.status) < _rank(before.status):
                diff.better.append(DiffEntry(name, check, before.status, entry.status, entry.summary))
        for check, before in old_checks.items():
            if check not in checks and before.status.failing:
                diff.better.append(
                    DiffEntry(name, check, before.status, None, f"no longer reported (was: {before.summary})")
                )
    for name, old_checks in old_index.items():
        if name in new_index:
            continue
        diff.removed_targets.append(name)
        for check, before in old_checks.items():
            if before.status.failing:
                diff.better.append(
                    DiffEntry(name, check, before.status, None, f"target no longer scanned (was: {before.summary})")
                )
    return diff
