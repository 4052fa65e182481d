"""One declared device per worker and per run: resolved at start, refused when absent, and
named in the scorecard. (The CUDA side is in tests/test_gpu.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from service.config import ConfigError, load_settings
from tests.fixtures_service import clean_env
from verifiers.data import load_eval_set
from verifiers.device import describe, resolve_device
from verifiers.errors import DeviceError
from verifiers.pipeline import certify
from verifiers.standards import get_builtin, parse_standard

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_devices_resolve_or_are_refused_by_name():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert str(resolve_device("auto")) == str(resolve_device(None)) == auto
    with pytest.raises(DeviceError, match="use auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    with pytest.raises(DeviceError, match="cuda:99"):
        resolve_device("cuda:99")
    assert describe(torch.device("cpu")) == {"device": "cpu"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_gpu_is_refused_at_once():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")


def test_the_setting_is_validated_and_passed_to_child_processes(tmp_path):
    base = clean_env() | {"ROBUSTGATE_DATA_DIR": str(tmp_path)}
    assert load_settings(base).device == "auto"
    settings = load_settings(base | {"ROBUSTGATE_DEVICE": "cpu"})
    assert settings.device == "cpu" and settings.as_env()["ROBUSTGATE_DEVICE"] == "cpu"
    with pytest.raises(ConfigError, match="ROBUSTGATE_DEVICE='gpu0'"):
        load_settings(base | {"ROBUSTGATE_DEVICE": "gpu0"})


def test_a_worker_declares_its_device_and_refuses_one_it_lacks(tmp_path):
    absent = "cuda:99" if torch.cuda.is_available() else "cuda"
    script = ("import importlib, os\n"
              "import service.worker_entry as w\n"
              "print('hello', w.hello)\n"
              f"os.environ['ROBUSTGATE_DEVICE'] = {absent!r}\n"
              "try:\n"
              "    importlib.reload(w)\n"
              "except Exception as exc:\n"
              "    print('refused', type(exc).__name__, exc)\n")
    env = clean_env() | {"ROBUSTGATE_DATA_DIR": str(tmp_path), "ROBUSTGATE_DEVICE": "cpu"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "'device': 'cpu'" in out.stdout and "'setting': 'cpu'" in out.stdout
    assert f"refused DeviceError device {absent!r} asked for" in out.stdout


def test_the_scorecard_names_the_device_the_run_used():
    # A 1 ms time limit cuts every check: the run is quick and still writes a scorecard.
    standard = parse_standard(get_builtin("demo-digits").document + "time_limit_s: 0.001\n")
    card = certify((EXAMPLES / "digits_cnn.onnx").read_bytes(),
                   load_eval_set((EXAMPLES / "digits_eval.npz").read_bytes()), standard,
                   device="cpu")
    assert card["hardware"]["device"] == "cpu" and "gpu" not in card["hardware"]
