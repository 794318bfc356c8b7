"""``tradeguard rules export`` as a user runs it: a line per file and a summary on success; on
bad input one ``error:`` line and exit 2, never a traceback, and nothing written.

Each case runs the real command line in a child interpreter, so what is checked is exactly
what a terminal shows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tradeguard.cli", "rules", "export", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_repo(tmp_path: Path) -> Path:
    """The rule files and Alertmanager configuration of the repository, to break one thing."""
    repo = tmp_path / "repo"
    shutil.copytree(DEPLOY / "prometheus" / "rules", repo / "deploy" / "prometheus" / "rules")
    shutil.copytree(DEPLOY / "alertmanager", repo / "deploy" / "alertmanager")
    return repo


def test_export_writes_a_file_per_object_with_a_line_each_and_a_summary(tmp_path: Path) -> None:
    done = run("--repo", str(REPO), "--namespace", "monitoring", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "build" / "prometheus-operator"  # the default, under the cwd
    files = sorted(out.glob("*.yaml"))
    rule_files = list((DEPLOY / "prometheus" / "rules").glob("*.rules.yml"))
    assert len(files) == len(rule_files) + 2  # + the AlertmanagerConfig and its templates
    lines = done.stdout.splitlines()
    wrote = [line for line in lines if line.startswith("wrote ")]
    assert sorted(line.split()[1] for line in wrote) == sorted(
        str(Path("build/prometheus-operator") / f.name) for f in files
    )
    rest = lines[len(wrote) :]
    assert rest[0].startswith(f"exported {len(files)} objects to build/prometheus-operator")
    assert any("create Secret tradeguard-alertmanager in namespace monitoring" in x for x in rest)
    assert any('namespace="<ns>"' in line for line in rest)
    assert rest[-1] == "apply with: kubectl -n monitoring apply -f build/prometheus-operator"
    assert done.stderr == ""
    for secret in (DEPLOY / "alertmanager" / "secrets").iterdir():
        if secret.name != "README.md":
            assert secret.read_text().strip() not in done.stdout


def test_format_out_label_and_runbook_options(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    done = run(
        "--repo",
        str(REPO),
        "--format",
        "prometheus-operator",
        "--out",
        str(out),
        "--label",
        "release=kube-prometheus-stack",
        "--label",
        "team=trading",
        "--runbook-base-url",
        "https://console.example.com",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    text = (out / "prometheusrule-tradeguard-meta.yaml").read_text()
    assert "release: kube-prometheus-stack\n    team: trading\n" in text
    assert "runbook_url: https://console.example.com/runbooks/Watchdog\n" in text
    assert "namespace:" not in text.split("spec:")[0]


BAD_INPUT = {
    "missing rule directory": (
        lambda repo: shutil.rmtree(repo / "deploy" / "prometheus" / "rules"),
        [],
        "rule directory not found",
    ),
    "unparsable rule file": (
        lambda repo: (repo / "deploy" / "prometheus" / "rules" / "meta.rules.yml").write_text(
            "groups:\n  - name: [unclosed\n"
        ),
        [],
        "meta.rules.yml: not valid YAML",
    ),
    "unparsable alertmanager.yml": (
        lambda repo: (repo / "deploy" / "alertmanager" / "alertmanager.yml").write_text(
            "route: {receiver: x\n"
        ),
        [],
        "alertmanager.yml: not valid YAML",
    ),
    "notifier without equivalent": (
        lambda repo: (repo / "deploy" / "alertmanager" / "alertmanager.yml").write_text(
            "route: {receiver: x}\nreceivers: [{name: x, sns_configs: [{}]}]\n"
        ),
        [],
        "receivers[x].sns_configs: not translated",
    ),
    "unknown format": (lambda repo: None, ["--format", "helm"], "unknown format 'helm'"),
    "bad label": (lambda repo: None, ["--label", "no-equals-sign"], "--label wants KEY=VALUE"),
    "bad namespace": (lambda repo: None, ["--namespace", "Not_Valid"], "--namespace"),
    "bad runbook base URL": (
        lambda repo: None,
        ["--runbook-base-url", "console.example.com"],
        "--runbook-base-url",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_error_line_and_exit_2(case: str, tmp_path: Path) -> None:
    breaks, args, said = BAD_INPUT[case]
    repo = copy_repo(tmp_path)
    breaks(repo)
    out = tmp_path / "out"
    done = run("--repo", str(repo), "--out", str(out), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert said in lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    assert not out.exists()


def test_a_directory_that_cannot_be_written_is_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = run("--repo", str(REPO), "--out", str(blocker / "out"), cwd=tmp_path)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("error: cannot write")


def test_help_explains_the_objects_the_secret_and_the_namespace_scope(tmp_path: Path) -> None:
    done = run("--help", cwd=tmp_path)
    assert done.returncode == 0
    text = " ".join(done.stdout.replace("│", " ").split())
    for said in (
        "PrometheusRule (monitoring.coreos.com/v1)",
        "AlertmanagerConfig (monitoring.coreos.com/v1alpha1)",
        "Kubernetes Secret",
        "namespace=",
        "enforcedNamespaceLabel",
        "alertmanagerConfigMatcherStrategy",
        "--runbook-base-url",
        "--label",
        "--namespace",
        "--out",
    ):
        assert said in text, said
