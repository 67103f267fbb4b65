"""The deployment files are the interface, and this test keeps them true: it reads the
shard and merge command lines out of deploy/kubernetes, deploy/github-actions and
deploy/gitlab, runs exactly them (N shard processes side by side against the lab, then
the merge), and compares the merged report with one unsharded scan of the same
inventory.

Only what the platform itself would fill in is substituted, each through a small
explicit mapping, so a variable renamed in a file breaks the test:

- Kubernetes: the Job controller's JOB_COMPLETION_INDEX (in the environment, after the
  kubelet's own $(VAR) expansion of command and args), and the mount paths
  /config/inventory.yaml and /reports, mapped to temporary directories;
- GitHub Actions: the expressions ${{ matrix.shard }} and ${{ steps.ID.outputs.KEY }};
  any other ${{ ... }} in a command fails the test;
- GitLab CI: CI_NODE_INDEX (from 1) and CI_NODE_TOTAL in the environment, with
  `set -u`, so a misspelled variable is an error rather than an empty string.

What the platforms do between the jobs is done here too: the shard reports named by
upload-artifact / artifacts:paths are carried to the merge job's workspace the way
download-artifact (pattern, merge-multiple) and `needs` bring them.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from test_shards import lab_inventory, verdicts

from mtls_audit.scanner.inventory.loader import load_inventory

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
GITHUB_WORKFLOW = DEPLOY / "github-actions" / "mtls-audit.yml"
GITLAB_CI = DEPLOY / "gitlab" / ".gitlab-ci.yml"
VENV_BIN = Path(sys.executable).parent  # where `mtls-audit` is installed next to this python


# -- running command lines as the platforms do --------------------------------------


@dataclass(frozen=True)
class Command:
    argv: list[str]
    cwd: Path
    env: dict[str, str]


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"


def base_environment(home: Path) -> dict[str, str]:
    """A bare environment with the venv's `mtls-audit` on PATH, as an image or a runner
    with the package installed has it: nothing else leaks in from the test run."""
    assert (VENV_BIN / "mtls-audit").exists(), f"no mtls-audit next to {sys.executable}: pip install -e ."
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(home)}


def run_side_by_side(commands: list[Command], logs: Path) -> list[Finished]:
    """Start every command, then wait for all: the shards run at the same time."""
    logs.mkdir(parents=True, exist_ok=True)
    running = []
    for number, command in enumerate(commands):
        command.cwd.mkdir(parents=True, exist_ok=True)
        out, err = logs / f"{number}.out", logs / f"{number}.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            process = subprocess.Popen(command.argv, cwd=command.cwd, env=command.env, stdout=stdout, stderr=stderr)
        running.append((process, out, err))
    finished = []
    for process, out, err in running:
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        finished.append(Finished(process.returncode, out.read_text(), err.read_text()))
    return finished


def run_one(command: Command, logs: Path) -> Finished:
    return run_side_by_side([command], logs)[0]


def script_command(shell: list[str], script: str, directory: Path, name: str) -> list[str]:
    """CI runners write a step's script to a file and run the shell on it."""
    path = directory / f"{name}.sh"
    path.write_text(script)
    return [*shell, str(path)]


def command_line(script: str, program: str) -> list[str]:
    """The words of the one command of ``script`` that runs ``program`` (e.g. `mtls-audit merge`),
    backslash-continued lines joined."""
    lines = [line for line in script.replace("\\\n", " ").splitlines() if line.strip().startswith(program)]
    assert len(lines) == 1, f"expected one `{program}` line in:\n{script}"
    return shlex.split(lines[0].split("||")[0])


def flag_value(words: list[str], flag: str) -> str:
    assert flag in words, f"{flag} missing from: {shlex.join(words)}"
    return words[words.index(flag) + 1]


# -- the reference: one unsharded scan of the same inventory ------------------------


@dataclass(frozen=True)
class Reference:
    inventory: Path
    report: Path
    sarif: Path
    returncode: int


