"""The contract between the engine and a check.

A check is plain data plus a pure function: it names the probes it needs, and turns
a target's observations into exactly one finding. It does no I/O and reads no clock
(the scan time comes in ``Evidence.now``), so every check is tested with hand-built
observations. Third-party checks register a ``Check`` under the entry-point group
``mtls_audit.checks``; ``mtls_audit.checks`` exports everything a plugin needs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mtls_audit.scanner.model.finding import Finding, ReproCommand
from mtls_audit.scanner.model.observations import Presented, ProbeObservation, TLSVersion
from mtls_audit.scanner.model.report import CheckInfo
from mtls_audit.scanner.model.status import Severity, Status
from mtls_audit.scanner.model.target import Target

ENTRY_POINT_GROUP = "mtls_audit.checks"


@dataclass(frozen=True)
class Evidence:
    """Everything a check may look at for one target."""

    target: Target
    observations: tuple[ProbeObservation, ...]
    now: datetime  # the scan's clock, timezone-aware UTC

    def probe(self, presented: Presented, version: TLSVersion) -> ProbeObservation | None:
        """The first attempt of a probe, or None when it did not run."""
        return next(iter(self.attempts(presented, version)), None)

    def attempts(
        self, presented: Presented, version: TLSVersion, identity: str | None = None, request: str | None = None
    ) -> list[ProbeObservation]:
        """Every attempt of a probe (impostors are repeated: ``--rounds``), in order.
        An access-rule probe is named by its identity and request as well."""
        found = [
            o
            for o in self.observations
            if o.spec.presented is presented
            and o.spec.version is version
            and o.spec.identity == identity
            and o.spec.request == request
        ]
        return sorted(found, key=lambda o: o.spec.attempt)


class Needs(enum.StrEnum):
    """Probe families a check can ask for. The engine always probes every
    TLS version as the real identity (every check needs the server's certificate),
    then runs the union of what the enabled checks need on every version the server
    accepted."""

    NO_CERT = "no-cert"
    ROGUE_CA = "rogue-ca"
    SELF_SIGNED = "self-signed"
    ACCESS = "access"  # each access rule's identity, with the rule's request
    MINTED = "minted"  # the issuer-minted control and one-defect copies (needs an issuer)


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: Severity
    needs: frozenset[Needs]
    description: str  # what passing means, for `mtls-audit checks`
    evaluate: Callable[[Evidence], Finding]
    mtls: bool = False  # judged on client authentication: skipped when the target expects none

    def finding(
        self,
        status: Status,
        summary: str,
        remediation: str = "",
        /,
        *,
        commands: Iterable[ReproCommand] = (),
        **evidence: Any,
    ) -> Finding:
        """This check's finding; the other keyword arguments are its evidence.

        ``status``, ``summary`` and ``remediation`` are positional-only, so evidence
        passed as ``**facts`` is never bound to them. ``commands`` repeat the verdict
        by hand; every report shows them.
        """
        return Finding(self.id, status, self.severity, summary, remediation, evidence, tuple(commands))

    @property
    def info(self) -> CheckInfo:
        return CheckInfo(self.id, self.title, self.severity, self.description, self.mtls)
