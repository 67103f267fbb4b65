"""What a team already knows about its findings: last run's baseline (new, known,
resolved) and accepted risks (waivers with an expiry). Applied to each target's
result on its way to the reports, so every report shows the same triage."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date

from mtls_audit.scanner.model.report import ScanInfo, TargetReport
from mtls_audit.scanner.triage.baseline import Baseline
from mtls_audit.scanner.triage.waivers import Waivers


@dataclass
class Triage:
    today: date  # waivers are valid through their expiry day, judged on the scan's date
    baseline: Baseline | None = None
    waivers: Waivers | None = None

    def apply(self, target: TargetReport) -> TargetReport:
        if self.baseline is not None:
            target = self.baseline.annotate(target)
        if self.waivers is not None:
            target = self.waivers.apply(target, self.today)
        return target

    def complete(self, scan: ScanInfo, seen_targets: Iterable[str]) -> ScanInfo:
        """The scan with its ``baseline`` and ``waivers`` reports, once every target is in."""
        return replace(
            scan,
            baseline=self.baseline.report(seen_targets) if self.baseline is not None else None,
            waivers=self.waivers.report(self.today) if self.waivers is not None else None,
        )