@pytest.fixture(scope="module")
def reference(lab_process, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    directory = tmp_path_factory.mktemp("unsharded")
    inventory = lab_inventory(directory / "inventory.yaml", lab_process)
    argv = ["mtls-audit", "scan", "inventory.yaml", "--json", "whole.json", "--sarif", "whole.sarif", "--quiet"]
    result = run_one(Command(argv, directory, base_environment(directory / "home")), directory / "logs")
    assert result.returncode == 1, result  # the lab has failing endpoints
    return Reference(inventory, directory / "whole.json", directory / "whole.sarif", result.returncode)


def sarif_results(path: Path) -> list[tuple]:
    """(rule, level, fingerprint, line) of every result; the file's URI is checked apart."""
    document = json.loads(path.read_text())
    assert document["version"] == "2.1.0"
    (run,) = document["runs"]
    return sorted(
        (
            result["ruleId"],
            result["level"],
            json.dumps(result["partialFingerprints"], sort_keys=True),
            result["locations"][0]["physicalLocation"]["region"]["startLine"],
        )
        for result in run["results"]
    )


def sarif_uris(path: Path) -> set[str]:
    (run,) = json.loads(path.read_text())["runs"]
    return {result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for result in run["results"]}


def assert_shard_reports(paths: list[Path], count: int) -> None:
    """Each shard report is the shard its command was meant to scan: the index the
    platform gave, and the count in --shard equal to the number of shards it runs."""
    assert len(paths) == count
    for index, path in enumerate(paths):
        shard = json.loads(path.read_text())["scan"]["shard"]
        assert shard == {"index": index, "count": count}, (path, shard)


def assert_merge_is_the_unsharded_scan(merged: Finished, report: Path, sarif: Path, reference: Reference) -> None:
    assert merged.returncode == reference.returncode, merged
    assert verdicts(report) == verdicts(reference.report)
    document, whole = json.loads(report.read_text()), json.loads(reference.report.read_text())
    assert [t["name"] for t in document["targets"]] == [t["name"] for t in whole["targets"]]  # inventory order
    assert document["summary"] == whole["summary"]
    assert "shard" not in document["scan"]
    assert sarif_results(sarif) == sarif_results(reference.sarif)
    assert sarif_results(sarif), "the lab's findings should give SARIF results"


# -- Kubernetes: an Indexed Job of shards, then a merge Job --------------------------


def kubernetes_documents() -> dict[str, dict]:
    """Every manifest under deploy/kubernetes by kind/name."""
    documents = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents[f"{document['kind']}/{document['metadata']['name']}"] = document
    return documents


def kubernetes_expand(text: str, env: Mapping[str, str]) -> str:
    """The kubelet's expansion of command and args: $(NAME) from the container's
    environment (left as written when it has no NAME), and $$ for a literal $."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)", replace, text)


def only_container(job: dict) -> dict:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def container_argv(container: dict, env: Mapping[str, str], paths: Mapping[str, str]) -> list[str]:
    """What the runtime executes: command + args, expanded by the kubelet; then the mount
    paths mapped onto this machine's directories (each must occur in the command)."""
    argv = [kubernetes_expand(word, env) for word in [*container.get("command", []), *container.get("args", [])]]
    text = "\n".join(argv)
    for path in paths:
        assert path in text, f"{path} not in the container's command: the test's mapping is out of date"
    for path, local in paths.items():
        argv = [word.replace(path, local) for word in argv]
    return argv


def container_environment(container: dict, base: Mapping[str, str], **injected: str) -> dict[str, str]:
    env = dict(base)
    for variable in container.get("env", []):
        assert "value" in variable, f"{variable['name']}: only plain values are simulated"
        env[variable["name"]] = variable["value"]
    env.update(injected)
    return env


def pod_security(job: dict, container: dict) -> None:
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy needs it; the Job retries, not the kubelet
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    # fsGroup makes the 0400 Secret files group-readable for the non-root user (0440)
    # and the report volume writable.
    assert pod["securityContext"]["fsGroup"] > 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]), resources
    assert "memory" in resources["limits"], resources
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]  # tempfile's directory, on a read-only root


