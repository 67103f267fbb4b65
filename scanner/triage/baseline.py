"""Regressions against an earlier report (last week's ``report.json``).

Targets are matched **by name** (the inventory guarantees names are unique): a renamed
target is a new target, and all its failing findings are ``new``; the old name is a
missing target. Findings are matched by (target name, check id).

``annotate`` labels each finding of a new scan with ``"baseline"``:

* ``"new"``: the finding is failing (``fail``, ``warn`` or ``error``) and the baseline
  had this pair passing, skipped or absent, **or failing less badly** (``warn`` →
  ``fail``, ``error`` → ``fail``, ``warn`` → ``error``): an escalation is a regression, and
  ``--fail-on-new`` must catch a certificate that was expiring last week and has
  expired now;
* ``"known"``: failing now, and failing at least as badly in the baseline;
* ``"resolved"``: ``pass`` now, failing in the baseline;
* ``None``: everything else (passing both times, or skipped now).

``diff_reports`` compares two whole reports for ``mtls-audit diff OLD NEW``. Statuses are
ordered ``pass`` = ``skip`` < ``warn`` < ``error`` < ``fail`` (``STATUS_ORDER``); a move up
that order is *worse*, a move down is *better*, and pass ↔ skip is no change.

``gating_status`` says which status a finding contributes to the exit code once
waivers and ``--fail-on-new`` are taken into account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtls_audit.reports.json_report import ReportError, load_report
from mtls_audit.scanner.model.text import printable
from mtls_audit.scanner.model.text import show as _show

FAILING = frozenset({"fail", "warn", "error"})
STATUS_ORDER = {"pass": 0, "skip": 0, "warn": 1, "error": 2, "fail": 3}
BASELINE_LABELS = ("new", "known", "resolved")


class BaselineError(Exception):
    """A baseline report that cannot be used, as one line naming the file."""


def _rank(status: str | None) -> int:
    return STATUS_ORDER.get(status, 0) if status is not None else 0


@dataclass(frozen=True)
class _Entry:
    status: str
    summary: str


def _index(document: Mapping[str, Any], source: str) -> dict[str, dict[str | None, _Entry]]:
    """target name -> check id -> (status, summary), in report order.

    A target with no findings but an ``error`` (it could not be scanned) is indexed under
    the check ``None`` so its outage is still compared. Duplicate target names or
    duplicate checks within a target make name matching ambiguous: BaselineError.
    """
    index: dict[str, dict[str | None, _Entry]] = {}
    for position, target in enumerate(document.get("targets") or [], start=1):
        name = target.get("name")
        if name in index:
            raise BaselineError(
                f"{source}: target {_show(name)} (#{position}) appears more than once; "
                "targets are matched by name, so names must be unique"
            )
        checks: dict[str | None, _Entry] = {}
        for finding in target.get("findings") or []:
            check = finding.get("check")
            if check in checks:
                raise BaselineError(
                    f"{source}: target {_show(name)} (#{position}): check {_show(check)} appears more than once"
                )
            checks[check] = _Entry(str(finding.get("status")), str(finding.get("summary", "")))
        if not checks and target.get("error"):
            checks[None] = _Entry("error", f"target could not be scanned: {target['error']}")
        index[name] = checks
    return index


# --------------------------------------------------------------------------- baseline


@dataclass(frozen=True)
class Baseline:
    """The statuses of an earlier scan, by target name and check id."""

    file: str
    statuses: Mapping[str, Mapping[str | None, str]]  # target name -> check -> status

    @classmethod
    def from_document(cls, document: Mapping[str, Any], file: str = "<baseline>") -> Baseline:
        index = _index(document, file)
        return cls(
            file=file,
            statuses={name: {check: entry.status for check, entry in checks.items()} for name, checks in index.items()},
        )

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(self.statuses)

    def status(self, target: str, check: str | None) -> str | None:
        """The baseline's status for this pair, or None when it was not there."""
        return self.statuses.get(target, {}).get(check)

    def label(self, target: str, check: str | None, status: str) -> str | None:
        """``new`` / ``known`` / ``resolved`` / None for a finding of the new scan."""
        old = self.status(target, check)
        if status in FAILING:
            if old in FAILING and _rank(old) >= _rank(status):
                return "known"
            return "new"
        if status == "pass" and old in FAILING:
            return "resolved"
        return None

    def missing_targets(self, seen_names: Iterable[str]) -> list[str]:
        """Names in the baseline that the new scan did not report (removed, renamed, or
        not scanned this time), in baseline order."""
        seen = set(seen_names)
        return [name for name in self.statuses if name not in seen]

    def report(self, seen_names: Iterable[str]) -> dict[str, Any]:
        """The ``scan.baseline`` object of the JSON report."""
        return {"file": self.file, "missing_targets": self.missing_targets(seen_names)}


