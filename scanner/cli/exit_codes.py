"""Exit codes: a nightly job must tell "an endpoint got worse" from "we could not look".

0  no finding at or above --fail-on
1  at least one finding at or above --fail-on (default: fail)
2  usage, inventory or credential error (an unwritable report path included): nothing
   was scanned
3  nothing failed, but some target or check could not be decided (status error), or a
   report could not be written once the scan had run (1 still wins over 3)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from mtls_audit.scanner.model.report import TargetDigest
from mtls_audit.scanner.model.status import Status
from mtls_audit.scanner.triage import gating_status, gating_target_status


class ExitCode(enum.IntEnum):
    OK = 0
    FINDINGS = 1
    USAGE = 2
    INCOMPLETE = 3


FAIL_ON_LEVELS = ("warn", "fail")

MEANINGS = {
    ExitCode.OK: "no finding at or above --fail-on",
    ExitCode.FINDINGS: "at least one finding at or above --fail-on",
    ExitCode.USAGE: "usage, inventory or credential error",
    ExitCode.INCOMPLETE: "nothing failed, but some target or check could not be decided",
}


def exit_code(finding_statuses: Iterable[Status], target_statuses: Iterable[Status], fail_on: str = "fail") -> ExitCode:
    failing = {Status.FAIL} if fail_on == "fail" else {Status.FAIL, Status.WARN}
    finding_statuses = list(finding_statuses)
    if any(status in failing for status in finding_statuses):
        return ExitCode.FINDINGS
    if Status.ERROR in finding_statuses or Status.ERROR in set(target_statuses):
        return ExitCode.INCOMPLETE
    return ExitCode.OK


def scan_exit_code(targets: Iterable[TargetDigest], fail_on: str = "fail", fail_on_new: bool = False) -> ExitCode:
    """The exit code for finished targets: waived findings never count, and with
    ``fail_on_new`` only regressions against the baseline fail the job."""
    targets = list(targets)
    finding_statuses = [
        status
        for target in targets
        for finding in target.findings
        if (status := gating_status(finding, fail_on_new)) is not None
    ]
    target_statuses = [
        status for target in targets if (status := gating_target_status(target.status, target.findings)) is not None
    ]
    return exit_code(finding_statuses, target_statuses, fail_on)
