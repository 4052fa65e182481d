"""The contract between a worker and whatever persists jobs (the service's database)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
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
    # How the model's input units map to the standard's ({"mean": [...], "std": [...]}).
    input_mapping: dict[str, list[float]] | None = None
    started_at: float = 0.0         # epoch seconds the job first started (for total time)
    # The evaluation set's file, when the store has one: read memory-mapped, in blocks (a
    # 10,000-image ImageNet set is 6 GB); ``dataset_bytes`` is then left empty.
    dataset_path: Path | None = None

    @property
    def dataset(self) -> bytes | Path:
        """What ``verifiers.data.load_eval_set`` reads: the file if there is one."""
        return self.dataset_path if self.dataset_path is not None else self.dataset_bytes


class JobStore(Protocol):
    """Every method is one short transaction; the database-backed store retries each
    through an outage (workers.retry), so each must be safe to repeat."""

    heartbeat_seconds: float      # how often a worker running a job or shard beats
    shard_timeout_seconds: float  # a shard running longer errors the job
    job_timeout_seconds: float    # a job running longer errors (checked inside every loop)

    def claim(self, job_id: str, worker: str = "") -> JobSpec | None:
        """Mark the job running and return it, or None if it must not run (gone, cancelled,
        already finished, or running on a worker that still beats): a redelivered task then
        does nothing."""

    def spec(self, job_id: str) -> JobSpec | None:
        """A running, uncancelled job's inputs (for its shards), else None."""

    def heartbeat(self, job_id: str) -> None: ...

    def report_progress(self, job_id: str, fraction: float, stage: str) -> None: ...

    def advance_progress(self, job_id: str, fraction: float, stage: str) -> None:
        """Like report_progress, but never moves progress backwards (shards run at once)."""

    def is_cancelled(self, job_id: str) -> bool: ...

    # Parts: one row per (job, part); see service.db.models.CertificationPart.
    def plan(self, job_id: str, shards: int) -> None: ...

    def start_part(self, job_id: str, part: str, worker: str) -> bool:
        """Take ``part``: False if it is done, or running on a worker that still beats."""

    def beat_part(self, job_id: str, part: str) -> None: ...

    def finish_part(self, job_id: str, part: str, payload: bytes) -> None:
        """Store a part's result; a part already done keeps its first result."""

    def part(self, job_id: str, part: str) -> bytes | None:
        """A done part's result, else None."""

    def parts(self, job_id: str, prefix: str) -> dict[str, bytes]:
        """Every done part whose name starts with ``prefix``."""

    def done_parts(self, job_id: str, prefix: str) -> set[str]:
        """The names of :meth:`parts`, without reading their results."""

    def live_parts(self, job_id: str) -> set[str]:
        """Parts done, or running on a worker that still beats."""

    def tenant_work(self, job_id: str) -> int:
        """The attack shards not yet done in the other queued or running jobs of this job's
        tenant (fairness: workers.app.priority_for)."""

    def succeed(self, job_id: str, scorecard: dict[str, Any]) -> None: ...

    def fail(self, job_id: str, reason: str) -> None: ...

    def mark_cancelled(self, job_id: str) -> None: ...
