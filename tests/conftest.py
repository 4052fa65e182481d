"""Shared fixtures. The repository root goes on sys.path so tests can import ``examples``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest_plugins = ["tests.fixtures_service"]


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for tiny models: OpenMP spinning costs more than it gains here."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Files whose tests run whole services and jobs, longest first (measured with --durations=0
# on 2 cores). pytest-xdist's loadfile hands files out in collection order, so starting these
# first keeps one long file from running alone at the end of the run. Order only: a file
# missing here simply runs in its usual place.
LONG_FILES = ("test_e2e_embedded.py", "test_fault_redis_restart.py", "test_cli.py",
              "test_scale_concurrency.py", "test_hardening.py", "test_fault_tolerance.py",
              "test_light_client.py", "test_shards.py", "test_chaos_short.py",
              "test_ci_integrations.py", "test_report_service.py", "test_hardening_api.py",
              "test_fuzz_intake.py", "test_certificate.py", "test_attacks.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FILES)))  # stable
