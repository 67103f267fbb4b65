"""Report paths are checked before the first connection, and a report that fails
mid-scan does not take the scan or the other reports down with it.

An unwritable --html used to be found after the whole scan: report.json complete, the
NDJSON without its scan-summary event, and exit 2 "nothing was scanned", which was
false. Now every output path is checked first (``Outputs.check``): a bad one is one
line on stderr naming the flag and the path, exit 2, no file, no connection.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from mtls_audit.reports.json_report import load_report
from mtls_audit.scanner.cli import main
from mtls_audit.scanner.cli.outputs import OutputPathError, Outputs, unwritable

FLAGS = ["--json", "--html", "--junit", "--siem-out"]
KIND = {"--json": "JSON", "--html": "HTML", "--junit": "JUnit", "--siem-out": "SIEM"}


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 60, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "mtls_audit.scanner.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )


def output_args(flag: str, path: Path | str) -> list[str]:
    """The arguments that send one report to ``path`` (--siem-out needs its flavor)."""
    return [flag, str(path), *(["--siem", "ecs"] if flag == "--siem-out" else [])]


def files_under(directory: Path) -> set[Path]:
    """Every file and directory below ``directory``, hidden temporary files included."""
    return set(directory.rglob("*"))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that accepts TCP connections and never answers: a scan that
    connects leaves a connection in its backlog, so ``connections(listener)`` counts
    every connection made, even after the scanner is gone."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.setblocking(False)
        yield sock


def connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            accepted, _ = sock.accept()
        except BlockingIOError:
            return count
        accepted.close()
        count += 1


@pytest.fixture
def scan_args(tmp_path_factory: pytest.TempPathFactory, lab_pki, listener: socket.socket) -> list[str]:
    """`scan HOST:PORT --ca ...` for the listener, with short timeouts; the CA lives
    outside the test's tmp_path so the file listing there is only what the scan made."""
    ca = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.write_bytes(lab_pki.root.certificate.public_bytes(serialization.Encoding.PEM))
    host, port = listener.getsockname()
    return [
        "scan", f"{host}:{port}", "--ca", str(ca),
        "--connect-timeout", "1", "--handshake-timeout", "0.5", "--rounds", "1",
    ]  # fmt: skip


def assert_refused_before_scanning(
    result: subprocess.CompletedProcess[str],
    listener: socket.socket,
    tmp_path: Path,
    before: set[Path],
    *fragments: str,
) -> str:
    """Exit 2, exactly one line on stderr holding every fragment, nothing on stdout,
    no file created, no connection made. Returns the line."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("mtls-audit: error: "), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert result.stdout == ""
    assert files_under(tmp_path) == before, "a file was created"
    assert connections(listener) == 0, "something was scanned"
    return line


# -- the detector works ---------------------------------------------------------------


def test_the_same_scan_with_writable_paths_connects_and_writes_every_report(
    tmp_path: Path, listener: socket.socket, scan_args: list[str]
):
    """The control for every test below: the listener does see a scan, and each kind of
    report is written, so "no connection, no file" there means "refused in time"."""
    args = [*scan_args]
    for flag, name in zip(FLAGS, ["r.json", "r.html", "r.xml", "r.ndjson"], strict=True):
        args += output_args(flag, tmp_path / name)
    result = run_cli(*args)
    assert result.returncode == 3, result.stdout + result.stderr  # nothing answered: undecided
    assert connections(listener) >= 1
    assert load_report(tmp_path / "r.json").targets[0].status == "error"
    for name in ("r.html", "r.xml", "r.ndjson"):
        assert (tmp_path / name).stat().st_size > 0


# -- each unwritable path, for each report flag -------------------------------------------


@pytest.mark.parametrize("flag", FLAGS)
def test_a_path_in_a_missing_directory(flag: str, tmp_path: Path, listener: socket.socket, scan_args: list[str]):
    missing = tmp_path / "no-such-dir"
    path = missing / "report.out"
    before = files_under(tmp_path)
    result = run_cli(*scan_args, *output_args(flag, path))
    assert_refused_before_scanning(
        result, listener, tmp_path, before, flag, str(path), f"directory {missing} does not exist"
    )
    assert not missing.exists()  # never created behind the user's back


@pytest.mark.parametrize("flag", FLAGS)
def test_a_directory_given_as_the_file(flag: str, tmp_path: Path, listener: socket.socket, scan_args: list[str]):
    directory = tmp_path / "reports"
    directory.mkdir()
    before = files_under(tmp_path)
    result = run_cli(*scan_args, *output_args(flag, directory))
    assert_refused_before_scanning(result, listener, tmp_path, before, flag, str(directory), "is a directory")


def obeying_file_permissions() -> list[str]:
    """A command prefix under which file permissions hold: nothing for a normal user;
    for root (CI runs as root), setpriv without the capabilities that let root write
    anywhere. Skips when root cannot shed them."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: chmod 0o500 does not stop root from writing")
    drop = "-dac_override,-dac_read_search"
    prefix = [setpriv, "--bounding-set", drop, "--inh-caps", drop]
    if subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root and setpriv cannot drop CAP_DAC_OVERRIDE here: chmod does not stop root")
    return prefix


