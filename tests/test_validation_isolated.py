"""Uploads are validated in a child process with memory and time caps (service.validation):
whatever the child does (runs out of its cap, runs past its time, dies), the API answers a
4xx naming what happened, stores nothing, and keeps its own memory."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from service import standards_catalog
from service.validation import Accepted, Caps, Refused, Uploads, validate_isolated
from tests.fixtures_service import embedded_settings, in_process_api
from tests.test_api_bad_input import _post, _state
from tests.wide_mlp import wide_mlp

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> Path:
    """A sound 8x8-digits MLP with 67 MB of weights (64 -> 4096 -> 4096 -> 10)."""
    return wide_mlp(tmp_path_factory.mktemp("wide") / "wide.onnx", 4096)


def _uploads(model: Path) -> Uploads:
    return Uploads(model, EXAMPLES / "digits_eval.npz", None,
                   standards_catalog.resolve("demo-digits").standard, None, None, None,
                   10**9)


def test_a_sound_model_is_accepted_with_its_figures():
    answer = validate_isolated(_uploads(EXAMPLES / "digits_cnn.onnx"), Caps(1 << 30, 120))
    assert isinstance(answer, Accepted)
    assert answer.n_samples == 300 and answer.info["num_classes"] == 10


def test_over_the_memory_cap_is_refused_as_such_not_as_an_invalid_model(wide_model):
    """Reading 67 MB of weights alone is over a 16 MiB cap; the refusal names the cap
    (an allocation failing inside the ONNX checker would have said "invalid model")."""
    answer = validate_isolated(_uploads(wide_model), Caps(16 << 20, 120))
    assert isinstance(answer, Refused) and answer.status == 422
    assert answer.code == "validation_memory", answer
    assert "16 MiB" in answer.message and "ROBUSTGATE_VALIDATION_MEMORY_MB" in answer.message
    # The same model within the cap a submission gets (allowance + 4 x its size).
    size = wide_model.stat().st_size
    assert isinstance(validate_isolated(_uploads(wide_model),
                                        Caps.for_uploads(2048, 120, size)), Accepted)


def test_a_validator_that_dies_is_a_refusal_naming_how():
    """A child killed mid-validation (as a crash in onnxruntime would end it) answers a
    4xx; the caller's process is untouched."""
    found: list[Accepted | Refused] = []
    before = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    thread = threading.Thread(target=lambda: found.append(validate_isolated(
        _uploads(EXAMPLES / "digits_cnn.onnx"), Caps(1 << 30, 120))))
    thread.start()
    # Killed as soon as it appears: the validator's fork starts within milliseconds.
    deadline = time.monotonic() + 60
    victim = None
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        new = {int(p) for p in os.listdir("/proc") if p.isdigit()} - before
        victim = next((p for p in new if _validator(p)), None)
    assert victim is not None, "no validator process seen"
    os.kill(victim, signal.SIGKILL)
    thread.join(60)
    (answer,) = found
    assert isinstance(answer, Refused) and answer.code == "invalid_model"
    assert "crashed the validator (signal SIGKILL)" in answer.message


def _validator(pid: int) -> bool:
    """A child of the fork server (its parent runs multiprocessing.forkserver)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        return b"forkserver" in Path(f"/proc/{parent}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return False


def test_the_api_refuses_a_validation_past_its_time_and_stores_nothing(tmp_path, wide_model):
    client, services = in_process_api(
        embedded_settings(tmp_path, ROBUSTGATE_VALIDATION_SECONDS="0.001"), "slow")
    with client:
        assert services.celery.main == "robustgate"  # creates the broker folders
        before = _state(services)
        # Parsing and running 67 MB of weights takes far longer than a millisecond.
        r = _post(client, wide_model.read_bytes(), (EXAMPLES / "digits_eval.npz").read_bytes())
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "validation_timeout"
        assert "ROBUSTGATE_VALIDATION_SECONDS" in r.json()["error"]["message"]
        assert _state(services) == before
