"""Large inventories: an error on the last line of a big file is found, with its line
number, without building the file's node graph; targets share what they can.
(How fast and how small: bench/inventory_parse.py.)"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
import yaml

from mtls_audit.scanner import strict_yaml
from mtls_audit.scanner.inventory import InventoryError, load_inventory
from mtls_audit.scanner.lab.pki import LabPKI

needs_libyaml = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")

HEADER = """\
defaults:
  trust: pki/ca.pem
  identity: {cert: pki/client.pem, key: pki/client.key}
  tags: [bulk]
targets:
"""
BROKEN_LAST_LINE = "  - address: [::1]:8443\n"  # an unquoted IPv6 address: not YAML


def entry(index: int) -> str:
    """About 100 bytes a target; every third one with its own tags."""
    text = f"  - name: service-{index:06d}\n    address: 10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}:8443\n"
    if index % 3 == 1:
        text += f"    server_name: service-{index:06d}.internal\n"
    elif index % 3 == 2:
        text += "    tags: [staging, team-a]\n"
    return text


def write_inventory(directory: Path, *, targets: int | None = None, megabytes: float | None = None) -> Path:
    """``targets`` entries, or as many as fill ``megabytes``."""
    path = directory / "inventory.yaml"
    parts = [HEADER]
    size = len(HEADER)
    index = 0
    while (targets is not None and index < targets) or (megabytes is not None and size < megabytes * 1_000_000):
        parts.append(entry(index))
        size += len(parts[-1])
        index += 1
    path.write_text("".join(parts))
    return path


def break_last_line(path: Path) -> int:
    """Append a line that is not YAML; its number, from 1."""
    with path.open("a") as out:
        out.write(BROKEN_LAST_LINE)
    return path.read_text().count("\n")


@pytest.fixture
def workdir(tmp_path: Path, lab_pki: LabPKI) -> Path:
    lab_pki.write(tmp_path / "pki")
    return tmp_path


def inventory_error(path: Path) -> str:
    with pytest.raises(InventoryError) as excinfo:
        load_inventory(path, {})
    return str(excinfo.value)


@needs_libyaml
def test_syntax_error_on_the_last_line_of_a_2_mb_inventory(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_inventory(workdir, megabytes=2)
    last_line = break_last_line(path)
    assert path.stat().st_size > 2_000_000 and last_line > 50_000

    composed: list[object] = []
    real_compose_node = strict_yaml._StrictStreaming.compose_node

    def counting_compose_node(self, parent, index):
        composed.append(parent)
        return real_compose_node(self, parent, index)

    monkeypatch.setattr(strict_yaml._StrictStreaming, "compose_node", counting_compose_node)
    message = inventory_error(path)

    assert message == (
        f"{path}: invalid YAML at line {last_line}, column 15: did not find expected node content; "
        "quote IPv6 addresses in YAML: address: '[::1]:8443'"
    )
    assert composed == []  # the syntax pass found it before a single node was built


def test_syntax_error_on_the_last_line_with_the_python_parser(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strict_yaml, "StrictSafeLoader", strict_yaml.PyStrictSafeLoader)
    path = write_inventory(workdir, targets=2_000)
    last_line = break_last_line(path)
    assert inventory_error(path) == (
        f"{path}: invalid YAML at line {last_line}, column 15: expected the node content, but found ':'; "
        "quote IPv6 addresses in YAML: address: '[::1]:8443'"
    )


def test_error_in_the_last_target_of_a_large_inventory_names_it(workdir: Path) -> None:
    path = write_inventory(workdir, targets=20_000)
    with path.open("a") as out:
        out.write("  - name: last\n    address: 10.255.255.255:0\n")
    assert inventory_error(path) == (
        f"{path}: target 'last' (#20001): field 'address': '10.255.255.255:0': port 0 is not in 1-65535"
    )


def test_targets_of_a_large_inventory_share_credentials_and_settings(workdir: Path) -> None:
    path = write_inventory(workdir, targets=20_000)
    targets = load_inventory(path, {})

    assert len(targets) == 20_000
    assert [t.index for t in targets[:3]] == [0, 1, 2] and targets[-1].name == "service-019999"
    first = targets[0]
    assert first.identity is not None
    assert all(t.identity is first.identity for t in targets)
    assert all(t.trust_anchors is first.trust_anchors for t in targets)
    assert all(t.trust_path is first.trust_path for t in targets)
    assert {id(t.tags) for t in targets} == {id(targets[0].tags), id(targets[2].tags)}
    assert (targets[0].tags, targets[2].tags) == (("bulk",), ("staging", "team-a"))
    assert targets[1].server_name == "service-000001.internal" and targets[0].server_name == "10.0.0.0"


def test_peak_memory_per_target_stays_small(workdir: Path) -> None:
    """Not a benchmark: a guard against holding the whole YAML node graph again (about
    3.4 KB a target at the peak, as traced by tracemalloc; constructing each entry as
    it is composed, about 0.7 KB)."""
    count = 5_000
    path = write_inventory(workdir, targets=count)
    tracemalloc.start()
    try:
        targets = load_inventory(path, {})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(targets) == count
    assert peak / count < 2_000, f"{peak / count:.0f} bytes a target at the peak"
