"""Exit codes: a nightly job must tell "an endpoint got worse" from "we could not look".

    0  no finding at or above --fail-on
    1  at least one finding at or above --fail-on (default: fail)
    2  usage, inventory or credential error: nothing was scanned
    3  nothing failed, but some target or check could not be decided (status error)
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


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
