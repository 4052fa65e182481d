"""The contract between a worker and whatever persists jobs (the service's database)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    model_bytes: bytes
    dataset_bytes: bytes
    standard_document: str
    seed: int
    input_low: float | None
    input_high: float | None
    ood_bytes: bytes | None = None  # the user's OOD set (npz with x), if one was uploaded


class JobStore(Protocol):
    heartbeat_seconds: float  # how often a worker running a job calls heartbeat()

    def claim(self, job_id: str, worker: str = "") -> JobSpec | None:
        """Mark the job running and return it, or None if it must not run (gone, cancelled,
        already finished, or running on a worker that still beats): a redelivered task then
        does nothing."""

    def heartbeat(self, job_id: str) -> None: ...

    def report_progress(self, job_id: str, fraction: float, stage: str) -> None: ...

    def is_cancelled(self, job_id: str) -> bool: ...

    def succeed(self, job_id: str, scorecard: dict[str, Any]) -> None: ...

    def fail(self, job_id: str, reason: str) -> None: ...

    def mark_cancelled(self, job_id: str) -> None: ...
