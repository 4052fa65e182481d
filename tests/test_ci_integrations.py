"""The GitHub Action (action.yml) and the GitLab CI template, run for real: their shell steps,
extracted with pyyaml, against a real `robustgate serve`. The GitHub-only parts (artifact
upload, the pull-request comment) are guarded by their `if:` and skipped here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.lightclient_support import ROOT, make_tenant

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@pytest.fixture(scope="module")
def tenant(embedded_server, tmp_path_factory):
    return make_tenant(embedded_server, "ci", tmp_path_factory.mktemp("ci"))


@pytest.fixture(scope="module")
def action_path(tmp_path_factory) -> Path:
    """A copy of what `uses: org/robustgate@ref` checks out (the action and client/)."""
    dest = tmp_path_factory.mktemp("action")
    shutil.copy(ROOT / "action.yml", dest / "action.yml")
    shutil.copytree(ROOT / "client", dest / "client",
                    ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    return dest


def _outputs(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


class ActionRun:
    """Runs the composite action's `run:` steps the way the runner would."""

    def __init__(self, action_path: Path, work: Path, inputs: dict[str, str]) -> None:
        self.doc = yaml.safe_load((action_path / "action.yml").read_text())
        defaults = {k: str(v.get("default", "")) for k, v in self.doc["inputs"].items()}
        self.inputs = defaults | inputs
        self.action_path, self.work = action_path, work
        self.steps: dict[str, dict[str, str]] = {}
        self.summary = work / "step-summary.md"

    def _eval(self, text: str) -> str:
        def one(match: re.Match) -> str:
            expr = match.group(1)
            if expr.startswith("inputs."):
                return self.inputs[expr[len("inputs."):]]
            if m := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr):
                return self.steps.get(m.group(1), {}).get(m.group(2), "")
            return {"github.action_path": str(self.action_path),
                    "runner.temp": str(self.work / "runner-temp")}[expr]

        return EXPR.sub(one, str(text))

    def run(self, skip_install_from: ActionRun | None = None) -> int:
        rc = 0
        for step in self.doc["runs"]["steps"]:
            guard = step.get("if", "")
            if "uses" in step or "github.event_name" in guard:
                continue  # GitHub-only: artifact upload, PR comment
            if step.get("id") == "install" and skip_install_from is not None:
                self.steps["install"] = skip_install_from.steps["install"]
                continue
            out = self.work / f"out-{step.get('id', len(self.steps))}"
            out.write_text("")
            env = {k: v for k, v in os.environ.items() if not k.startswith("ROBUSTGATE_")}
            env |= {k: self._eval(v) for k, v in step.get("env", {}).items()}
            env |= {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(self.summary)}
            (self.work / "runner-temp").mkdir(exist_ok=True)
            # As the runner does for `shell: bash`: bash --noprofile --norc -eo pipefail.
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                                   self._eval(step["run"])], env=env,
                                  cwd=self.work, capture_output=True, text=True, timeout=900)
            self.steps[step.get("id", step["name"])] = _outputs(out)
            self.log = getattr(self, "log", "") + proc.stdout + proc.stderr
            rc = proc.returncode
            if rc != 0:
                return rc
        return rc


def test_action_passes_fails_and_gates_inconclusive(tenant, action_path, tmp_path):
    base = {"server": tenant.url, "token": tenant.token, "model": str(tenant.model),
            "data": str(tenant.data)}
    (tmp_path / "pass").mkdir()
    ok = ActionRun(action_path, tmp_path / "pass", base | {"standard": "lc-pass"})
    assert ok.run() == 0, ok.log
    assert ok.steps["certify"]["verdict"] == "PASS" and ok.steps["certify"]["certification_id"]
    report = tmp_path / "pass" / "robustgate-report"
    md = (report / "report.md").read_text()
    assert md.startswith("<!-- robustgate -->") and md.count("<!-- robustgate -->") == 1
    assert (report / "junit.xml").is_file() and (report / "certificate.json").is_file()
    assert "PASS" in ok.summary.read_text()

    cases = [("lc-fail", {}, 1, "FAIL"), ("lc-inconclusive", {}, 2, "INCONCLUSIVE"),
             ("lc-inconclusive", {"on-inconclusive": "pass"}, 0, "INCONCLUSIVE")]
    for standard, extra, code, verdict in cases:
        work = tmp_path / f"{standard}-{code}"
        work.mkdir()
        run = ActionRun(action_path, work, base | {"standard": standard} | extra)
        assert run.run(skip_install_from=ok) == code, run.log
        assert run.steps["certify"]["verdict"] == verdict

    work = tmp_path / "down"
    work.mkdir()
    down = ActionRun(action_path, work, base | {"standard": "lc-pass",
                                                "server": "http://127.0.0.1:9"})
    assert down.run(skip_install_from=ok) == 2
    assert down.steps["certify"]["verdict"] == "ERROR"


def test_action_guards_its_github_only_steps():
    doc = yaml.safe_load((ROOT / "action.yml").read_text())
    steps = {s["name"]: s for s in doc["runs"]["steps"]}
    assert doc["runs"]["using"] == "composite"
    upload = next(s for s in steps.values() if s.get("uses", "").startswith(
        "actions/upload-artifact@"))
    assert upload["if"].startswith("always()")
    comment = next(s for s in steps.values() if "gh api" in s.get("run", ""))
    assert "github.event_name == 'pull_request'" in comment["if"]
    assert "<!-- robustgate -->" in comment["run"] and "PATCH" in comment["run"]
    # No input is interpolated into a script (script injection): inputs go through env.
    for step in steps.values():
        assert "${{" not in step.get("run", ""), step["name"]


def test_gitlab_template_runs_and_wires_junit(tenant, tmp_path):
    doc = yaml.safe_load((ROOT / "ci" / "gitlab" / "robustgate.gitlab-ci.yml").read_text())
    job = doc[".robustgate"]
    assert job["artifacts"]["reports"]["junit"] == "robustgate-report/junit.xml"
    assert job["artifacts"]["when"] == "always"
    spec = tmp_path / "client"
    shutil.copytree(ROOT / "client", spec,
                    ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    script = "\n".join(job["script"])

    def run(standard: str, **extra: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROBUSTGATE_")}
        env |= {k: str(v) for k, v in job["variables"].items()}
        env |= {"ROBUSTGATE_SERVER": tenant.url, "ROBUSTGATE_TOKEN": tenant.token,
                "ROBUSTGATE_CLIENT_SPEC": str(spec), "RG_MODEL": str(tenant.model),
                "RG_DATA": str(tenant.data), "RG_STANDARD": standard} | extra
        # GitLab runs the script lines in one shell with errexit.
        return subprocess.run(["bash", "-e", "-c", script], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=900)

    passed = run("lc-pass")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    junit = tmp_path / "robustgate-report" / "junit.xml"
    assert junit.is_file() and "<testcase" in junit.read_text()
    assert run("lc-fail").returncode == 1
    assert run("lc-inconclusive").returncode == 2
    assert run("lc-inconclusive", RG_ON_INCONCLUSIVE="pass").returncode == 0