@pytest.mark.parametrize("flag", FLAGS)
def test_a_directory_that_cannot_be_written(flag: str, tmp_path: Path, listener: socket.socket, scan_args: list[str]):
    prefix = obeying_file_permissions()
    locked = tmp_path / "locked"
    locked.mkdir()
    path = locked / "report.out"
    before = files_under(tmp_path)
    locked.chmod(0o500)
    try:
        result = run_cli(*scan_args, *output_args(flag, path), prefix=prefix)
    finally:
        locked.chmod(0o700)
    assert_refused_before_scanning(
        result, listener, tmp_path, before, flag, str(path), f"cannot write in directory {locked}"
    )


@pytest.mark.parametrize("flag", FLAGS)
def test_a_parent_that_is_a_file(flag: str, tmp_path: Path, listener: socket.socket, scan_args: list[str]):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("I am a file\n")
    path = blocker / "sub" / "report.out"
    before = files_under(tmp_path)
    result = run_cli(*scan_args, *output_args(flag, path))
    assert_refused_before_scanning(
        result, listener, tmp_path, before, flag, str(path), f"{blocker} is a file, not a directory"
    )
    assert blocker.read_text() == "I am a file\n"


@pytest.mark.parametrize("flag", FLAGS)
def test_the_same_file_for_two_reports(flag: str, tmp_path: Path, listener: socket.socket, scan_args: list[str]):
    other = "--html" if flag == "--json" else "--json"
    path = tmp_path / "report.out"
    before = files_under(tmp_path)
    result = run_cli(*scan_args, *output_args(other, path), *output_args(flag, path))
    line = assert_refused_before_scanning(result, listener, tmp_path, before, flag, other, str(path))
    assert "the same file as" in line


def test_the_same_file_spelled_two_ways(tmp_path: Path, listener: socket.socket, scan_args: list[str]):
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "sub", target_is_directory=True)
    before = files_under(tmp_path)
    result = run_cli(*scan_args, "--json", "sub/r.json", "--junit", "link/../sub/r.json", cwd=tmp_path)
    assert_refused_before_scanning(
        result, listener, tmp_path, before, "--junit link/../sub/r.json", "the same file as --json"
    )
    result = run_cli(*scan_args, "--json", "sub/r.json", "--html", "link/r.json", cwd=tmp_path)
    assert_refused_before_scanning(result, listener, tmp_path, before, "--html link/r.json", "the same file as --json")


