"""The check registry and the plugin API: checks come from the entry-point group
``mtls_audit.checks``, built-ins and plugins alike, and a plugin needs nothing but
``mtls_audit.checks``."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint, distribution, entry_points
from pathlib import Path

import pytest

import mtls_audit.checks
import mtls_audit.checks.registry as registry
from mtls_audit.checks.base import ENTRY_POINT_GROUP
from mtls_audit.checks.registry import BUILTIN_ORDER, RegistryError, load_checks

TESTS = Path(__file__).parent
PLUGIN_SOURCE = TESTS / "plugin_example.py"
PLUGIN_MODULE = "mtls_audit_example_plugin"  # the name it is installed under
PLUGIN_DISTRIBUTION = "mtls-audit-example-plugin"
PLUGIN_CHECK = "example-session-tickets"


def test_builtins_come_from_the_entry_point_group_in_documented_order():
    registered = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert set(BUILTIN_ORDER) <= registered
    assert [c.id for c in load_checks()][: len(BUILTIN_ORDER)] == list(BUILTIN_ORDER)


# -- an installed plugin package --------------------------------------------------------


def install_plugin(site: Path) -> Path:
    """Lay out ``plugin_example.py`` in ``site`` the way pip installs a plugin wheel:
    the module, and a ``dist-info`` whose ``entry_points.txt`` registers the check."""
    site.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PLUGIN_SOURCE, site / f"{PLUGIN_MODULE}.py")
    dist_info = site / "mtls_audit_example_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {PLUGIN_DISTRIBUTION}\nVersion: 1.0\nRequires-Dist: mtls-audit\n",
        encoding="utf-8",
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{PLUGIN_CHECK} = {PLUGIN_MODULE}:CHECK\n", encoding="utf-8"
    )
    return site


def with_plugin_path(site: Path) -> dict[str, str]:
    """The environment for a child process that sees the plugin as installed."""
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return os.environ | {"PYTHONPATH": path}


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The plugin installed in a directory on sys.path (found by importlib.metadata
    like any installed distribution); nothing in the registry is patched."""
    site = install_plugin(tmp_path / "site-packages")
    monkeypatch.syspath_prepend(str(site))  # also invalidates the import caches
    yield site
    sys.modules.pop(PLUGIN_MODULE, None)


def test_the_plugin_is_not_registered_until_installed():
    assert PLUGIN_CHECK not in [c.id for c in load_checks()]


def test_an_installed_plugin_package_is_registered_through_its_entry_point(installed_plugin: Path):
    [entry_point] = distribution(PLUGIN_DISTRIBUTION).entry_points.select(group=ENTRY_POINT_GROUP)
    assert (entry_point.name, entry_point.value) == (PLUGIN_CHECK, f"{PLUGIN_MODULE}:CHECK")
    checks = load_checks()
    assert [c.id for c in checks] == [*BUILTIN_ORDER, PLUGIN_CHECK]  # built-ins first, then plugins
    plugin = sys.modules[PLUGIN_MODULE]
    assert Path(plugin.__file__) == installed_plugin / f"{PLUGIN_MODULE}.py"  # the installed copy
    assert checks[-1] is plugin.CHECK
    assert checks[-1].info.title == "Session tickets issued"


def test_the_command_line_lists_an_installed_plugin(installed_plugin: Path):
    result = subprocess.run(
        [sys.executable, "-m", "mtls_audit.scanner.cli", "checks"],
        capture_output=True,
        text=True,
        timeout=60,
        env=with_plugin_path(installed_plugin),
    )
    assert result.returncode == 0, result.stderr
    assert PLUGIN_CHECK in result.stdout
    assert "passes when the server issues TLS session tickets" in result.stdout


def test_the_plugin_imports_only_the_public_plugin_api():
    tree = ast.parse(PLUGIN_SOURCE.read_text(encoding="utf-8"))
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert imports, "the example plugin imports nothing?"
    for node in imports:
        assert isinstance(node, ast.ImportFrom) and node.module in ("mtls_audit.checks", "__future__"), ast.unparse(
            node
        )
        if node.module == "mtls_audit.checks":
            names = {alias.name for alias in node.names}
            assert names <= set(mtls_audit.checks.__all__), names - set(mtls_audit.checks.__all__)


def test_the_plugin_api_exports_what_it_documents():
    exported = mtls_audit.checks.__all__
    assert len(exported) == len(set(exported))
    for name in exported:
        assert getattr(mtls_audit.checks, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from mtls_audit.checks import *", namespace)
    assert sorted(name for name in namespace if name != "__builtins__") == sorted(exported)
    # The names the package docstring shows a plugin importing, and the group it registers under.
    for name in ("Check", "Evidence", "Needs", "Severity", "Status", "Finding"):
        assert name in exported
    assert mtls_audit.checks.ENTRY_POINT_GROUP == "mtls_audit.checks"


# -- plugins that go wrong --------------------------------------------------------------


def _with_extra(monkeypatch, *extra: EntryPoint) -> None:
    real = list(entry_points(group=ENTRY_POINT_GROUP))
    monkeypatch.setattr(registry, "entry_points", lambda group: real + list(extra))


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


def test_a_broken_installed_plugin_stops_the_command_line_with_one_line(tmp_path: Path):
    site = install_plugin(tmp_path / "site-packages")
    (site / f"{PLUGIN_MODULE}.py").write_text("raise ImportError('needs a newer mtls-audit')\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mtls_audit.scanner.cli", "checks"],
        capture_output=True,
        text=True,
        timeout=60,
        env=with_plugin_path(site),
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and PLUGIN_CHECK in lines[0] and "needs a newer mtls-audit" in lines[0], result.stderr


# -- a plugin in a real scan ------------------------------------------------------------


def test_a_plugin_check_runs_in_a_real_scan(installed_plugin: Path, lab_pki):
    from test_end_to_end import lab_target, scan_with_lab

    from mtls_audit.scanner.lab.endpoints import demo_endpoints

    strict = demo_endpoints(lab_pki)[0]
    results = scan_with_lab(
        [strict.server], lambda ports: [lab_target(lab_pki, "strict", ports["strict"], strict.server_name)]
    )
    finding = results[0].report.finding(PLUGIN_CHECK)
    assert finding is not None
    assert finding.status.value == "pass"
    assert "valid@tls1.3" in finding.evidence["probes"]


def test_a_plugin_check_is_selectable_and_reported_by_the_command_line(installed_plugin: Path, lab_process, tmp_path):
    pki = lab_process.directory / "pki"
    report = tmp_path / "r.json"
    result = subprocess.run(
        [
            sys.executable, "-m", "mtls_audit.scanner.cli", "scan", lab_process.address("strict"),
            "--ca", str(pki / "ca.pem"), "--cert", str(pki / "client.pem"), "--key", str(pki / "client.key"),
            "--server-name", lab_process.server_names["strict"], "--check", PLUGIN_CHECK, "--json", str(report),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=with_plugin_path(installed_plugin),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(report.read_text(encoding="utf-8"))
    [target] = document["targets"]
    assert [(f["check"], f["status"]) for f in target["findings"]] == [(PLUGIN_CHECK, "pass")]
    assert [c["id"] for c in document["scan"]["checks"]] == [PLUGIN_CHECK]
