"""Pure verdict rules over observations: let in, blocked, or undecided."""

from mtls_audit.scanner.judge.access import access_verdict, judge_access_attempts
from mtls_audit.scanner.judge.client_auth import (
    Attempts,
    ClientAuth,
    VersionClientAuth,
    classify_client_auth,
    judge_attempts,
)
from mtls_audit.scanner.judge.commands import curl_command, openssl_command, repro_command
from mtls_audit.scanner.judge.matrix import identity_matrix
from mtls_audit.scanner.judge.verdicts import (
    HTTP_BLOCKING_STATUSES,
    REJECTION_ALERTS,
    Layer,
    Outcome,
    ProbeVerdict,
    failure_text,
    judge,
)
from mtls_audit.scanner.judge.versions import VersionSupport, accepted_versions, version_support

__all__ = [
    "HTTP_BLOCKING_STATUSES",
    "REJECTION_ALERTS",
    "Attempts",
    "ClientAuth",
    "Layer",
    "Outcome",
    "ProbeVerdict",
    "VersionClientAuth",
    "VersionSupport",
    "access_verdict",
    "accepted_versions",
    "classify_client_auth",
    "curl_command",
    "failure_text",
    "judge",
    "identity_matrix",
    "judge_access_attempts",
    "judge_attempts",
    "openssl_command",
    "repro_command",
    "version_support",
]
