"""Lint and type-check as part of the test run, so CI holds every change to them
(rules in pyproject.toml)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing(tmp_path: Path):
    # The installed names (mtls_audit.scanner, ...) point at the top-level directories;
    # symlinks give mypy the same view. Settings: [tool.mypy] in pyproject.toml.
    namespace = tmp_path / "mtls_audit"
    namespace.mkdir()
    for package in ("scanner", "checks", "reports"):
        (namespace / package).symlink_to(REPO / package, target_is_directory=True)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", os.devnull, "-p", "mtls_audit"],
        cwd=REPO,
        env={**os.environ, "MYPYPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
