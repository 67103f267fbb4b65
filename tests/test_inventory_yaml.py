"""The strict YAML loader under inventories and waivers: libyaml when PyYAML has it, the
Python parser otherwise, with the same data and the same rules either way."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from mtls_audit.scanner import strict_yaml
from mtls_audit.scanner.inventory import InventoryError, load_inventory
from mtls_audit.scanner.lab.pki import LabPKI
from mtls_audit.scanner.model.observations import TLSVersion

needs_libyaml = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")

LOADERS = [
    pytest.param(strict_yaml.PyStrictSafeLoader, id="python"),
    pytest.param(getattr(strict_yaml, "CStrictSafeLoader", None), id="libyaml", marks=needs_libyaml),
]


@pytest.fixture(params=LOADERS)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    """Each strict loader in turn, also as the one inventories are read with."""
    monkeypatch.setattr(strict_yaml, "StrictSafeLoader", request.param)
    return request.param


@pytest.fixture
def workdir(tmp_path: Path, lab_pki: LabPKI) -> Path:
    lab_pki.write(tmp_path / "pki")
    return tmp_path


def inventory_error(path: Path) -> str:
    with pytest.raises(InventoryError) as excinfo:
        load_inventory(path, {})
    return str(excinfo.value)


GOOD = """\
defaults:
  trust: pki/ca.pem
  identity: {cert: pki/client.pem, key: pki/client.key}
  tags: [lab]
targets:
  - name: one
    address: api.internal:8443
    min_tls_version: 1.2
  - address: '[::1]:9443'
    server_name: api.internal
    tags: [v6, edge]
"""


# --------------------------------------------------------------------------- which parser


@needs_libyaml
def test_libyaml_is_the_parser_when_pyyaml_has_it() -> None:
    assert strict_yaml.StrictSafeLoader is strict_yaml.CStrictSafeLoader
    assert strict_yaml.StrictSafeLoaderWithoutDates is strict_yaml.CStrictSafeLoaderWithoutDates
    assert issubclass(strict_yaml.CStrictSafeLoader, yaml.CSafeLoader)


@needs_libyaml
def test_inventories_are_read_with_libyaml(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaders: list[type] = []
    real_loader = strict_yaml.StrictSafeLoader

    class Spy(real_loader):
        def __init__(self, stream) -> None:
            loaders.append(real_loader)
            super().__init__(stream)

    monkeypatch.setattr(strict_yaml, "StrictSafeLoader", Spy)
    path = workdir / "inventory.yaml"
    path.write_text(GOOD)
    assert [t.name for t in load_inventory(path, {})] == ["one", "[::1]:9443"]
    assert len(loaders) == 1
    assert issubclass(loaders[0], yaml.cyaml.CParser)


def test_without_libyaml_the_python_parser_keeps_every_rule(workdir: Path) -> None:
    """PyYAML built without libyaml: the same loads and the same errors, in a fresh
    interpreter where importing libyaml's binding fails."""
    (workdir / "good.yaml").write_text(GOOD)
    (workdir / "twice.yaml").write_text("defaults:\n  trust: pki/ca.pem\n  trust: pki/ca.pem\ntargets: []\n")
    (workdir / "broken.yaml").write_text(GOOD + "  - address: [::1]:8443\n")
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        sys.modules["yaml._yaml"] = None  # as if PyYAML had been built without libyaml
        import yaml
        from mtls_audit.scanner import strict_yaml
        from mtls_audit.scanner.inventory import InventoryError, load_inventory

        result = {
            "with_libyaml": yaml.__with_libyaml__,
            "loader": strict_yaml.StrictSafeLoader.__name__,
            "targets": [t.name for t in load_inventory(Path("good.yaml"), {})],
        }
        for name in ("twice.yaml", "broken.yaml"):
            try:
                load_inventory(Path(name), {})
            except InventoryError as error:
                result[name] = str(error)
        print(json.dumps(result))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(completed.stdout)
    assert result["with_libyaml"] is False
    assert result["loader"] == "PyStrictSafeLoader"
    assert result["targets"] == ["one", "[::1]:9443"]
    assert result["twice.yaml"] == ("twice.yaml: invalid YAML at line 3, column 3: found duplicate key 'trust'")
    assert result["broken.yaml"].startswith("broken.yaml: invalid YAML at line 12, column 15: ")
    assert result["broken.yaml"].endswith("; quote IPv6 addresses in YAML: address: '[::1]:8443'")


