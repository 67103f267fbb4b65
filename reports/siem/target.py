"""The facts every event of one target shares, read once per target, in neither flavor's terms.

The address is split into host and port (``host:port``, ``1.2.3.4:port``, ``[v6]:port``);
the host is an IP only when it is an IP literal, and the target's domain is the host when
it is a DNS name, else the server name. The time is the target's ``scanned_at``, the leaf
certificate the first one the server presented, and the handshake the events describe
is chosen by ``_reference_probe``. ``reports.siem.ecs`` and ``reports.siem.ocsf`` turn
these into their own fields.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC

from mtls_audit.reports.siem.values import epoch_ms, iso
from mtls_audit.scanner.model.observations import Presented, ProbeObservation, TLSVersion
from mtls_audit.scanner.model.report import CertificateSummary, TargetReport

_DNS_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_*](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?\Z")


class TargetContext:
    """What every finding event of one target shares, computed once per target."""

    def __init__(self, target: TargetReport) -> None:
        self.target = target
        self.name = target.name
        self.address = target.address
        self.server_name = target.server_name
        self.tags = list(target.tags)
        self.host, self.port = _split_address(self.address)
        self.ip = _ip_literal(self.host)
        if self.ip is None and _is_dns_name(self.host):
            self.domain: str | None = self.host
        elif _is_dns_name(self.server_name):
            self.domain = self.server_name
        else:
            self.domain = None
        scanned = target.scanned_at if target.scanned_at.tzinfo else target.scanned_at.replace(tzinfo=UTC)
        self.timestamp = iso(scanned)
        self.time_ms = epoch_ms(scanned)
        offset = scanned.utcoffset()
        self.timezone_offset = int(offset.total_seconds() // 60) if offset is not None else None
        self.leaf: CertificateSummary | None = target.certificates[0] if target.certificates else None
        self.has_probes = bool(target.probes)
        self.probe = _reference_probe(target.probes)

    def sni(self) -> str | None:
        if self.probe is not None and self.probe.sni:
            return self.probe.sni
        return self.server_name if _is_dns_name(self.server_name) else None


def _reference_probe(probes: tuple[ProbeObservation, ...]) -> ProbeObservation | None:
    """The handshake the ``tls.*`` fields describe: our own identity's completed handshake
    on the highest version, else any completed handshake (no identity configured)."""
    completed = [p for p in probes if p.handshake_completed and p.negotiated_version]
    if not completed:
        return None

    def key(probe: ProbeObservation) -> tuple[bool, int]:
        return (probe.spec.presented is Presented.VALID, _version_rank(probe.negotiated_version))

    return max(completed, key=key)


def _version_rank(version: str | None) -> int:
    try:
        return TLSVersion(version or "").rank
    except ValueError:
        return -1


def _split_address(address: str) -> tuple[str, int | None]:
    """ "host:port", "1.2.3.4:port" or "[v6]:port" -> (host, port)."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, _, port_text = address.partition(":")
    else:
        host, port_text = address, ""
    port = int(port_text) if port_text.isdigit() and 0 <= int(port_text) <= 65535 else None
    return host, port


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _is_dns_name(name: str) -> bool:
    return bool(name) and _ip_literal(name) is None and _DNS_NAME.match(name) is not None
