"""One TLS connection per probe, over trio: the only network code."""

from mtls_audit.scanner.probe.http import HttpRequest, parse_status_line
from mtls_audit.scanner.probe.prober import Endpoint, Timeouts, run_probe

__all__ = ["Endpoint", "HttpRequest", "Timeouts", "parse_status_line", "run_probe"]
