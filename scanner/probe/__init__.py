"""One TLS connection per probe, over trio: the only network code."""

from mtls_audit.scanner.probe.http import HttpRequest, parse_status_line
from mtls_audit.scanner.probe.prober import Endpoint, Timeouts, run_probe
from mtls_audit.scanner.probe.requests import AppRequest, request_for

__all__ = ["AppRequest", "Endpoint", "HttpRequest", "Timeouts", "parse_status_line", "request_for", "run_probe"]
