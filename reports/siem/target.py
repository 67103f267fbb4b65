"""The facts every event of one target shares, read once per target, in neither flavor's terms.

The address is split into host and port (``host:port``, ``1.2.3.4:port``, ``[v6]:port``);
the host is an IP only when it is an IP literal, and the target's domain is the host when
it is a DNS name, else the server name. The time is the target's ``scanned_at``, the leaf
certificate the first one the server presented, and the handshake the events describe
is chosen by ``_reference_probe``. ``reports.siem_ecs`` and ``reports.siem_ocsf`` turn
these into their own fields.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from mtls_audit.reports.siem.values import as_text, epoch_ms, iso, parse_time

_TLS_VERSION_ORDER = {"TLSv1": 0, "TLSv1.1": 1, "TLSv1.2": 2, "TLSv1.3": 3}
_DNS_NAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_*](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?\Z")


class TargetContext:
    """What every finding event of one target shares, computed once per target."""

    def __init__(self, target: dict[str, Any]) -> None:
        self.target = target
        self.name = as_text(target.get("name"))
        self.address = as_text(target.get("address"))
        self.server_name = as_text(target.get("server_name"))
        self.tags = [str(tag) for tag in target.get("tags") or []]
        self.host, self.port = _split_address(self.address)
        self.ip = _ip_literal(self.host)
        if self.ip is None and _is_dns_name(self.host):
            self.domain: str | None = self.host
        elif _is_dns_name(self.server_name):
            self.domain = self.server_name
        else:
            self.domain = None
        scanned = parse_time(target.get("scanned_at"))
        self.timestamp = iso(scanned) if scanned else None
        self.time_ms = epoch_ms(scanned) if scanned else None
        offset = scanned.utcoffset() if scanned else None
        self.timezone_offset = int(offset.total_seconds() // 60) if offset is not None else None
        certificates = [c for c in target.get("certificates") or [] if isinstance(c, dict)]
        self.leaf = certificates[0] if certificates else None
        probes = [p for p in target.get("probes") or [] if isinstance(p, dict)]
        self.has_probes = bool(probes)
        self.probe = _reference_probe(probes)

    def sni(self) -> str | None:
        if self.probe and self.probe.get("sni"):
            return as_text(self.probe["sni"])
        return self.server_name if _is_dns_name(self.server_name) else None


def _reference_probe(probes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The handshake the ``tls.*`` fields describe: our own identity's completed handshake
    on the highest version, else any completed handshake (no identity configured)."""
    completed = [p for p in probes if p.get("handshake_completed") and p.get("negotiated_version")]
    if not completed:
        return None

    def key(probe: dict[str, Any]) -> tuple[int, int]:
        version: Any = probe.get("negotiated_version")  # untyped JSON, looked up as is
        return (probe.get("presented") == "valid", _TLS_VERSION_ORDER.get(version, -1))

    return max(completed, key=key)


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