def test_the_check_comes_before_the_inventory_is_read(tmp_path: Path):
    """A bad path is reported even when the inventory would fail too: the scan never
    starts, so nothing else is worth reading."""
    path = tmp_path / "gone" / "r.html"
    result = run_cli("scan", str(tmp_path / "no-inventory.yaml"), "--html", str(path))
    assert result.returncode == 2
    expected = f"mtls-audit: error: --html {path}: directory {path.parent} does not exist"
    assert result.stderr.splitlines() == [expected]


def test_an_existing_events_file_that_cannot_be_appended_to(
    tmp_path: Path, listener: socket.socket, scan_args: list[str]
):
    prefix = obeying_file_permissions()
    events = tmp_path / "events.ndjson"
    events.write_text('{"earlier": "event"}\n')
    events.chmod(0o444)
    before = files_under(tmp_path)
    result = run_cli(*scan_args, *output_args("--siem-out", events), prefix=prefix)
    assert_refused_before_scanning(
        result, listener, tmp_path, before, "--siem-out", str(events), "cannot be appended to"
    )
    assert events.read_text() == '{"earlier": "event"}\n'


def test_a_directory_that_cannot_be_searched_is_one_line_not_a_traceback(
    tmp_path: Path, listener: socket.socket, scan_args: list[str]
):
    prefix = obeying_file_permissions()
    private = tmp_path / "private"
    private.mkdir()
    path = private / "sub" / "r.json"
    before = files_under(tmp_path)
    private.chmod(0o000)
    try:
        result = run_cli(*scan_args, "--json", str(path), prefix=prefix)
    finally:
        private.chmod(0o700)
    assert_refused_before_scanning(result, listener, tmp_path, before, "--json", str(path), "Permission denied")


def test_re_rendering_a_saved_report_checks_its_paths_too(tmp_path: Path, listener: socket.socket, scan_args):
    saved = tmp_path / "saved.json"
    assert run_cli(*scan_args, "--json", str(saved), "--quiet").returncode == 3
    connections(listener)  # drain
    before = files_under(tmp_path)
    result = run_cli("report", str(saved), "--junit", str(tmp_path / "gone" / "r.xml"))
    assert_refused_before_scanning(result, listener, tmp_path, before, "--junit", str(tmp_path / "gone" / "r.xml"))


# -- Outputs.check and unwritable, in process ----------------------------------------------


def test_unwritable_says_why_or_none(tmp_path: Path):
    (tmp_path / "file").write_text("")
    (tmp_path / "dir").mkdir()
    assert unwritable(tmp_path / "r.json") is None
    assert unwritable(tmp_path / "file") is None  # replaced atomically when the report is done
    assert unwritable(tmp_path / "file", append=True) is None
    assert unwritable(tmp_path / "dir") == "is a directory; give a file name"
    assert unwritable(tmp_path / "nope" / "r.json") == f"directory {tmp_path / 'nope'} does not exist"
    assert unwritable(tmp_path / "file" / "x" / "r.json") == f"{tmp_path / 'file'} is a file, not a directory"
    assert set(tmp_path.iterdir()) == {tmp_path / "dir", tmp_path / "file"}  # the probe file left nothing


def test_a_relative_path_in_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert unwritable(Path("r.json")) is None
    Outputs(json=Path("r.json"), html=Path("r.html")).check()


