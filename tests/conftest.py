from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mtls_audit.scanner.lab.pki import LabPKI, create_lab_pki

# The headless-browser fixtures (browser, open_page) for every test module.
pytest_plugins = ["browser_support"]

TESTS = Path(__file__).parent


@pytest.fixture(scope="session")
def lab_pki() -> LabPKI:
    return create_lab_pki()


@dataclass(frozen=True)
class LabProcess:
    directory: Path
    ports: dict[str, int]
    server_names: dict[str, str]
    pid: int

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"


@pytest.fixture(scope="session")
def lab_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabProcess]:
    """The lab servers in a child process (for command-line tests), stopped by PID."""
    directory = tmp_path_factory.mktemp("lab")
    process = subprocess.Popen(
        [sys.executable, str(TESTS / "lab_process.py"), str(directory)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        if not line:
            pytest.fail(f"lab process exited early with {process.wait(timeout=5)}")
        info = json.loads(line)
        yield LabProcess(directory, info["ports"], info["server_names"], process.pid)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
