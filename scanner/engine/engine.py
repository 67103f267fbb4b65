"""Plans the probes each target needs, runs them under the concurrency limits, hands
the observations to the checks, and streams results out in inventory order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import trio
from cryptography.hazmat.primitives import hashes

from mtls_audit.checks.base import Check, Evidence, Needs
from mtls_audit.checks.common import presented_chain
from mtls_audit.scanner.credentials.impostors import ImpostorFactory
from mtls_audit.scanner.credentials.minted import Minter
from mtls_audit.scanner.engine.ordering import OrderedWindow
from mtls_audit.scanner.engine.results import TargetResult, judge_target
from mtls_audit.scanner.judge import accepted_versions
from mtls_audit.scanner.model.minting import ONLY_WITH_ACCESS_RULES
from mtls_audit.scanner.model.observations import Presented, ProbeObservation, ProbeSpec, TLSVersion
from mtls_audit.scanner.model.target import ClientAuthExpectation, ClientCredential, Issuer, Target
from mtls_audit.scanner.probe import Endpoint, Timeouts, request_for, run_probe

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
    # Attempts per impostor probe: behind a load balancer whose backends disagree, one
    # connection sees one backend, and any attempt that gets in is a finding.
    rounds: int = 2

    @property
    def reorder_window(self) -> int:
        """Finished results that may wait behind a slow target (see ``OrderedWindow``)."""
        return 4 * self.concurrency


class _RunCredentials:
    """The scan's minted credentials: one rogue CA, and one Minter per issuer."""

    def __init__(self, now: datetime) -> None:
        self.impostors = ImpostorFactory()
        self._now = now
        self._minters: dict[bytes, Minter] = {}

    def minter(self, issuer: Issuer) -> Minter:
        key = issuer.certificate.fingerprint(hashes.SHA256())
        if key not in self._minters:
            self._minters[key] = Minter(issuer, self._now)
        return self._minters[key]


class _Limits:
    def __init__(self, options: ScanOptions) -> None:
        self.connections = trio.CapacityLimiter(options.concurrency)
        # Targets in flight: enough to keep the connection limit busy.
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


def _planned(
    target: Target,
    needs: set[Needs],
    credentials: dict[Presented, ClientCredential | None],
    version: TLSVersion,
    baseline: Presented,
    rounds: int,
) -> list[ProbeSpec]:
    """Phase 2's probes on one version."""
    specs = []
    for need, presented in _IMPOSTOR_NEEDS.items():
        if need in needs:
            first = 2 if presented is baseline else 1  # phase 1 made the first attempt
            specs += [ProbeSpec(presented, version, attempt) for attempt in range(first, rounds + 1)]
    if Needs.ACCESS in needs:
        for rule in target.access:
            specs += [
                ProbeSpec(Presented.IDENTITY, version, attempt, rule.name, rule.request)
                for attempt in range(1, rounds + 1)
            ]
    if Needs.MINTED in needs:
        for presented in credentials:
            if presented.minted and (target.access or presented not in ONLY_WITH_ACCESS_RULES):
                # The control asks one question ("is the issuer trusted?"); the
                # defective copies are repeated like every client that must be blocked.
                count = 1 if presented is Presented.MINTED else rounds
                specs += [ProbeSpec(presented, version, attempt) for attempt in range(1, count + 1)]
    return specs


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
    run = _RunCredentials(now)
    window: OrderedWindow[TargetResult] = OrderedWindow(results, options.reorder_window)
    async with results, trio.open_nursery() as nursery:
        for position, target in enumerate(targets):
            # Start a target only when it is inside the window and a slot is free:
            # 10,000 waiting tasks would hold 10,000 frames for nothing.
            await window.admit(position)
            slot = object()
            await limits.targets.acquire_on_behalf_of(slot)
            nursery.start_soon(_scan_and_deliver, position, target, checks, options, limits, run, window, now, slot)


async def _scan_and_deliver(
    position: int,
    target: Target,
    checks: Sequence[Check],
    options: ScanOptions,
    limits: _Limits,
    run: _RunCredentials,
    window: OrderedWindow[TargetResult],
    now: datetime,
    slot: object,
) -> None:
    try:
        result = await scan_target(target, checks, options, limits, run, now)
    finally:
        limits.targets.release_on_behalf_of(slot)
    await window.deliver(position, result)


async def scan_target(
    target: Target,
    checks: Sequence[Check],
    options: ScanOptions,
    limits: _Limits,
    run: _RunCredentials,
    now: datetime,
) -> TargetResult:
    enabled, skipped = checks_for(target, checks)
    needs: set[Needs] = set().union(*(check.needs for check in enabled))
    endpoint = Endpoint(target.host, target.port, target.sni)
    own = target.identity.credential if target.identity else None
    forged = run.impostors.for_identity(own.certificate if own else None)
    credentials: dict[Presented, ClientCredential | None] = {
        Presented.VALID: own,
        Presented.NO_CERT: None,
        Presented.ROGUE_CA: forged.rogue_ca,
        Presented.SELF_SIGNED: forged.self_signed,
    }
    if Needs.MINTED in needs and target.issuer is not None:
        try:
            credentials.update(run.minter(target.issuer).for_target(target))
        except Exception:  # noqa: BLE001 - an identity the issuer cannot re-sign costs its copies, not the scan
            pass  # nothing minted, nothing probed: the checks report "not probed" as an error
    named = {rule.name: rule.identity.credential for rule in target.access}
    observations: list[ProbeObservation] = []

    async def probe(spec: ProbeSpec) -> None:
        credential = named[spec.identity] if spec.identity is not None else credentials[spec.presented]
        async with limits.connections, limits.host(target.host):
            try:
                request = request_for(target, spec.request)
                observation = await run_probe(endpoint, spec, credential, options.timeouts, request)
            except Exception as error:  # noqa: BLE001 - one broken probe must not end the scan
                observation = ProbeObservation(
                    spec=spec,
                    address=endpoint.address,
                    sni=endpoint.server_name,
                    client_certificate_sha256=None,
                    connect_error=f"probe failed: {error.__class__.__name__}: {error}",
                )
            observations.append(observation)

    # Phase 1: which versions does the server speak? Our own identity (or none)
    # on each version; every check needs the server's certificate from these too.
    baseline = Presented.VALID if own is not None else Presented.NO_CERT
    async with trio.open_nursery() as nursery:
        for version in TLSVersion:
            nursery.start_soon(probe, ProbeSpec(baseline, version))

    # Phase 2: the impostors, access rules and minted copies, each `rounds` times, on
    # every version the server accepted.
    async with trio.open_nursery() as nursery:
        for version in accepted_versions(observations):
            for spec in _planned(target, needs, credentials, version, baseline, options.rounds):
                nursery.start_soon(probe, spec)

    order = list(Presented)
    observations.sort(
        key=lambda o: (
            order.index(o.spec.presented),
            o.spec.version.rank,
            o.spec.identity or "",
            o.spec.request or "",
            o.spec.attempt,
        )
    )
    evidence = Evidence(target, tuple(observations), now)
    return judge_target(evidence, enabled, skipped, presented_chain(evidence), scanned_at=datetime.now(UTC))
