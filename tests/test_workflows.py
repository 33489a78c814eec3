"""The GitHub workflows and the Dockerfile, checked offline: the workflow JSON schema, a security
linter (zizmor), every `run:` step's commands, hadolint, and the image's pins."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from helpers import BIN, ROOT, sh
from sentinelle.cli import parser

WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
SHELL_WORDS = {"if", "then", "else", "fi", "[", "echo"}


def dev_commands() -> set[str]:
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    assert spec and spec.loader
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    return {*dev.COMMANDS, "setup"}


def steps() -> list[tuple[str, str, list[dict]]]:
    """(workflow, job, steps) of every job."""
    out = []
    for wf in WORKFLOWS:
        for name, job in yaml.safe_load(wf.read_text())["jobs"].items():
            out.append((wf.name, name, job["steps"]))
    return out


def commands(script: str) -> list[list[str]]:
    """The simple commands of a bash script: words, with leading VAR=value assignments dropped."""
    out = []
    for line in script.splitlines():
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part, comments=True)
            while words and re.match(r"^\w+=", words[0]):
                words = words[1:]
            if words:
                out.append(words)
    return out


def test_the_three_workflows_exist() -> None:
    assert [w.name for w in WORKFLOWS] == ["pr-report.yml", "release.yml", "tests.yml"]


def test_workflows_match_the_github_workflow_schema() -> None:
    proc = sh(
        BIN / "check-jsonschema",
        "--builtin-schema",
        "vendor.github-workflows",
        *WORKFLOWS,
        cwd=ROOT,
    )
    assert "ok -- validation done" in proc.stdout


def test_zizmor_finds_nothing_even_pedantic() -> None:
    proc = sh(BIN / "zizmor", "--offline", "--persona=pedantic", ".github/workflows", cwd=ROOT)
    assert "No findings to report" in proc.stdout


def test_zizmor_does_flag_a_template_injection(tmp_path: Path) -> None:
    bad = tmp_path / ".github/workflows/bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "on: pull_request\npermissions: {}\njobs:\n  x:\n    runs-on: ubuntu-24.04\n"
        "    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    proc = sh(BIN / "zizmor", "--offline", bad.parent, cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "template-injection" in proc.stdout


def test_every_run_step_calls_a_command_that_exists() -> None:
    dev = dev_commands()
    cli = parser()
    seen = set()
    for workflow, job, job_steps in steps():
        uses = [s.get("uses", "").split("@")[0] for s in job_steps]
        for step in job_steps:
            for words in commands(step.get("run", "")):
                where = f"{workflow} {job}: {' '.join(words)}"
                tool = words[0]
                seen.add(tool if "/" not in tool else tool.rsplit("/", 1)[-1])
                if tool in SHELL_WORDS:
                    continue
                if tool == "python3":
                    assert words[1] == "dev.py" and words[2] in dev, where
                elif tool == ".venv/bin/sentinelle":
                    args = [re.sub(r"\$\w+|\"", "x", w) for w in words[1:]]
                    cli.parse_args(args)  # exits (fails the test) on an unknown option
                elif tool == ".venv/bin/dvc":
                    help_text = sh(BIN / "dvc", words[1], "--help", cwd=ROOT).stdout
                    for flag in (w for w in words[2:] if w.startswith("--")):
                        assert flag in help_text, where
                elif tool == "bash":
                    assert (ROOT / words[1]).is_file(), where
                elif tool == "cml":
                    assert "iterative/setup-cml" in uses, where
                    assert words[1:3] == ["comment", "update"], where
                else:
                    pytest.fail(f"unknown command in {where}")
    assert {"sentinelle", "dvc", "python3", "cml", "bash"} <= seen


def test_pr_report_uses_oidc_and_comments_once() -> None:
    pr = yaml.safe_load((ROOT / ".github/workflows/pr-report.yml").read_text())
    job = pr["jobs"]["report"]
    assert job["permissions"] == {
        "contents": "read",
        "id-token": "write",
        "pull-requests": "write",
    }
    aws = next(s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", ""))
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    runs = [s.get("run", "") for s in job["steps"]]
    assert runs.index(next(r for r in runs if "sentinelle report" in r)) < runs.index(
        next(r for r in runs if "sentinelle gate" in r)
    )  # the comment is posted even when the gate then fails the job


def test_the_dockerfile_passes_hadolint() -> None:
    proc = sh(BIN / "hadolint", "Dockerfile", cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stdout
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in text
    assert re.search(r"^USER 10001", text, re.M) and "HEALTHCHECK" in text


def pins(name: str) -> dict[str, str]:
    lines = (ROOT / name).read_text().splitlines()
    pairs = (line.split("==") for line in lines if "==" in line and not line.startswith("#"))
    return {name.lower().replace("_", "-"): version for name, version in pairs}


def test_the_image_pins_what_the_pipeline_pins() -> None:
    serve, runtime, constraints = (
        pins(n) for n in ("requirements-serve.txt", "requirements.txt", "constraints.txt")
    )
    assert {"fastapi", "uvicorn", "scikit-learn", "skops"} <= set(serve)
    for name, version in serve.items():
        assert runtime.get(name) == version == constraints.get(name), name


def test_the_oidc_trust_policy_admits_only_this_repos_prs_and_release_tags() -> None:
    doc = json.loads((ROOT / "iam/github-oidc-trust.json").read_text())
    [st] = doc["Statement"]
    assert st["Action"] == "sts:AssumeRoleWithWebIdentity" and st["Effect"] == "Allow"
    assert st["Principal"]["Federated"].endswith(
        ":oidc-provider/token.actions.githubusercontent.com"
    )
    cond = st["Condition"]
    assert cond["StringEquals"] == {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
    assert cond["StringLike"]["token.actions.githubusercontent.com:sub"] == [
        "repo:OWNER/REPO:pull_request",
        "repo:OWNER/REPO:ref:refs/tags/spam-classifier@*",
    ]
    release = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())
    assert release[True]["push"]["tags"] == ["spam-classifier@v*"]  # YAML 1.1 reads `on` as True
