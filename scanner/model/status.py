"""Finding statuses and severities: the one place their names and order are defined."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"  # could not decide: never silently a pass
    SKIP = "skip"

    @property
    def rank(self) -> int:
        """Badness: a target's status is the worst of its findings'."""
        return _STATUS_RANK[self]

    @property
    def failing(self) -> bool:
        """Something a person has to act on (fail, warn, or an undecided error)."""
        return self in (Status.FAIL, Status.WARN, Status.ERROR)


_STATUS_RANK = {Status.SKIP: 0, Status.PASS: 1, Status.WARN: 2, Status.ERROR: 3, Status.FAIL: 4}


def worst_status(statuses: Iterable[Status], default: Status = Status.SKIP) -> Status:
    return max(statuses, key=lambda status: status.rank, default=default)


# The order a person reads counts in: what needs attention first.
DISPLAY_ORDER = (Status.FAIL, Status.ERROR, Status.WARN, Status.PASS, Status.SKIP)


class Severity(enum.StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)
