"""What a team already knows about its findings: last run's baseline (new, known,
resolved) and accepted risks (waivers with an expiry). Applied to each target's
result on its way to the reports, so every report shows the same triage."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from mtls_audit.scanner.triage.baseline import Baseline, annotate
from mtls_audit.scanner.triage.waivers import Waivers


@dataclass
class Triage:
    today: date  # waivers are valid through their expiry day, judged on the scan's date
    baseline: Baseline | None = None
    waivers: Waivers | None = None

    def apply(self, target: dict[str, Any]) -> dict[str, Any]:
        if self.baseline is not None:
            target = annotate(target, self.baseline)
        if self.waivers is not None:
            target = self.waivers.apply(target, self.today)
        return target

    def scan_metadata(self, seen_targets: Iterable[str]) -> dict[str, Any]:
        """The report's ``scan.baseline`` and ``scan.waivers``, once every target is in."""
        extra: dict[str, Any] = {}
        if self.baseline is not None:
            extra["baseline"] = self.baseline.report(seen_targets)
        if self.waivers is not None:
            extra["waivers"] = self.waivers.report(self.today)
        return extra
