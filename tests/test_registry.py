from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import pytest

import mtls_audit.checks.registry as registry
from mtls_audit.checks.base import ENTRY_POINT_GROUP
from mtls_audit.checks.registry import BUILTIN_ORDER, RegistryError, load_checks


def test_builtins_come_from_the_entry_point_group_in_documented_order():
    registered = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert set(BUILTIN_ORDER) <= registered
    assert [c.id for c in load_checks()][:6] == list(BUILTIN_ORDER)


def _with_extra(monkeypatch, *extra: EntryPoint) -> None:
    real = list(entry_points(group=ENTRY_POINT_GROUP))
    monkeypatch.setattr(registry, "entry_points", lambda group: real + list(extra))


def test_a_plugin_package_adds_a_check_without_forking(monkeypatch):
    _with_extra(monkeypatch, EntryPoint("example", "plugin_example:CHECK", ENTRY_POINT_GROUP))
    ids = [c.id for c in load_checks()]
    assert ids[-1] == "example-session-tickets"
    assert ids[:6] == list(BUILTIN_ORDER)


def test_a_broken_plugin_is_a_clear_error_not_a_silent_gap(monkeypatch):
    _with_extra(monkeypatch, EntryPoint("broken", "no_such_module_here:CHECK", ENTRY_POINT_GROUP))
    with pytest.raises(RegistryError, match="'broken'.*failed to load"):
        load_checks()


def test_a_plugin_that_is_not_a_check_is_rejected(monkeypatch):
    _with_extra(monkeypatch, EntryPoint("odd", "plugin_example:NOT_A_CHECK", ENTRY_POINT_GROUP))
    with pytest.raises(RegistryError, match="not a Check"):
        load_checks()


def test_two_checks_claiming_one_id_are_rejected(monkeypatch):
    from dataclasses import replace

    import plugin_example

    clash = replace(plugin_example.CHECK, id="san-match")
    monkeypatch.setattr(plugin_example, "CLASH", clash, raising=False)
    _with_extra(monkeypatch, EntryPoint("clash", "plugin_example:CLASH", ENTRY_POINT_GROUP))
    with pytest.raises(RegistryError, match="san-match"):
        load_checks()


def test_a_plugin_check_runs_in_a_real_scan(monkeypatch, lab_pki):
    from test_end_to_end import lab_target, scan_with_lab

    from mtls_audit.scanner.lab.endpoints import demo_endpoints

    _with_extra(monkeypatch, EntryPoint("example", "plugin_example:CHECK", ENTRY_POINT_GROUP))
    strict = demo_endpoints(lab_pki)[0]
    results = scan_with_lab(
        [strict.server], lambda ports: [lab_target(lab_pki, "strict", ports["strict"], strict.server_name)]
    )
    finding = next(f for f in results[0].findings if f.check == "example-session-tickets")
    assert finding.status.value == "pass"
    assert "valid@tls1.3" in finding.evidence["probes"]