# --------------------------------------------------------------------------- the rules, with either parser


def test_good_inventory_loads_the_same(workdir: Path, loader: type) -> None:
    path = workdir / "inventory.yaml"
    path.write_text(GOOD)
    one, two = load_inventory(path, {})
    assert (one.name, one.min_tls_version, one.tags) == ("one", TLSVersion.TLS1_2, ("lab",))
    assert (two.host, two.server_name, two.tags) == ("::1", "api.internal", ("v6", "edge"))
    assert one.identity is two.identity is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "defaults:\n  trust: pki/ca.pem\n  trust: pki/other.pem\ntargets: []\n",
            "invalid YAML at line 3, column 3: found duplicate key 'trust'",
        ),
        (
            "targets:\n  - address: a:1\ntargets: []\n",
            "invalid YAML at line 3, column 1: found duplicate key 'targets'",
        ),
        (
            "defaults: {trust: pki/ca.pem}\ntargets:\n  - address: a:1\n  - address: b:2\n    address: c:3\n",
            "invalid YAML at line 5, column 5: found duplicate key 'address'",
        ),
        (
            "defaults:\n  identity: {cert: a.pem, key: a.key, cert: b.pem}\ntargets: []\n",
            "invalid YAML at line 2, column 39: found duplicate key 'cert'",
        ),
        (
            "targets:\n  - {address: a:1, tags: [x], tags: [y]}\n",
            "invalid YAML at line 2, column 31: found duplicate key 'tags'",
        ),
    ],
    ids=["defaults", "top-level", "target", "identity", "flow-mapping"],
)
def test_duplicate_keys_are_errors(workdir: Path, loader: type, text: str, expected: str) -> None:
    path = workdir / "inventory.yaml"
    path.write_text(text)
    assert inventory_error(path) == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("targets:\n  - *nowhere\n", "invalid YAML at line 2, column 5: found undefined alias 'nowhere'"),
        (
            "targets:\n  - &a {address: a:1}\n  - &a {address: b:2}\n",
            "invalid YAML at line 3, column 5: second occurrence",
        ),
        (
            "targets:\n  - !!python/object:os.system {}\n",
            "invalid YAML at line 2, column 5: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object:os.system'",
        ),
        (
            "targets:\n  - !<tag:mtls-audit.invalid,2025:constructed> {address: a:1}\n",
            "invalid YAML at line 2, column 5: could not determine a constructor for the tag "
            "'tag:mtls-audit.invalid,2025:constructed'",
        ),
        ("targets:\n  - address: !!int x\n", "YAML error: invalid literal for int() with base 10: 'x'"),
        ("targets: []\n---\ntargets: []\n", "invalid YAML at line 2, column 1: but found another document"),
        (
            "defaults: &d {trust: pki/ca.pem}\ntargets:\n  - <<: *d\n    address: a:1\n",
            "invalid YAML at line 3, column 5: could not determine a constructor for the tag 'tag:yaml.org,2002:merge'",
        ),
    ],
    ids=["undefined-alias", "duplicate-anchor", "python-tag", "internal-tag", "bad-int", "two-documents", "merge-key"],
)
def test_other_yaml_errors_are_the_same_with_either_parser(
    workdir: Path, loader: type, text: str, expected: str
) -> None:
    path = workdir / "inventory.yaml"
    path.write_text(text)
    assert inventory_error(path) == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("defaults:\n  trust: pki/ca.pem\ntargets:\n  - address: [::1]:8443\n", 4, 15),
        ("defaults:\n  trust: pki/ca.pem\n targets: []\n", 3, 2),
        ("targets:\n  - address: 'a:1\n", 3, 1),
        ("targets:\n\t- address: a:1\n", 2, 1),
    ],
    ids=["unquoted-ipv6", "bad-indent", "open-quote", "tab"],
)
def test_syntax_errors_give_line_and_column(workdir: Path, loader: type, text: str, line: int, column: int) -> None:
    path = workdir / "inventory.yaml"
    path.write_text(text)
    message = inventory_error(path)
    assert message.startswith(f"{path}: invalid YAML at line {line}, column {column}: "), message
    assert ("quote IPv6 addresses" in message) == ("[::1]" in text)


