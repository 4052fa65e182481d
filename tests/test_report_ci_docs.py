"""docs/ci.md: its GitHub Actions and GitLab CI jobs parse, gate the deployment, install the
light client from the repository (never by a bare name from a public index), and every
``robustgate-client`` command in them is one the light client accepts."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import yaml
from robustgate_client.cli import _parser

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ci.md"


def _yaml_blocks() -> list[dict]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def _commands(lines: list[str]) -> list[list[str]]:
    found = []
    for line in lines:
        for part in line.split("\n"):
            part = part.strip()
            if part.startswith("robustgate-client "):
                found.append(shlex.split(part)[1:])
    return found


def _accepted(argv: list[str]) -> str:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            args = _parser().parse_args(argv)
        except SystemExit:
            raise AssertionError(f"the client refuses {argv}: {stderr.getvalue()}") from None
    return args.command


def _check_verify(deploy_cmds: list[list[str]]) -> None:
    assert [_accepted(c) for c in deploy_cmds] == ["verify-certificate"]
    verify = deploy_cmds[0]
    assert {"--model", "--public-key", "--standard"} <= set(verify)
    assert verify[1].endswith("certificate.json")


def test_no_install_from_an_unclaimed_name():
    text = DOC.read_text()
    assert "robustgate==" not in text
    for spec in re.findall(r'pip install "([^"$]+)"', text):
        assert "git+" in spec or spec.endswith(".whl"), spec
    assert "#subdirectory=client" in text


def test_github_actions_job_uses_the_action_and_gates_the_deployment():
    workflow = next(b for b in _yaml_blocks() if "jobs" in b)
    assert set(workflow[True if True in workflow else "on"]) == {"pull_request", "push"}
    certify, deploy = workflow["jobs"]["certify"], workflow["jobs"]["deploy"]
    assert deploy["needs"] == "certify"
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    step = next(s for s in certify["steps"] if s.get("uses", "").endswith("/robustgate@v0.1.0"))
    required = {k for k, v in action["inputs"].items() if v.get("required")}
    assert required <= set(step["with"]) <= set(action["inputs"])
    assert "CLIENT_SPEC" in workflow["env"] and "git+" in workflow["env"]["CLIENT_SPEC"]
    _check_verify(_commands([s.get("run", "") for s in deploy["steps"]]))
    uses = [s.get("uses", "").split("@")[0] for s in deploy["steps"]]
    assert uses.count("actions/download-artifact") == 2
    downloaded = {s["with"]["name"] for s in deploy["steps"]
                  if s.get("uses", "").startswith("actions/download-artifact")}
    assert downloaded == {step["with"]["artifact-name"], "certified-model"}
    names = [s.get("name", "") for s in deploy["steps"]]
    assert names.index("Deploy") > max(i for i, s in enumerate(deploy["steps"])
                                       if "verify-certificate" in s.get("run", ""))


def test_gitlab_job_extends_the_template_and_gates_the_deployment():
    pipeline = next(b for b in _yaml_blocks() if "stages" in b)
    assert pipeline["stages"] == ["build", "certify", "deploy"]
    assert pipeline["include"][0]["file"] == "ci/gitlab/robustgate.gitlab-ci.yml"
    assert (ROOT / pipeline["include"][0]["file"]).is_file()
    certify, deploy = pipeline["certify"], pipeline["deploy"]
    assert certify["extends"] == ".robustgate"
    template = yaml.safe_load((ROOT / "ci/gitlab/robustgate.gitlab-ci.yml").read_text())
    assert set(certify["variables"]) <= set(template[".robustgate"]["variables"])
    _check_verify(_commands(deploy["script"]))
    assert deploy["needs"] == ["build-model", "certify"] and deploy["stage"] == "deploy"
    script = deploy["script"]
    assert script.index(next(s for s in script if "verify-certificate" in s)) < len(script) - 1