def test_kubernetes_manifests_hold_the_requirements(lab_process, tmp_path: Path) -> None:
    documents = kubernetes_documents()
    scan_job, merge_job = documents["Job/mtls-audit-scan"], documents["Job/mtls-audit-merge"]
    spec = scan_job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"]  # every shard side by side
    # Exit 2 (bad inventory or identity) fails the Job at once; verdicts are exit 0 here.
    scan = only_container(scan_job)
    fail_job = {"containerName": scan["name"], "operator": "In", "values": [2]}
    assert {"action": "FailJob", "onExitCodes": fail_job} in spec["podFailurePolicy"]["rules"]
    for job in (scan_job, merge_job):
        pod_security(job, only_container(job))

    pod = spec["template"]["spec"]
    mounts = {mount["mountPath"]: mount for mount in scan["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    identity = mounts["/identity"]
    assert identity["readOnly"] is True
    secret = volumes[identity["name"]]["secret"]
    assert secret["defaultMode"] == 0o400
    secret_files = {f"/identity/{item['path']}" for item in secret["items"]}

    inventory = mounts["/config"]
    assert inventory["readOnly"] is True
    config_map = documents[f"ConfigMap/{volumes[inventory['name']]['configMap']['name']}"]
    example = yaml.safe_load(config_map["data"]["inventory.yaml"])  # mounted as /config/inventory.yaml
    defaults = example["defaults"]
    assert {defaults["trust"], defaults["identity"]["cert"], defaults["identity"]["key"]} == secret_files
    # The example inventory loads, with the Secret's files in the lab's PKI directory.
    loadable = tmp_path / "inventory.yaml"
    loadable.write_text(config_map["data"]["inventory.yaml"].replace("/identity/", f"{lab_process.directory}/pki/"))
    assert len(load_inventory(loadable)) == len(example["targets"])

    claims = set()
    for job in (scan_job, merge_job):
        job_pod = job["spec"]["template"]["spec"]
        reports = {m["mountPath"]: m for m in only_container(job)["volumeMounts"]}["/reports"]
        (volume,) = [v for v in job_pod["volumes"] if v["name"] == reports["name"]]
        claims.add(volume["persistentVolumeClaim"]["claimName"])
    (claim,) = claims  # both Jobs share one report volume
    assert "ReadWriteMany" in documents[f"PersistentVolumeClaim/{claim}"]["spec"]["accessModes"]

    # The image the Jobs name is the one the Dockerfile builds: non-root, the same user.
    dockerfile = (KUBERNETES / "Dockerfile").read_text()
    user = re.search(r"^USER (\d+)", dockerfile, re.M)
    assert user and int(user.group(1)) == pod["securityContext"]["runAsUser"]
    copied = {word for line in re.findall(r"^COPY (.+)$", dockerfile, re.M) for word in line.split()[:-1]}
    assert {"pyproject.toml", "README.md", "scanner", "checks", "reports"} <= copied
    assert all((REPO / source).exists() for source in copied)


def test_kubernetes_jobs_run_shards_side_by_side_and_merge(reference: Reference, tmp_path: Path) -> None:
    documents = kubernetes_documents()
    scan_job, merge_job = documents["Job/mtls-audit-scan"], documents["Job/mtls-audit-merge"]
    count = scan_job["spec"]["completions"]
    config, reports = tmp_path / "config", tmp_path / "reports"
    config.mkdir()
    reports.mkdir()
    shutil.copy(reference.inventory, config / "inventory.yaml")  # the ConfigMap's key, at its mountPath
    paths = {"/config/inventory.yaml": str(config / "inventory.yaml"), "/reports": str(reports)}
    base = base_environment(tmp_path / "home")

    scan = only_container(scan_job)
    shards = []
    for index in range(count):
        env = container_environment(scan, base, JOB_COMPLETION_INDEX=str(index))  # the Job controller's
        shards.append(Command(container_argv(scan, env, paths), tmp_path / f"pod-{index}", env))
    for index, result in enumerate(run_side_by_side(shards, tmp_path / "scan-logs")):
        assert result.returncode == 0, f"shard {index}: {result}"  # the report is written: the pod succeeds
    assert_shard_reports([reports / f"shard-{index}.json" for index in range(count)], count)

    merge = only_container(merge_job)
    paths = {"/reports": str(reports)}
    env = container_environment(merge, base)
    merged = run_one(Command(container_argv(merge, env, paths), tmp_path / "merge-pod", env), tmp_path / "merge-log")
    words = command_line(merge["args"][-1], "mtls-audit merge")
    report, sarif = (Path(flag_value(words, flag).replace("/reports", str(reports))) for flag in ("--json", "--sarif"))
    assert_merge_is_the_unsharded_scan(merged, report, sarif, reference)
    for flag in ("--html", "--junit", "--siem-out"):
        assert Path(flag_value(words, flag).replace("/reports", str(reports))).stat().st_size > 0


def test_kubernetes_expansion_is_the_kubelets() -> None:
    env = {"JOB_COMPLETION_INDEX": "2"}
    assert kubernetes_expand("--shard $(JOB_COMPLETION_INDEX)/3", env) == "--shard 2/3"
    assert kubernetes_expand("$(UNKNOWN) $$(JOB_COMPLETION_INDEX) ${JOB_COMPLETION_INDEX}", env) == (
        "$(UNKNOWN) $(JOB_COMPLETION_INDEX) ${JOB_COMPLETION_INDEX}"
    )


# -- GitHub Actions: a shard matrix, artifacts, a merge job ---------------------------


def github_expand(text: str, values: Mapping[str, str]) -> str:
    """Substitute ${{ EXPRESSION }} from ``values``; any other expression fails the test."""

    def replace(match: re.Match) -> str:
        expression = match.group(1)
        assert expression in values, f"${{{{ {expression} }}}}: not an expression the test knows"
        return values[expression]

    return re.sub(r"\$\{\{\s*(.*?)\s*\}\}", replace, text)


def step_running(job: dict, program: str) -> dict:
    (step,) = [step for step in job["steps"] if program in step.get("run", "")]
    return step


def step_using(job: dict, action: str) -> dict:
    (step,) = [step for step in job["steps"] if step.get("uses", "").startswith(action + "@")]
    return step


def test_github_workflow_runs_shards_side_by_side_and_merges(reference: Reference, tmp_path: Path) -> None:
    workflow = yaml.safe_load(GITHUB_WORKFLOW.read_text())
    # `shell: bash` is what GitHub runs as `bash --noprofile --norc -eo pipefail {0}`.
    assert workflow["defaults"]["run"]["shell"] == "bash"
    bash = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
    scan_job, merge_job = workflow["jobs"]["scan"], workflow["jobs"]["merge"]
    strategy = scan_job["strategy"]
    assert strategy["fail-fast"] is False
    matrix = strategy["matrix"]["shard"]
    count = len(matrix)
    assert matrix == list(range(count))
    scan_step, upload = step_running(scan_job, "mtls-audit scan"), step_using(scan_job, "actions/upload-artifact")
    base = base_environment(tmp_path / "home")

    commands, workspaces = [], []
    for shard in matrix:
        workspace = tmp_path / f"runner-{shard}"  # each shard job has a runner of its own
        workspace.mkdir()
        shutil.copy(reference.inventory, workspace / "inventory.yaml")  # actions/checkout
        script = github_expand(scan_step["run"], {"matrix.shard": str(shard)})
        commands.append(Command(script_command(bash, script, tmp_path, f"scan-{shard}"), workspace, base))
        workspaces.append(workspace)
    for shard, result in zip(matrix, run_side_by_side(commands, tmp_path / "scan-logs"), strict=True):
        assert result.returncode == 0, f"shard {shard}: {result}"

    artifacts: dict[str, Path] = {}
    for shard, workspace in zip(matrix, workspaces, strict=True):
        name = github_expand(upload["with"]["name"], {"matrix.shard": str(shard)})
        artifacts[name] = workspace / github_expand(upload["with"]["path"], {"matrix.shard": str(shard)})
        assert upload["with"]["if-no-files-found"] == "error"
    assert len(artifacts) == count, "artifact names must differ per shard"
    assert_shard_reports(list(artifacts.values()), count)

    needs = merge_job["needs"]
    assert "scan" in ([needs] if isinstance(needs, str) else needs)
    assert merge_job["permissions"]["security-events"] == "write"
    workspace = tmp_path / "runner-merge"
    workspace.mkdir()
    shutil.copy(reference.inventory, workspace / "inventory.yaml")  # actions/checkout: SARIF paths
    download = step_using(merge_job, "actions/download-artifact")["with"]
    assert download["merge-multiple"] is True
    downloaded = [name for name in artifacts if fnmatch.fnmatchcase(name, download["pattern"])]
    assert sorted(downloaded) == sorted(artifacts)
    for name in downloaded:
        shutil.copy(artifacts[name], workspace / download.get("path", ".") / artifacts[name].name)

    merge_step = step_running(merge_job, "mtls-audit merge")
    outputs_file = tmp_path / "github_output"
    outputs_file.touch()
    env = {**base, "GITHUB_OUTPUT": str(outputs_file)}
    script = github_expand(merge_step["run"], {})
    merged = run_one(Command(script_command(bash, script, tmp_path, "merge"), workspace, env), tmp_path / "merge-log")
    assert merged.returncode == 0, merged  # the step records the exit code; the last step decides
    outputs = dict(line.split("=", 1) for line in outputs_file.read_text().splitlines())
    verdict_step = merge_job["steps"][-1]
    values = {f"steps.{merge_step['id']}.outputs.{key}": value for key, value in outputs.items()}
    verdict = run_one(
        Command(script_command(bash, github_expand(verdict_step["run"], values), tmp_path, "verdict"), workspace, base),
        tmp_path / "verdict-log",
    )

    words = command_line(script, "mtls-audit merge")
    report, sarif = workspace / flag_value(words, "--json"), workspace / flag_value(words, "--sarif")
    assert_merge_is_the_unsharded_scan(verdict, report, sarif, reference)
    upload_sarif = step_using(merge_job, "github/codeql-action/upload-sarif")
    assert workspace / upload_sarif["with"]["sarif_file"] == sarif
    assert sarif_uris(sarif) == {"inventory.yaml"}  # relative to the checkout, as code scanning resolves it


# -- GitLab CI: parallel shards, artifacts, a merge job in a later stage -------------


def gitlab_jobs(pipeline: dict) -> dict[str, dict]:
    reserved = {"stages", "variables", "default", "include", "workflow", "image", "services", "cache"}
    return {name: job for name, job in pipeline.items() if name not in reserved and not name.startswith(".")}


def test_gitlab_pipeline_runs_shards_side_by_side_and_merges(reference: Reference, tmp_path: Path) -> None:
    pipeline = yaml.safe_load(GITLAB_CI.read_text())
    jobs = gitlab_jobs(pipeline)
    ((scan_name, scan_job),) = [(name, job) for name, job in jobs.items() if "parallel" in job]
    ((merge_name, merge_job),) = [(name, job) for name, job in jobs.items() if scan_name in job.get("needs", [])]
    stages = pipeline["stages"]
    assert stages.index(merge_job["stage"]) > stages.index(scan_job["stage"])
    count = scan_job["parallel"]
    script = "\n".join(scan_job["script"])
    assert "CI_NODE_INDEX - 1" in script  # CI_NODE_INDEX counts from 1
    # The runner runs the lines as one script under `set -eo pipefail`; -u here so that
    # a misspelled variable fails instead of expanding to nothing.
    bash = ["bash", "-euo", "pipefail"]
    base = {**base_environment(tmp_path / "home"), **pipeline.get("variables", {})}

    commands, workspaces = [], []
    for node in range(1, count + 1):
        workspace = tmp_path / f"job-{node}"
        workspace.mkdir()
        shutil.copy(reference.inventory, workspace / "inventory.yaml")  # the checkout
        env = {**base, "CI_NODE_INDEX": str(node), "CI_NODE_TOTAL": str(count)}
        commands.append(Command(script_command(bash, script, tmp_path, f"scan-{node}"), workspace, env))
        workspaces.append(workspace)
    for node, result in enumerate(run_side_by_side(commands, tmp_path / "scan-logs"), start=1):
        assert result.returncode == 0, f"{scan_name} {node}/{count}: {result}"

    # `needs` brings every parallel job's artifacts into the merge job's workspace.
    workspace = tmp_path / "job-merge"
    workspace.mkdir()
    shutil.copy(reference.inventory, workspace / "inventory.yaml")
    artifacts = []
    for job_workspace in workspaces:
        for pattern in scan_job["artifacts"]["paths"]:
            artifacts += sorted(job_workspace.glob(pattern))
    assert len({path.name for path in artifacts}) == len(artifacts) == count, artifacts
    assert_shard_reports(sorted(artifacts, key=lambda path: path.name), count)
    for path in artifacts:
        shutil.copy(path, workspace / path.name)

    merge_script = "\n".join(merge_job["script"])
    merged = run_one(
        Command(script_command(bash, merge_script, tmp_path, "merge"), workspace, base), tmp_path / "merge-log"
    )
    words = command_line(merge_script, "mtls-audit merge")
    report, sarif = workspace / flag_value(words, "--json"), workspace / flag_value(words, "--sarif")
    assert_merge_is_the_unsharded_scan(merged, report, sarif, reference)
    assert sarif_uris(sarif) == {"inventory.yaml"}
    artifacts_out = merge_job["artifacts"]
    assert artifacts_out["when"] == "always"  # the reports of a failing verdict are kept
    assert artifacts_out["reports"]["junit"] == flag_value(words, "--junit")
    assert all((workspace / path).stat().st_size > 0 for path in artifacts_out["paths"])