def load_baseline(path: Path | str) -> Baseline:
    """Read and validate an earlier JSON report. Raises ``BaselineError`` (one line,
    naming the file) when it is unreadable, not JSON, not the schema, or ambiguous."""
    try:
        document = load_report(path)
    except ReportError as error:
        raise BaselineError(f"baseline {error}") from None
    return Baseline.from_document(document, str(path))


def annotate(target: Mapping[str, Any], baseline: Baseline) -> dict[str, Any]:
    """A copy of ``target`` whose findings carry ``"baseline"`` (see the module doc).

    The input is not modified; the copy shares nested values (evidence, probes) with it.
    """
    name: Any = target.get("name")  # untyped JSON, looked up as is
    findings = []
    for finding in target.get("findings") or []:
        copy = dict(finding)
        copy["baseline"] = baseline.label(name, finding.get("check"), finding.get("status"))
        findings.append(copy)
    result = dict(target)
    result["findings"] = findings
    return result


# --------------------------------------------------------------------------- exit code


def gating_status(finding: Mapping[str, Any], fail_on_new: bool = False) -> str | None:
    """The status this finding contributes to the exit code, or None if it must not count.

    * a waived finding (``"waived": true``, i.e. a waiver that has not expired) never
      counts, whatever its status;
    * with ``--fail-on-new``, a ``fail`` or ``warn`` counts only when its ``baseline`` is
      ``"new"`` (a finding without a ``baseline`` key was not compared, and counts);
    * an ``error`` (could not decide) always counts unless waived, also with
      ``--fail-on-new``: an outage that was there last week is still not a pass, and
      must keep giving exit code 3.

    Feed the non-None results to ``scanner.exit_codes.exit_code``.
    """
    if finding.get("waived"):
        return None
    status = finding.get("status")
    if fail_on_new and status in ("fail", "warn") and finding.get("baseline", "new") != "new":
        return None
    return status


def gating_target_status(target: Mapping[str, Any], fail_on_new: bool = False) -> str | None:
    """The target status to feed to ``exit_code``: None for an unscanned (``error``)
    target when every one of its findings is waived, its own status otherwise."""
    status = target.get("status")
    findings = target.get("findings") or []
    if status == "error" and findings and all(f.get("waived") for f in findings):
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
    old_status: str | None
    new_status: str | None
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "check": self.check,
            "old_status": self.old_status,
            "new_status": self.new_status,
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
                old = entry.old_status or "absent"
                new = entry.new_status or "gone"
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


def diff_reports(old: Mapping[str, Any], new: Mapping[str, Any]) -> ReportDiff:
    """Compare two report documents (as from ``load_report``), targets matched by name.

    * same target, same check: worse/better by ``STATUS_ORDER``;
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
                if entry.status in FAILING:
                    diff.worse.append(DiffEntry(name, check, None, entry.status, entry.summary))
                continue
            if _rank(entry.status) > _rank(before.status):
                diff.worse.append(DiffEntry(name, check, before.status, entry.status, entry.summary))
            elif _rank(entry.status) < _rank(before.status):
                diff.better.append(DiffEntry(name, check, before.status, entry.status, entry.summary))
        for check, before in old_checks.items():
            if check not in checks and before.status in FAILING:
                diff.better.append(
                    DiffEntry(name, check, before.status, None, f"no longer reported (was: {before.summary})")
                )
    for name, old_checks in old_index.items():
        if name in new_index:
            continue
        diff.removed_targets.append(name)
        for check, before in old_checks.items():
            if before.status in FAILING:
                diff.better.append(
                    DiffEntry(name, check, before.status, None, f"target no longer scanned (was: {before.summary})")
                )
    return diff
