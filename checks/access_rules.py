"""access-rules: every named identity gets exactly the access the inventory says.

A rule expected ``deny`` fails when the identity gets in on any TLS version and any
attempt; a rule expected ``allow`` fails when the identity is kept out, because a
locked-out legitimate caller is an outage the nightly job must catch too. Anything
undecided is an error, never a pass.
"""

from __future__ import annotations

from typing import Any

from mtls_audit.checks.base import Check, Evidence, Finding, Needs, Severity, Status
from mtls_audit.checks.common import probe_entry, unscannable, versions_in_play
from mtls_audit.scanner.judge import Outcome, curl_command, judge_access_attempts, repro_command
from mtls_audit.scanner.model.finding import ReproCommand
from mtls_audit.scanner.model.observations import Presented
from mtls_audit.scanner.model.target import AccessRule, AppProtocol, Expect, Target

REMEDIATION = (
    "Authorize on the verified certificate's identity (its SPIFFE ID or SAN), not on the CN, "
    "and keep revocation current (nginx `ssl_crl`, HAProxy `crl-file`, Envoy `crl`); "
    "a legitimate caller kept out needs its rule or its certificate fixed."
)


def rule_label(rule: AccessRule, target: Target) -> str:
    return f"{rule.name} {rule.request_made(target.request)} (expect {rule.expect.value})"


def evaluate(evidence: Evidence) -> Finding:
    target = evidence.target
    if not target.access:
        return CHECK.finding(Status.SKIP, "the target declares no access rules")
    reason = unscannable(evidence)
    if reason:
        return CHECK.finding(Status.ERROR, reason)
    wrong: list[str] = []
    undecided: list[str] = []
    rules: list[dict[str, Any]] = []
    commands: list[ReproCommand] = []
    for rule in target.access:
        label = rule_label(rule, target)
        entry: dict[str, Any] = {
            "identity": rule.name,
            "request": rule.request_made(target.request),
            "expect": rule.expect.value,
            "probes": [],
        }
        observed: set[str] = set()
        versions = versions_in_play(evidence)
        for version in versions:
            attempts = evidence.attempts(Presented.IDENTITY, version, rule.name, rule.request)
            if not attempts:
                undecided.append(f"{label} on {version.value}: not probed")
                continue
            first = attempts[0].spec
            commands.append(repro_command(target, first, rule.identity))
            if version is versions[-1] and target.app_protocol is AppProtocol.HTTP:
                # One curl line: curl picks the newest version.
                commands.append(
                    ReproCommand(f"{first.label} (curl)", curl_command(target, rule.identity, rule.request))
                )
            reference = evidence.probe(Presented.VALID, version)
            verdicts = judge_access_attempts(attempts, target.app_protocol, reference)
            entry["probes"] += [probe_entry(o, v) for o, v in zip(attempts, verdicts.verdicts, strict=True)]
            for observation, verdict in zip(attempts, verdicts.verdicts, strict=True):
                if verdict.outcome is Outcome.ACCEPTED:
                    observed.add("allowed")
                    if rule.expect is Expect.DENY:
                        wrong.append(f"{label}: let in on {version.value} ({verdict.reason})")
                        break
                elif verdict.outcome is Outcome.BLOCKED:
                    observed.add("denied")
                    if rule.expect is Expect.ALLOW:
                        wrong.append(f"{label}: kept out on {version.value} ({verdict.reason})")
                        break
                else:
                    undecided.append(f"{observation.spec.id}: {verdict.reason}")
        entry["observed"] = "/".join(sorted(observed)) or "undecided"
        rules.append(entry)
    if wrong:
        return CHECK.finding(
            Status.FAIL,
            f"{len(wrong)} access rule(s) not held: " + "; ".join(wrong),
            REMEDIATION,
            commands=commands,
            rules=rules,
        )
    if undecided:
        return CHECK.finding(
            Status.ERROR, "undecided: " + "; ".join(undecided), REMEDIATION, commands=commands, rules=rules
        )
    allowed = sum(1 for rule in target.access if rule.expect is Expect.ALLOW)
    return CHECK.finding(
        Status.PASS,
        f"all {len(target.access)} access rules hold ({allowed} allowed, {len(target.access) - allowed} denied)",
        commands=commands,
        rules=rules,
    )


CHECK = Check(
    id="access-rules",
    title="Access rules hold per identity",
    severity=Severity.CRITICAL,
    needs=frozenset({Needs.ACCESS}),
    description="each named identity is let in or kept out exactly as the target's access rules say",
    evaluate=evaluate,
    mtls=True,
)
