"""docs/ci.md: its GitHub Actions and GitLab CI jobs parse, gate the deployment, and every
``robustgate`` command in them is one the CLI accepts."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import yaml

from service.cli import _parser

DOC = Path(__file__).resolve().parents[1] / "docs" / "ci.md"


def _yaml_blocks() -> list[dict]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def _commands(lines: list[str]) -> list[list[str]]:
    found = []
    for line in lines:
        for part in line.split("\n"):
            part = part.strip()
            if part.startswith("robustgate "):
                found.append(shlex.split(part)[1:])
    return found


def _accepted(argv: list[str]) -> str:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            args = _parser().parse_args(argv)
        except SystemExit:
            raise AssertionError(f"the CLI refuses {argv}: {stderr.getvalue()}") from None
    return args.command


def _check_gate(certify_cmds: list[list[str]], deploy_cmds: list[list[str]]) -> None:
    assert [_accepted(c) for c in certify_cmds] == ["submit"]
    submit = certify_cmds[0]
    assert {"--wait", "--junit", "--report", "--standard"} <= set(submit)
    assert [_accepted(c) for c in deploy_cmds] == ["verify-certificate"]
    verify = deploy_cmds[0]
    assert {"--model", "--public-key", "--standard"} <= set(verify)
    assert verify[1].endswith("certificate.json")


def test_github_actions_job_gates_the_deployment():
    workflow = next(b for b in _yaml_blocks() if "jobs" in b)
    assert set(workflow[True if True in workflow else "on"]) == {"pull_request", "push"}
    certify, deploy = workflow["jobs"]["certify"], workflow["jobs"]["deploy"]
    assert deploy["needs"] == "certify"
    runs = [s.get("run", "") for s in certify["steps"]]
    _check_gate(_commands(runs), _commands([s.get("run", "") for s in deploy["steps"]]))
    uses = {s.get("uses", "").split("@")[0]: s for s in certify["steps"] + deploy["steps"]}
    assert uses["mikepenz/action-junit-report"]["with"]["report_paths"] == "robustgate-junit.xml"
    upload = uses["actions/upload-artifact"]["with"]
    assert uses["actions/download-artifact"]["with"]["name"] == upload["name"]
    assert "robustgate/" in upload["path"] and "always()" in uses["actions/upload-artifact"]["if"]
    # Verification comes before the deploy step.
    names = [s.get("name", "") for s in deploy["steps"]]
    assert names.index("Deploy") > max(i for i, s in enumerate(deploy["steps"])
                                       if "verify-certificate" in s.get("run", ""))


def test_gitlab_job_gates_the_deployment():
    pipeline = next(b for b in _yaml_blocks() if "stages" in b)
    assert pipeline["stages"] == ["build", "certify", "deploy"]
    certify, deploy = pipeline["certify"], pipeline["deploy"]
    _check_gate(_commands(certify["script"]), _commands(deploy["script"]))
    assert certify["artifacts"]["reports"]["junit"] == "robustgate-junit.xml"
    assert certify["artifacts"]["when"] == "always"
    assert "robustgate/" in certify["artifacts"]["paths"]
    assert deploy["needs"] == ["certify"] and deploy["stage"] == "deploy"
    script = deploy["script"]
    assert script.index(next(s for s in script if "verify-certificate" in s)) < len(script) - 1
