"""Exit codes: a nightly job must tell "an endpoint got worse" from "we could not look".

0  no finding at or above --fail-on
1  at least one finding at or above --fail-on (default: fail)
2  usage, inventory or credential error: nothing was scanned
3  nothing failed, but some target or check could not be decided (status error)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any


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


def exit_code(finding_statuses: Iterable[str], target_statuses: Iterable[str], fail_on: str = "fail") -> ExitCode:
    failing = {"fail"} if fail_on == "fail" else {"fail", "warn"}
    finding_statuses = list(finding_statuses)
    if any(status in failing for status in finding_statuses):
        return ExitCode.FINDINGS
    if any(status == "error" for status in finding_statuses) or any(s == "error" for s in target_statuses):
        return ExitCode.INCOMPLETE
    return ExitCode.OK


def scan_exit_code(targets: Iterable[Mapping[str, Any]], fail_on: str = "fail", fail_on_new: bool = False) -> ExitCode:
    """The exit code for finished targets (dicts with ``status`` and ``findings``,
    as in the JSON report or the runner's digests): waived findings never count,
    and with ``fail_on_new`` only regressions against the baseline fail the job."""
    from mtls_audit.scanner.triage.baseline import gating_status, gating_target_status

    targets = [{"status": target.get("status"), "findings": _findings(target)} for target in targets]
    finding_statuses = [
        status
        for target in targets
        for finding in _findings(target)
        if (status := gating_status(finding, fail_on_new)) is not None
    ]
    target_statuses = [
        status for target in targets if (status := gating_target_status(target, fail_on_new)) is not None
    ]
    return exit_code(finding_statuses, target_statuses, fail_on)


def _findings(target: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    findings = target.get("findings") or []
    return list(findings.values()) if isinstance(findings, Mapping) else list(findings)
