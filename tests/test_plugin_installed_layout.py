"""The installed layout: `pip install .` (a real build, not the editable install the
tests otherwise run from) puts everything under ``mtls_audit`` and nothing generic at
the top of site-packages; the plugin API imports from there, the console script runs,
and a plugin package installed with pip next to it is registered.

The fresh venv borrows the third-party dependencies of the test venv through a
``.pth`` line (a plain path: the test venv's own ``.pth`` files, its editable
``mtls_audit`` finder among them, are not run), so only the two builds need the
package index, for setuptools. Without an index this skips, except in CI
(``CI=true`` or ``MTLS_AUDIT_REQUIRE_SERVERS=1``), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import mtls_audit.checks
from mtls_audit.checks.registry import BUILTIN_ORDER

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
GENERIC_NAMES = ("scanner", "checks", "reports")
NO_INDEX_SIGNS = (
    "No matching distribution found for setuptools",
    "Could not find a version that satisfies the requirement setuptools",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
)


@dataclass(frozen=True)
class Installed:
    root: Path  # the venv
    site_packages: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        # -I: no PYTHONPATH, no user site, no current directory: only the venv's paths.
        environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
        return subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, env=environment, cwd=self.root
        )

    def python_code(self, code: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.python), "-I", "-c", textwrap.dedent(code))


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("MTLS_AUDIT_REQUIRE_SERVERS") == "1"


def pip_install(into: Installed, source: Path) -> None:
    """``pip install --no-deps SOURCE`` into the venv, with the test venv's pip."""
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(into.python), "install",
            "--no-deps", "--no-input", "--disable-pip-version-check", "--quiet", str(source),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if not _in_ci() and any(sign in output for sign in NO_INDEX_SIGNS):
            pytest.skip(f"no package index to fetch setuptools for the build: {output.strip().splitlines()[-1]}")
        pytest.fail(f"pip install {source} failed:\n{output}")


def copy_source(destination: Path) -> Path:
    """What a fresh checkout holds for the build, without build/, *.egg-info or caches
    of the working tree: a stale build/lib would otherwise end up in the wheel."""
    destination.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, destination / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in GENERIC_NAMES:
        shutil.copytree(REPO / package, destination / package, ignore=ignore)
    return destination


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("installed-layout")
    root = work / "venv"
    venv.EnvBuilder(with_pip=False).create(root)
    site_packages = Path(
        subprocess.run(
            [str(root / "bin" / "python"), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    environment = Installed(root, site_packages)
    pip_install(environment, copy_source(work / "source"))
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site_packages / "borrowed-dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(borrowed)))
    yield environment


def test_nothing_generic_at_the_top_of_site_packages(installed: Installed):
    top = {entry.name for entry in installed.site_packages.iterdir()}
    for name in GENERIC_NAMES:
        assert name not in top and f"{name}.py" not in top, sorted(top)
    importable = {
        name
        for name in top
        if not name.endswith((".dist-info", ".pth")) and name not in ("__pycache__", "_distutils_hack")
    }
    assert importable == {"mtls_audit"}, sorted(top)
    [dist_info] = installed.site_packages.glob("mtls_audit-*.dist-info")
    recorded = [line.split(",")[0] for line in (dist_info / "RECORD").read_text().splitlines()]
    installed_files = [path for path in recorded if not path.startswith(("mtls_audit-", "../"))]
    assert installed_files and all(path.startswith("mtls_audit/") for path in installed_files), [
        path for path in installed_files if not path.startswith("mtls_audit/")
    ]
    # The package data came along: the report schema, the HTML templates and script.
    assert "mtls_audit/reports/schema/report.schema.json" in recorded
    assert any(path.startswith("mtls_audit/reports/html/templates/") for path in recorded)


def test_the_plugin_api_imports_from_the_installed_copy(installed: Installed):
    result = installed.python_code(
        """
        import json
        import mtls_audit.checks
        from mtls_audit.checks import *  # noqa: F403 - exactly what __all__ promises
        from mtls_audit.checks.registry import load_checks
        print(json.dumps({
            "file": mtls_audit.checks.__file__,
            "all": mtls_audit.checks.__all__,
            "checks": [check.id for check in load_checks()],
        }))
        """
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert Path(facts["file"]).is_relative_to(installed.site_packages), facts["file"]
    assert facts["all"] == list(mtls_audit.checks.__all__)
    assert facts["checks"] == list(BUILTIN_ORDER)  # from the installed dist-info's entry points


def test_the_console_script_runs(installed: Installed):
    result = installed.run(str(installed.root / "bin" / "mtls-audit"), "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("mtls-audit, version 0.1.0")
    checks = installed.run(str(installed.root / "bin" / "mtls-audit"), "checks")
    assert checks.returncode == 0, checks.stderr
    assert all(check_id in checks.stdout for check_id in BUILTIN_ORDER)


def test_a_plugin_package_installed_with_pip_is_registered(installed: Installed, tmp_path: Path):
    project = tmp_path / "plugin"
    project.mkdir()
    shutil.copyfile(TESTS / "plugin_example.py", project / "mtls_audit_example_plugin.py")
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "mtls-audit-example-plugin"
            version = "1.0"
            dependencies = ["mtls-audit"]

            [project.entry-points."mtls_audit.checks"]
            example-session-tickets = "mtls_audit_example_plugin:CHECK"

            [tool.setuptools]
            py-modules = ["mtls_audit_example_plugin"]
            """
        )
    )
    pip_install(installed, project)
    try:
        result = installed.run(str(installed.root / "bin" / "mtls-audit"), "checks")
        assert result.returncode == 0, result.stderr
        assert "example-session-tickets" in result.stdout
        assert "passes when the server issues TLS session tickets" in result.stdout
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(installed.python), "uninstall", "-y", "-q",
             "mtls-audit-example-plugin"],
            capture_output=True,
            timeout=60,
        )  # fmt: skip
