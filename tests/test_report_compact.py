"""The encodings that let report.json say a repeated fact once (schema 1.3):
probes and list entries like an earlier one, command parts, certificates by their
position in the chain, and the report's texts. Each must read back exactly, or not
be used; a reference that names nothing is a one-line ReportError."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from observation_builders import HOST, PORT, SERVER_NAME, V13, blocked_post_handshake, spec

from mtls_audit.reports.json_report import JsonReportWriter, ReportError, load_report, open_report, validation_problem
from mtls_audit.scanner.model.compact import (
    TextTable,
    certificate_references,
    certificate_values,
    command_parts,
    joined,
    like_decode,
    like_encode,
    lists_like,
    lists_whole,
    same,
    text_of,
)
from mtls_audit.scanner.model.finding import Finding, ReproCommand
from mtls_audit.scanner.model.observations import HttpExchange, Presented
from mtls_audit.scanner.model.report import CheckInfo, ScanInfo, Severity, Status, Summary, TargetReport


def test_same_is_json_equality():
    assert same({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not same(1, True) and not same(1, 1.0) and not same(0.0, False)
    assert not same({"a": [1]}, {"a": [1.0]}) and not same([1], [1, 2])


def test_like_says_only_what_differs_and_reads_back():
    entries = [
        {"probe": "a", "connected": True, "alert": {"code": 48, "phase": "post-handshake", "at_ms": 1.5}, "x": [1]},
        {"probe": "a#2", "connected": True, "alert": {"code": 48, "phase": "post-handshake", "at_ms": 2.5}, "x": [1]},
        {"probe": "b", "alert": {"code": 48, "phase": "post-handshake", "at_ms": 2.5}, "x": [1]},  # not connected
    ]
    written = like_encode(entries, dict, "probe")
    assert written[0] == entries[0]
    assert written[1] == {"probe": "a#2", "like": 0, "alert": {"at_ms": 2.5}}
    assert written[2] == {"probe": "b", "like": 1, "connected": None}  # null: it lacks the key
    assert like_decode(written, dict, "probe") == entries


def test_like_is_not_used_where_it_would_not_read_back():
    entries = [
        {"probe": "a", "sni": "x", "n": 1, "long": "y" * 50},
        {"probe": "b", "sni": None, "n": True, "long": "y" * 50},  # an explicit null; True is not 1
        {"probe": "c", "like": 3, "long": "y" * 50},  # a key named like is never mistaken
    ]
    written = like_encode(entries, dict, "probe")
    assert written == entries
    with pytest.raises(ValueError, match="no earlier entry"):
        like_decode([{"probe": "a", "like": 0}], dict, "probe")


def test_lists_like_keeps_free_form_evidence_exact():
    evidence = {
        "probes": [
            {"probe": "x", "outcome": "blocked", "blocked_at": None, "reason": "r"},
            {"probe": "y", "outcome": "blocked", "blocked_at": None, "reason": "r"},
            {"probe": "z", "outcome": "blocked", "blocked_at": "tls", "reason": "r"},
        ],
        "mixed": [{"a": 1}, 2, {"a": 1}],
        "own_like": [{"like": "cats"}, {"like": 5, "a": 1}],  # a key like of the check's own
        "nested": [{"inner": [{"k": "v" * 20}, {"k": "v" * 20}]}, {"inner": [{"k": "v" * 20}, {"k": "v" * 20}]}],
    }
    written = lists_like(evidence)
    assert written["probes"][1] == {"like": 0, "probe": "y"}
    assert written["mixed"] == evidence["mixed"] and written["own_like"] == evidence["own_like"]
    assert same(lists_whole(written), evidence)


def test_command_parts_write_shared_arguments_once_and_join_back_exactly():
    commands = [
        "printf 'GET / HTTP/1.1\\r\\n' | openssl s_client -connect 10.0.0.1:443 -servername a.example -tls1_3 -ign_eof",
        "printf 'GET / HTTP/1.1\\r\\n' | openssl s_client -connect 10.0.0.1:443 -servername a.example -tls1_2 -ign_eof",
        "printf 'GET / HTTP/1.1\\r\\n' | openssl s_client -connect 10.0.0.1:443 -servername a.example -tls1_3 "
        "-cert /very/long/path/to/client.pem -key /very/long/path/to/client.key -ign_eof",
        "curl  -x  --odd  spacing -",
        "",
    ]
    parts, encoded = command_parts(commands)
    assert parts and parts[0].startswith("printf") and parts[0].endswith("-servername a.example")
    assert encoded[commands[0]] == [0, "-tls1_3 -ign_eof"]
    assert encoded[commands[3]] == commands[3] and encoded[""] == ""
    assert all(joined(encoded[command], parts) == command for command in commands)
    assert command_parts(commands[:1]) == ([], {commands[0]: commands[0]})
    with pytest.raises(ValueError, match="part 9"):
        joined([9], parts)


def test_command_parts_do_not_depend_on_the_hash_seed():
    program = (
        "import json, sys; from mtls_audit.scanner.model.compact import command_parts; "
        "cs = [f'a b -c {i % 3} -d x{i % 2} -e yyyyyyyyyyyyyyyyyyyyyyyyyyyy -f {i}' for i in range(8)]; "
        "print(json.dumps(command_parts(cs)))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, env={"PYTHONHASHSEED": seed}, check=True
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1


CHAIN = [
    {"subject": "CN=leaf", "issuer": "CN=ca", "not_before": "2026-01-01T00:00:00+00:00", "sha256": "a" * 64},
    {"subject": "CN=ca", "issuer": "CN=root", "not_before": "2026-01-01T00:00:00+00:00", "sha256": "b" * 64},
]


def test_certificates_are_named_by_their_position_in_the_chain():
    evidence = {
        "presented": [
            {"subject": "CN=leaf", "issuer": "CN=ca", "not_before": "2026-01-01T00:00:00+00:00"},
            {"subject": "CN=ca", "issuer": "CN=someone else", "days_left": 3},
        ],
        "anchor": {"subject": "CN=root", "not_before": "2026-01-01T00:00:00+00:00"},  # not in the chain
        "by_hash": {"sha256": "b" * 64, "serial": 12},
    }
    written = certificate_references(evidence, CHAIN)
    assert written["presented"] == [
        {"subject": 0, "issuer": 0, "not_before": 0},
        {"subject": 1, "issuer": "CN=someone else", "days_left": 3},
    ]
    # a number in a certificate field would read as a position: such an object stays
    assert written["anchor"] == evidence["anchor"] and written["by_hash"] == evidence["by_hash"]
    assert certificate_values(written, CHAIN) == evidence
    with pytest.raises(ValueError, match="certificate 5 of a chain of 2"):
        certificate_values({"subject": 5}, CHAIN)


def test_texts_are_spelled_out_once_then_named():
    table = TextTable(limit=2)
    assert [table.name(text) for text in ["a", "b", "a", "c", "a", "b", "c"]] == ["a", "b", 0, "c", 0, 1, "c"]
    assert table.texts == ["a", "b"]  # "c" came after the limit of first uses: always spelled out
    assert text_of(1, table.texts) == "b" and text_of("z", table.texts) == "z"
    with pytest.raises(ValueError, match="text 2"):
        text_of(2, table.texts)


# -- a whole report ------------------------------------------------------------------

CHECK = CheckInfo("client-cert-required", "Client certificate required", Severity.CRITICAL, "blocked")


def _target(name: str) -> TargetReport:
    first, second = spec(Presented.NO_CERT, V13), spec(Presented.NO_CERT, V13, 2)
    command = f"printf 'GET / HTTP/1.1\\r\\n' | openssl s_client -connect {HOST}:{PORT} -servername {SERVER_NAME}"
    finding = Finding(
        CHECK.id,
        Status.PASS,
        Severity.CRITICAL,
        "a client without a certificate is blocked",
        "",
        {"attempts": [{"probe": first.id, "outcome": "blocked"}, {"probe": second.id, "outcome": "blocked"}]},
        (
            ReproCommand(first.id, command + " -tls1_3 -ign_eof"),
            ReproCommand("same, TLS 1.2", command + " -tls1_2 -ign_eof"),
        ),
    )
    return TargetReport(
        name=name,
        address=f"{HOST}:{PORT}",
        server_name=SERVER_NAME,
        tags=(),
        status=Status.PASS,
        error=None,
        scanned_at=datetime(2026, 1, 1, tzinfo=UTC),
        accepted_versions=("TLSv1.3",),
        client_auth=(),
        certificates=(),
        findings=(finding,),
        probes=tuple(
            replace(probe, peer_chain_sha256=probe.chain_fingerprints, peer_chain_der=())  # as a report holds it
            for probe in (
                blocked_post_handshake(first),
                replace(blocked_post_handshake(second), total_ms=9.5, http=HttpExchange("GET / HTTP/1.1", error="x")),
            )
        ),
    )


def _scan() -> ScanInfo:
    return ScanInfo(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), "test", None, {}, (CHECK,))


def _write(path, targets) -> None:
    writer = JsonReportWriter(path)
    writer.start(_scan())
    for target in targets:
        writer.add(target)
    writer.finish(_scan(), Summary(len(targets), {Status.PASS: len(targets)}, {Status.PASS: len(targets)}))


def test_a_written_report_names_what_repeats_and_reads_back(tmp_path):
    targets = [_target("one"), _target("two")]
    path = tmp_path / "report.json"
    _write(path, targets)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert validation_problem(document) is None
    one, two = document["targets"]
    assert one["probes"][1] == {
        "probe": "no-cert@tls1.3#2",
        "like": 0,
        "http": {"request_line": "GET / HTTP/1.1", "error": "x"},
        "total_ms": 9.5,
    }
    assert one["findings"][0]["commands"] == {
        "no-cert@tls1.3": [0, "-tls1_3 -ign_eof"],
        "same, TLS 1.2": [0, "-tls1_2 -ign_eof"],
    }
    assert "severity" not in one["findings"][0]
    assert (
        one["findings"][0]["summary"] == "a client without a certificate is blocked"
        and two["findings"][0]["summary"] == 0
    )
    assert document["texts"] == ["a client without a certificate is blocked"]
    assert load_report(path).targets == tuple(targets)
    assert list(open_report(path).targets()) == targets


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t["probes"][1].__setitem__("like", 1), r"targets\[1\]\.probes: entry 1 is like 1"),
        (lambda t: t["probes"][1].__setitem__("connected", "yes"), r"targets\[1\]\.probes\[1\]\.connected: 'yes'"),
        (lambda t: t["findings"][0].__setitem__("summary", 7), r"targets\[1\]: text 7 is not in the report's texts"),
        (lambda t: t["findings"][0]["commands"].__setitem__("x", [3]), r"targets\[1\]: .*part 3"),
        (
            lambda t: t["findings"][0].__setitem__("check", "unknown"),
            r"targets\[1\]: a unknown finding has no severity",
        ),
    ],
)
def test_a_reference_that_names_nothing_is_a_one_line_error(tmp_path, edit, message):
    path = tmp_path / "report.json"
    _write(path, [_target("one"), _target("two")])
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    target = json.loads(lines[2].rstrip(",\n"))
    edit(target)
    edited = "".join([*lines[:2], json.dumps(target) + "\n", *lines[3:]])  # the last target: no comma
    for layout in (edited, json.dumps(json.loads(edited), indent=1)):  # a line at a time, and read whole
        path.write_text(layout, encoding="utf-8")
        with pytest.raises(ReportError, match=message) as raised:
            load_report(path)
        assert "\n" not in str(raised.value)
