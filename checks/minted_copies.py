"""What client-cert-validity and unknown-identity-rejected share: judging the copies
of the target's identity that the inventory's issuer minted, each with one defect.

A defective copy being refused proves something only if the same copy without the
defect (the control) gets in: otherwise the server may simply not trust the issuer,
and every verdict would be a false "blocked".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mtls_audit.checks.base import Check, Evidence, Finding, Status
from mtls_audit.checks.common import probe_entry, unscannable, versions_in_play
from mtls_audit.scanner.judge import Outcome, judge, judge_attempts, repro_command
from mtls_audit.scanner.model.finding import ReproCommand
from mtls_audit.scanner.model.minting import DEFECTS, unavailable_variants
from mtls_audit.scanner.model.observations import Presented, ProbeObservation

NO_ISSUER = (
    "the inventory names no issuer, so no certificates with a defect could be minted "
    "(set issuer: to a test CA the servers trust)"
)


def evaluate_copies(evidence: Evidence, check: Check, variants: Sequence[Presented], remediation: str) -> Finding:
    target = evidence.target
    if target.issuer is None:
        return check.finding(Status.SKIP, NO_ISSUER)
    reason = unscannable(evidence)
    if reason:
        return check.finding(Status.ERROR, reason)
    unavailable = unavailable_variants(target)
    tested = [v for v in variants if v not in unavailable]
    not_minted = {v.value: unavailable[v] for v in variants if v in unavailable}
    if not tested:
        return check.finding(
            Status.SKIP, "nothing to mint: " + "; ".join(f"{v}: {why}" for v, why in not_minted.items())
        )

    commands: list[ReproCommand] = []
    control: list[dict[str, Any]] = []
    copies: dict[Presented, dict[str, Any]] = {
        v: {"variant": v.value, "defect": DEFECTS[v], "client_certificate_sha256": None, "probes": []} for v in tested
    }
    admitted: list[str] = []
    undecided: list[str] = []
    refused_control: list[tuple[ProbeObservation, str]] = []
    for version in versions_in_play(evidence):
        reference = evidence.probe(Presented.MINTED, version)
        if reference is None:
            # Only a copy the issuer could not sign goes unprobed on an accepted version.
            undecided.append(f"{Presented.MINTED.value}@{version.short}: not probed (the issuer could not mint a copy)")
            continue
        control_verdict = judge(reference, target.app_protocol)
        control.append(probe_entry(reference, control_verdict))
        if control_verdict.outcome is not Outcome.ACCEPTED:
            # On this version a refused copy proves nothing; another version may still.
            refused_control.append(
                (reference, f"{version.value} ({control_verdict.outcome.value}: {control_verdict.reason})")
            )
            continue
        for variant in tested:
            attempts = evidence.attempts(variant, version)
            if not attempts:
                undecided.append(f"{variant.value}@{version.short}: not probed")
                continue
            copies[variant]["client_certificate_sha256"] = attempts[0].client_certificate_sha256
            commands.append(repro_command(target, attempts[0].spec))
            verdicts = judge_attempts(attempts, target.app_protocol, reference)
            copies[variant]["probes"] += [probe_entry(o, v) for o, v in zip(attempts, verdicts.verdicts, strict=True)]
            if verdicts.got_in:
                deciding = verdicts.deciding
                assert deciding is not None  # got_in counts at least one verdict
                inconsistency = f"; {verdicts.inconsistency}" if verdicts.inconsistency else ""
                admitted.append(f"{DEFECTS[variant]} on {version.value}: {deciding.reason}{inconsistency}")
                continue
            undecided += [
                f"{o.spec.id}: {v.reason}"
                for o, v in zip(attempts, verdicts.verdicts, strict=True)
                if v.outcome is not Outcome.BLOCKED
            ]
    if refused_control and not admitted:
        return check.finding(
            Status.ERROR,
            "the issuer's defect-free copy of the identity was not let in on "
            + "; ".join(why for _, why in refused_control)
            + ": the server does not accept this issuer's certificates there, so refusing the defective "
            "copies proves nothing",
            "Set issuer: to the CA the server trusts for client certificates (a test CA, never production).",
            commands=[repro_command(target, reference.spec) for reference, _ in refused_control],
            control=control,
        )
    facts: dict[str, Any] = {"control": control, "minted": list(copies.values())}
    if not_minted:
        facts["not_minted"] = not_minted
    if admitted:
        return check.finding(Status.FAIL, "let in: " + "; ".join(admitted), remediation, commands=commands, **facts)
    if undecided:
        return check.finding(
            Status.ERROR, "undecided: " + "; ".join(undecided), remediation, commands=commands, **facts
        )
    layers = sorted({p["blocked_at"] for c in copies.values() for p in c["probes"] if p["blocked_at"]})
    names = ", ".join(v.value for v in tested)
    skipped = f" ({'; '.join(f'{v} not minted: {why}' for v, why in not_minted.items())})" if not_minted else ""
    return check.finding(
        Status.PASS,
        f"issuer-minted copies blocked ({names}) at {', '.join(layers)}, while the defect-free copy gets in{skipped}",
        commands=commands,
        **facts,
    )