def test_a_device_or_pipe_is_refused_for_a_report_that_replaces_its_file(tmp_path: Path):
    """Reports are renamed into place: over /dev/null or a FIFO that would swap the
    device for a regular file (as root, in /dev). Appending SIEM events is fine."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert unwritable(fifo) == "is not a regular file; give a file name"
    assert unwritable(Path(os.devnull)) == "is not a regular file; give a file name"
    assert unwritable(fifo, append=True) is None
    with pytest.raises(OutputPathError, match=f"^--json {os.devnull}: is not a regular file"):
        Outputs(json=Path(os.devnull)).check()


def test_a_directory_that_refuses_new_files_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """What a read-only directory or file system looks like (simulated: root may write anywhere)."""

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("mtls_audit.scanner.cli.outputs.tempfile.TemporaryFile", refuse)
    with pytest.raises(OutputPathError) as raised:
        Outputs(html=tmp_path / "r.html").check()
    assert str(raised.value) == f"--html {tmp_path / 'r.html'}: cannot write in directory {tmp_path}: Permission denied"
    assert (raised.value.field, raised.value.file) == ("--html", str(tmp_path / "r.html"))


def test_siem_and_siem_out_go_together():
    with pytest.raises(OutputPathError, match="--siem and --siem-out go together"):
        Outputs(siem="ecs").check()
    with pytest.raises(OutputPathError, match="--siem and --siem-out go together"):
        Outputs(siem_out="x.ndjson").check()
    Outputs(siem="ecs", siem_out="-").check()  # stdout: no file to check


# -- a report that fails mid-scan -------------------------------------------------------------


def _reports(tmp_path: Path) -> dict[str, Path]:
    """Each report in a directory of its own, so one can vanish alone."""
    names = {"--json": "r.json", "--html": "r.html", "--junit": "r.xml", "--siem-out": "r.ndjson"}
    paths = {}
    for flag, name in names.items():
        directory = tmp_path / flag.strip("-")
        directory.mkdir()
        paths[flag] = directory / name
    return paths


def _assert_complete(flag: str, path: Path, target: str) -> None:
    if flag == "--json":
        document = load_report(path)  # schema-valid, scan and summary included
        assert [t.name for t in document.targets] == [target] and document.scan.finished is not None
    elif flag == "--html":
        assert target in path.read_text(encoding="utf-8")
    elif flag == "--junit":
        suite = ET.parse(path).getroot().find("testsuite")
        assert suite is not None and suite.get("name") == target
    else:
        events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        datasets = [event["event"]["dataset"] for event in events]
        # One event per finding, closed by the scan-summary event.
        assert datasets[-1] == "mtls_audit.scan" and set(datasets[:-1]) == {"mtls_audit.finding"}


@pytest.mark.parametrize("vanishing", FLAGS)
@pytest.mark.parametrize(("endpoint", "expected_code"), [("optional", 1), ("strict", 3)])
def test_a_report_that_fails_mid_scan(
    vanishing: str,
    endpoint: str,
    expected_code: int,
    tmp_path: Path,
    lab_process,
    monkeypatch: pytest.MonkeyPatch,
):
    """The directory of one report is removed after the check (the real `scan`
    command, in process): the scan completes, the other reports are written, one
    error line names the report that is missing, and the exit code is 1 when a
    finding fails, else 3 (never 0: a report the job asked for is missing)."""
    paths = _reports(tmp_path)
    check = Outputs.check

    def check_then_lose_the_directory(self: Outputs) -> None:
        check(self)
        shutil.rmtree(paths[vanishing].parent)

    monkeypatch.setattr(Outputs, "check", check_then_lose_the_directory)
    pki = lab_process.directory / "pki"
    args = [
        "scan", lab_process.address(endpoint),
        "--ca", str(pki / "ca.pem"), "--cert", str(pki / "client.pem"), "--key", str(pki / "client.key"),
        "--server-name", lab_process.server_names[endpoint], "--rounds", "1",
    ]  # fmt: skip
    for flag, path in paths.items():
        args += output_args(flag, path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == expected_code, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mtls-audit: error:")]
    assert len(errors) == 1, result.stderr
    assert str(paths[vanishing]) in errors[0] and "could not be written" in errors[0], errors[0]
    assert "mtls-audit summary" in result.stdout  # the scan completed and was summed up
    for flag, path in paths.items():
        if flag == vanishing:
            assert not path.parent.exists()  # not recreated behind the user's back
            assert f"{KIND[flag]} report: {path}" not in result.stdout
            assert f"{path}\n" not in result.stdout
        else:
            _assert_complete(flag, path, lab_process.address(endpoint))
            assert f"{path}" in result.stdout  # listed among the reports written
