"""Plans the probes each target needs, runs them under the concurrency limits, hands
the observations to the checks, and streams results out in inventory order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import trio

from mtls_audit.checks.base import Check, Evidence, Finding, Needs, Status
from mtls_audit.checks.common import presented_chain
from mtls_audit.scanner.credentials.impostors import ImpostorFactory
from mtls_audit.scanner.engine.results import TargetResult
from mtls_audit.scanner.judge.verdicts import accepted_versions, classify_client_auth
from mtls_audit.scanner.model.observations import Presented, ProbeObservation, ProbeSpec, TLSVersion
from mtls_audit.scanner.model.target import AppProtocol, ClientAuthExpectation, Target
from mtls_audit.scanner.probe.prober import Endpoint, HttpRequest, Timeouts, run_probe, sni_for
from mtls_audit.scanner.tls.client import ClientCredential

_IMPOSTOR_NEEDS = {
    Needs.NO_CERT: Presented.NO_CERT,
    Needs.ROGUE_CA: Presented.ROGUE_CA,
    Needs.SELF_SIGNED: Presented.SELF_SIGNED,
}


@dataclass(frozen=True)
class ScanOptions:
    timeouts: Timeouts = field(default_factory=Timeouts)
    concurrency: int = 32  # connections in flight across the whole scan
    per_host: int = 4  # connections in flight to one host: be a polite scanner


class _Limits:
    def __init__(self, options: ScanOptions) -> None:
        self.connections = trio.CapacityLimiter(options.concurrency)
        # Targets in flight: enough to keep the connection limit busy, few enough
        # that results leave in roughly inventory order and memory stays flat.
        self.targets = trio.CapacityLimiter(options.concurrency)
        self._per_host: dict[str, trio.CapacityLimiter] = defaultdict(lambda: trio.CapacityLimiter(options.per_host))

    def host(self, host: str) -> trio.CapacityLimiter:
        return self._per_host[host.lower()]


def checks_for(target: Target, checks: Sequence[Check]) -> tuple[list[Check], list[tuple[Check, str]]]:
    """The checks that run on a target, and the others with why they are skipped."""
    enabled: list[Check] = []
    skipped: list[tuple[Check, str]] = []
    for check in checks:
        if check.id in target.disabled_checks:
            skipped.append((check, "disabled for this target in the inventory"))
        elif check.mtls and target.client_auth is ClientAuthExpectation.NONE:
            skipped.append((check, "the inventory expects this target to use no client authentication"))
        else:
            enabled.append(check)
    return enabled, skipped


async def scan(
    targets: Sequence[Target],
    checks: Sequence[Check],
    options: ScanOptions,
    results: trio.MemorySendChannel[TargetResult],
    now: datetime | None = None,
) -> None:
    """Scan every target; send one TargetResult per target, in inventory order."""
    now = now or datetime.now(UTC)
    limits = _Limits(options)
    impostors = ImpostorFactory()
    reorder = _InOrder(results)
    async with results, trio.open_nursery() as nursery:
        for position, target in enumerate(targets):
            # Start a target only when a slot is free: 10,000 waiting tasks would
            # hold 10,000 frames for nothing.
            slot = object()
            await limits.targets.acquire_on_behalf_of(slot)
            nursery.start_soon(_scan_and_send, position, target, checks, options, limits, impostors, reorder, now, slot)


async def _scan_and_send(position, target, checks, options, limits, impostors, reorder, now, slot) -> None:
    try:
        result = await scan_target(target, checks, options, limits, impostors, now)
    finally:
        limits.targets.release_on_behalf_of(slot)
    await reorder.send(position, result)


class _InOrder:
    """Holds results that finish early until the ones before them are sent."""

    def __init__(self, channel: trio.MemorySendChannel[TargetResult]) -> None:
        self._channel = channel
        self._waiting: dict[int, TargetResult] = {}
        self._next = 0

    async def send(self, position: int, result: TargetResult) -> None:
        self._waiting[position] = result
        while self._next in self._waiting:
            await self._channel.send(self._waiting.pop(self._next))
            self._next += 1


async def scan_target(
    target: Target,
    checks: Sequence[Check],
    options: ScanOptions,
    limits: _Limits,
    impostors: ImpostorFactory,
    now: datetime,
) -> TargetResult:
    enabled, skipped = checks_for(target, checks)
    needs = set().union(*(check.needs for check in enabled)) if enabled else set()
    endpoint = Endpoint(target.host, target.port, sni_for(target.server_name))
    http = HttpRequest(target.http_path, target.server_name) if target.app_protocol is AppProtocol.HTTP else None
    own = target.identity.credential if target.identity else None
    forged = impostors.for_identity(own.certificate if own else None)
    credentials: dict[Presented, ClientCredential | None] = {
        Presented.VALID: own,
        Presented.NO_CERT: None,
        Presented.ROGUE_CA: forged.rogue_ca,
        Presented.SELF_SIGNED: forged.self_signed,
    }

    async def probe(spec: ProbeSpec, into: list[ProbeObservation]) -> None:
        async with limits.connections, limits.host(target.host):
            try:
                observation = await run_probe(endpoint, spec, credentials[spec.presented], options.timeouts, http)
            except Exception as error:  # noqa: BLE001 - one broken probe must not end the scan
                observation = ProbeObservation(
                    spec=spec,
                    address=endpoint.address,
                    sni=endpoint.server_name,
                    client_certificate_sha256=None,
                    connect_error=f"probe failed: {error.__class__.__name__}: {error}",
                )
            into.append(observation)

    # Phase 1: which versions does the server speak? Our own identity (or none)
    # on each version; every check needs the server's certificate from these too.
    baseline = Presented.VALID if own is not None else Presented.NO_CERT
    observations: list[ProbeObservation] = []
    async with trio.open_nursery() as nursery:
        for version in TLSVersion:
            nursery.start_soon(probe, ProbeSpec(baseline, version), observations)

    # Phase 2: the impostors, on every version the server accepted.
    wanted = [presented for need, presented in _IMPOSTOR_NEEDS.items() if need in needs]
    versions = accepted_versions(observations)
    async with trio.open_nursery() as nursery:
        for version in versions:
            for presented in wanted:
                if presented is not baseline:
                    nursery.start_soon(probe, ProbeSpec(presented, version), observations)

    observations.sort(key=lambda o: (list(Presented).index(o.spec.presented), o.spec.version.rank))
    return judge_target(target, tuple(observations), enabled, skipped, now, scanned_at=datetime.now(UTC))


def judge_target(
    target: Target,
    observations: tuple[ProbeObservation, ...],
    enabled: Sequence[Check],
    skipped: Sequence[tuple[Check, str]],
    now: datetime,
    scanned_at: datetime | None = None,
) -> TargetResult:
    """Turn a target's observations into its result. Pure: no I/O, no clock."""
    evidence = Evidence(target, observations, now)
    versions = accepted_versions(observations)
    error = None if versions else _unreachable_reason(observations)
    findings: list[Finding] = []
    for check in enabled:
        if error:
            finding = check.finding(Status.ERROR, f"target could not be scanned: {error}")
        else:
            finding = _evaluate_safely(check, evidence)
        findings.append(finding)
    findings += [check.finding(Status.SKIP, reason) for check, reason in skipped]
    client_auth = tuple(
        classify_client_auth(
            version,
            evidence.probe(Presented.VALID, version),
            evidence.probe(Presented.NO_CERT, version),
            target.app_protocol,
        )
        for version in versions
    )
    status = Status.ERROR if error else max((f.status for f in findings), key=lambda s: s.rank, default=Status.SKIP)
    return TargetResult(
        target=target,
        status=status,
        error=error,
        accepted_versions=tuple(v.value for v in versions),
        client_auth=client_auth,
        presented_chain=tuple(presented_chain(evidence)),
        findings=tuple(findings),
        observations=observations,
        scanned_at=scanned_at or now,
    )


def _evaluate_safely(check: Check, evidence: Evidence) -> Finding:
    # A plugin's bug must cost one finding, not the scan.
    try:
        finding = check.evaluate(evidence)
    except Exception as error:  # noqa: BLE001
        return check.finding(Status.ERROR, f"check crashed: {error.__class__.__name__}: {error}")
    return finding


def _unreachable_reason(observations: Sequence[ProbeObservation]) -> str:
    for observation in observations:
        if not observation.connected:
            return observation.connect_error or "no connection"
    for observation in observations:
        if observation.timed_out:
            return f"no TLS answer within the {observation.timed_out.value} timeout"
    errors = sorted({o.tls_error for o in observations if o.tls_error})
    if errors:
        return "no TLS version could be negotiated: " + "; ".join(errors)
    return "no TLS version could be negotiated"
