"""Checks: one module per check, each a pure function of observations.

This package is the plugin API. A plugin imports what it needs from here::

    from mtls_audit.checks import Check, Evidence, Needs, Severity, Status

and registers its ``Check`` under the entry-point group ``mtls_audit.checks``.
"""

from mtls_audit.checks.base import ENTRY_POINT_GROUP, Check, Evidence, Needs
from mtls_audit.checks.common import presented_chain, probe_entry, refused_baseline, unscannable
from mtls_audit.scanner.judge import (
    Attempts,
    Layer,
    Outcome,
    ProbeVerdict,
    accepted_versions,
    judge,
    judge_attempts,
    repro_command,
)
from mtls_audit.scanner.model.finding import Finding, ReproCommand
from mtls_audit.scanner.model.observations import (
    AfterHandshake,
    Alert,
    HttpExchange,
    Phase,
    Presented,
    ProbeObservation,
    ProbeSpec,
    TLSVersion,
)
from mtls_audit.scanner.model.status import Severity, Status
from mtls_audit.scanner.model.target import Target

__all__ = [
    "ENTRY_POINT_GROUP",
    "AfterHandshake",
    "Alert",
    "Attempts",
    "Check",
    "Evidence",
    "Finding",
    "HttpExchange",
    "Layer",
    "Needs",
    "Outcome",
    "Phase",
    "Presented",
    "ProbeObservation",
    "ProbeSpec",
    "ProbeVerdict",
    "ReproCommand",
    "Severity",
    "Status",
    "TLSVersion",
    "Target",
    "accepted_versions",
    "judge",
    "judge_attempts",
    "presented_chain",
    "probe_entry",
    "refused_baseline",
    "repro_command",
    "unscannable",
]