def test_a_syntax_error_anywhere_is_reported_before_a_duplicate_key(workdir: Path, loader: type) -> None:
    path = workdir / "inventory.yaml"
    path.write_text("targets:\n  - {address: a:1, address: b:2}\n  - *undefined\n  - address: [::1]:8443\n")
    message = inventory_error(path)
    assert message.startswith(f"{path}: invalid YAML at line 4, column 15: "), message


def test_byte_order_mark_and_crlf(workdir: Path, loader: type) -> None:
    path = workdir / "inventory.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.replace("\n", "\r\n").encode())
    assert [t.name for t in load_inventory(path, {})] == ["one", "[::1]:9443"]
    path.write_bytes(b"\xef\xbb\xbf" + b"targets:\r\n  - address: a:1\r\n  - address: [::1]:1\r\n")
    message = inventory_error(path)
    assert "line 3, column 15" in message and "quote IPv6 addresses" in message


# --------------------------------------------------------------------------- the same data as PyYAML's safe loader

SAME_DATA = [
    "targets:\n  - [1, 2, {x: y}]\n  - plain\n  - 2024-01-02\n  - {when: 2024-01-02, n: 1.5, b: yes, nul: ~}\n",
    "targets: &all\n  - {a: 1}\n  - &b {b: 2}\nagain: *all\nb: *b\n",
    "targets: !!omap\n  - a: 1\n  - b: 2\n",
    "targets: !!pairs\n  - a: 1\n  - a: 2\n",
    "targets: !!set {a, b}\n",
    "targets:\n  - &r [*r]\n",
    "- a\n- [b, {c: d}]\n- [[e, {f: g}]]\n",
    "targets: []\nother: {a: [1, {b: [2]}]}\n",
    "",
    "# only a comment\n",
    "just text",
]


@pytest.mark.parametrize("text", SAME_DATA)
def test_loads_what_the_safe_loader_loads(loader: type, text: str) -> None:
    expected = yaml.load(text, Loader=yaml.SafeLoader)
    assert repr(yaml.load(text, Loader=loader)) == repr(expected)
    # Bytes (how inventories are read) give the same data as text.
    assert repr(yaml.load(text.encode(), Loader=loader)) == repr(expected)


@pytest.mark.parametrize(
    "without_dates",
    [
        pytest.param(strict_yaml.PyStrictSafeLoaderWithoutDates, id="python"),
        pytest.param(getattr(strict_yaml, "CStrictSafeLoaderWithoutDates", None), id="libyaml", marks=needs_libyaml),
    ],
)
def test_without_dates_dates_stay_strings(without_dates: type) -> None:
    text = "waivers:\n  - {expires: 2027-03-31}\n  - {expires: 2027-03-31, expires: 2027-04-01}\n"
    with pytest.raises(yaml.MarkedYAMLError, match="found duplicate key 'expires'"):
        yaml.load(text, Loader=without_dates)
    data = yaml.load("waivers:\n  - {expires: 2027-03-31}\n", Loader=without_dates)
    assert data == {"waivers": [{"expires": "2027-03-31"}]}
    dated = yaml.load("waivers:\n  - {expires: 2027-03-31}\n", Loader=strict_yaml.StrictSafeLoader)
    assert dated == {"waivers": [{"expires": datetime.date(2027, 3, 31)}]}
