"""Lint and type-check as part of the test run, so CI holds every change to them
(rules in pyproject.toml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_holds():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def installed_names(root: Path, *, copied: tuple[str, ...] = ()) -> Path:
    """A folder where ``mtls_audit.scanner`` & co. are the top-level directories, as the
    wheel installs them: static tools cannot follow setuptools' editable finder.
    ``copied`` packages are copies (to be edited), the rest symlinks."""
    namespace = root / "mtls_audit"
    namespace.mkdir()
    for package in ("scanner", "checks", "reports"):
        if package in copied:
            shutil.copytree(REPO / package, namespace / package)
        else:
            (namespace / package).symlink_to(REPO / package, target_is_directory=True)
    return root


def lint_imports(names: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", str(REPO / "pyproject.toml")],
        cwd=names,
        env={**os.environ, "PYTHONPATH": str(names)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_contracts_hold(tmp_path: Path):
    # The contracts are [tool.importlinter] in pyproject.toml: the dependency rule of
    # README "Layout", function-level imports included.
    result = lint_imports(installed_names(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_contracts_catch_a_report_that_reads_the_judge(tmp_path: Path):
    names = installed_names(tmp_path, copied=("reports",))
    console = names / "mtls_audit" / "reports" / "console.py"
    console.write_text(console.read_text() + "\n\ndef _late():\n    from mtls_audit.scanner.judge import judge\n")
    result = lint_imports(names)
    assert result.returncode != 0
    assert "Reports depend only on the model BROKEN" in result.stdout
    assert "mtls_audit.reports.console -> mtls_audit.scanner.judge" in result.stdout


def test_mypy_finds_nothing(tmp_path: Path):
    # Settings: [tool.mypy] in pyproject.toml.
    names = installed_names(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", os.devnull, "-p", "mtls_audit"],
        cwd=REPO,
        env={**os.environ, "MYPYPATH": str(names)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
