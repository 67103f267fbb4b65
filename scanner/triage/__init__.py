"""What a team already knows about its findings: a baseline and waivers."""

from mtls_audit.scanner.triage.baseline import (
    Baseline,
    BaselineError,
    diff_reports,
    gating_status,
    gating_target_status,
)
from mtls_audit.scanner.triage.triage import Triage
from mtls_audit.scanner.triage.waivers import WaiverError, Waivers, load_waivers

__all__ = [
    "Baseline",
    "BaselineError",
    "Triage",
    "WaiverError",
    "Waivers",
    "diff_reports",
    "gating_status",
    "gating_target_status",
    "load_waivers",
]
