"""The GPU tier: skipped without CUDA, run by ``bash scripts/gpu_check.sh`` on a GPU machine.

- the battery on CUDA gives the CPU's verdict and, within a few samples, its figures;
- a worker declares one device and runs every step of a job on it;
- a CUDA out-of-memory error halves the batch for real (a real allocation, capped memory);
- Square's queries run through the torch module on the GPU, its claims re-checked on
  onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from verifiers.attacks.ball import Ball
from verifiers.attacks.battery import Target, cascade
from verifiers.attacks.budget import PRESETS
from verifiers.attacks.queries import score_fn
from verifiers.attacks.rowrandom import RowRandom
from verifiers.attacks.square import SquareConfig, square
from verifiers.data import InputDomain, load_eval_set
from verifiers.device import describe, resolve_device
from verifiers.model import load_model, to_torch
from verifiers.pipeline import certify
from verifiers.standards import get_builtin
from workers.oom import halving_on_oom

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# Figures are fractions of 300 samples: float rounding on another device may move an attack's
# trajectory, so a few points may differ (2% = 6 samples); verdicts must not.
TOLERANCE = 0.02


def test_per_sample_randomness_is_the_same_bits_on_cuda():
    rand = RowRandom.of(5, np.arange(64))
    assert torch.equal(rand.uniform((3, 32, 32), 1, "cuda").cpu(), rand.uniform((3, 32, 32), 1))


def test_the_battery_on_cuda_gives_the_cpu_verdict_and_figures(digits):
    standard = get_builtin("demo-digits")
    data = load_eval_set(digits.eval_set)
    model = digits.robust_model.read_bytes()
    on_cpu = certify(model, data, standard, seed=3, device="cpu")
    on_gpu = certify(model, data, standard, seed=3, device="cuda")
    assert on_cpu["hardware"]["device"] == "cpu"
    assert on_gpu["hardware"]["device"] == "cuda:0" and on_gpu["hardware"]["gpu"]
    assert on_gpu["verdict"] == on_cpu["verdict"]
    assert [c["result"] for c in on_gpu["criteria"]] == [c["result"] for c in on_cpu["criteria"]]
    assert {k: c["status"] for k, c in on_gpu["checks"].items()} == \
        {k: c["status"] for k, c in on_cpu["checks"].items()}
    assert on_gpu["metrics"]["clean.accuracy"] == on_cpu["metrics"]["clean.accuracy"]
    differ = {}
    for key, value in on_cpu["metrics"].items():
        other = on_gpu["metrics"].get(key)
        if "accuracy" in key and isinstance(value, float) and (
                other is None or abs(other - value) > TOLERANCE):
            differ[key] = (value, other)
    assert not differ, differ


def test_a_worker_runs_every_step_of_a_job_on_its_one_device(tmp_path):
    from fastapi.testclient import TestClient

    from service.api import create_app
    from service.auth import create_token
    from service.db.migrate import upgrade
    from service.jobstore import SqlJobStore
    from service.signing import load_or_create_signer
    from tests.fixtures_service import embedded_settings
    from workers.tasks import run_job

    device = resolve_device("cuda")
    assert describe(device)["gpu_memory_bytes"] > 0
    settings = embedded_settings(tmp_path / "svc")
    upgrade(settings.database_url)
    app = create_app(settings)
    with app.state.services.db.session() as s:
        headers = {"Authorization": f"Bearer {create_token(s, 'gpu')}"}
    with TestClient(app) as client:
        files = {"model": ("m.onnx", (EXAMPLES / "digits_cnn.onnx").read_bytes()),
                 "data": ("d.npz", (EXAMPLES / "digits_eval.npz").read_bytes())}
        job = client.post("/v1/certifications", files=files, data={"standard": "demo-digits"},
                          headers=headers).json()
        torch.cuda.reset_peak_memory_stats(device)
        services = app.state.services
        run_job(SqlJobStore(services.db, services.blobs, load_or_create_signer(tmp_path)),
                job["id"], device=str(device))
        done = client.get(f"/v1/certifications/{job['id']}", headers=headers).json()
        assert done["status"] == "succeeded", done
        card = client.get(f"/v1/certifications/{job['id']}/scorecard", headers=headers).json()
    assert card["hardware"]["device"] == "cuda:0"
    assert torch.cuda.max_memory_allocated(device) > 0  # the attacks ran on it


def test_an_out_of_memory_error_halves_the_batch_for_real():
    device = resolve_device("cuda")
    conv = torch.nn.Conv2d(3, 64, 3, padding=1).to(device)
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    cap = torch.cuda.memory_reserved(device) + 2 * 2**30  # 2 GiB more than already held
    tried: list[int] = []

    def step(batch: int) -> int:
        # About 40 MB per 224x224 sample forward and backward: 512 need ~20 GB.
        tried.append(batch)
        x = torch.rand(batch, 3, 224, 224, device=device, requires_grad=True)
        conv(x).square().sum().backward()
        return batch

    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), device)
    try:
        fitted = halving_on_oom(step, 512, "capped step")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()
    assert tried[0] == 512 and fitted < 512
    assert tried == [512 >> i for i in range(len(tried))] and fitted == tried[-1]


def test_square_queries_run_on_the_gpu_and_its_claims_hold_on_onnxruntime():
    device = resolve_device("cuda")
    loaded = load_model((EXAMPLES / "digits_cnn.onnx").read_bytes())
    data = load_eval_set((EXAMPLES / "digits_eval.npz").read_bytes())
    kind = loaded.info.output_kind
    target = Target(to_torch(loaded.proto, kind, device), loaded.runner, kind, device)
    on_cpu = Target(to_torch(loaded.proto, kind, torch.device("cpu")), loaded.runner, kind,
                    torch.device("cpu"))
    assert score_fn(target) != target.scores and score_fn(on_cpu) == on_cpu.scores
    correct = loaded.runner.predict(data.x) == data.y
    x, y = data.x[correct], data.y[correct]
    ball, domain = Ball("linf", 0.2), InputDomain(0.0, 1.0)
    # The scores agree with onnxruntime's within the default fidelity tolerance.
    ort, gpu = target.scores(x), score_fn(target)(x)
    assert (np.abs(ort - gpu).max(axis=1) <= 1e-4 * (ort.max(axis=1) - ort.min(axis=1))).all()
    # Square through the cascade (the worker's path): the forward passes allocate on the GPU.
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    res = cascade(target, x, y, ball, domain, PRESETS["quick"], ("square",),
                  RowRandom.of(0, np.arange(len(x))))
    assert torch.cuda.max_memory_allocated(device) > before
    assert res.successes["square"] > 0 and res.rejected <= 0.02 * len(x)
    assert (loaded.runner.predict(res.x_adv[res.fooled]) != y[res.fooled]).all()
    # Same seed on onnxruntime (the CPU path): about the same points fall.
    rng = np.random.default_rng(1)
    gpu_out = square(score_fn(target), x, y, ball, domain, SquareConfig(200), rng)
    ort_out = square(on_cpu.scores, x, y, ball, domain, SquareConfig(200),
                     np.random.default_rng(1))
    assert abs(int(gpu_out.fooled.sum()) - int(ort_out.fooled.sum())) <= 0.05 * len(x)
