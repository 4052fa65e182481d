"""How long a running certification has left, from the plan and the throughput measured so far.

The plan (verifiers.plan) fixes where each step's progress lands: the attacks fill
``ATTACK_SPAN`` in proportion to the samples attacked, the finishing checks fill
``FINISH_SPAN``. A step's measured rate is the fraction of it done over the wall time since it
started (across every worker of the job, so parallel shards count once); the time left is
that rate applied to what remains:

    seconds_left = elapsed * (1 - done) / done

During the attacks that covers the attacks only (the finishing checks' cost depends on the
standard and is measured once they run), and ``seconds_per_sample`` is the attack wall time
per sample. Nothing is estimated before a step has done ``MIN_FRACTION`` of its work. Pure
arithmetic: no clock, no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from verifiers.plan import ATTACK_SPAN, FINISH_SPAN

MIN_FRACTION = 0.02  # of a step, before its rate is trusted


@dataclass(frozen=True)
class Estimate:
    seconds_left: float
    stage: str                        # "attacks" or "finishing checks"
    covers: str                       # what seconds_left includes, in words
    seconds_per_sample: float | None  # attack wall seconds per sample (attacks only)

    def as_dict(self) -> dict[str, Any]:
        return {"seconds_left": round(self.seconds_left, 1), "stage": self.stage,
                "covers": self.covers,
                "seconds_per_sample": None if self.seconds_per_sample is None
                else round(self.seconds_per_sample, 6),
                "method": "elapsed * (1 - done) / done over the running step"}


def _done(progress: float, span: tuple[float, float]) -> float:
    lo, hi = span
    return min(max((progress - lo) / (hi - lo), 0.0), 1.0)


def estimate(progress: float, n_samples: int, now: float, attacks_started: float | None,
             finish_started: float | None) -> Estimate | None:
    """The estimate for a job at ``progress`` (the job's fraction, verifiers.plan spans);
    times are epoch seconds, a step's start None until it began. None: not enough measured."""
    if finish_started is not None:
        done, elapsed = _done(progress, FINISH_SPAN), now - finish_started
        if done < MIN_FRACTION or elapsed <= 0:
            return None
        return Estimate(elapsed * (1 - done) / done, "finishing checks",
                        "the rest of the job", None)
    if attacks_started is not None and n_samples > 0:
        done, elapsed = _done(progress, ATTACK_SPAN), now - attacks_started
        if done < MIN_FRACTION or elapsed <= 0:
            return None
        per_sample = elapsed / (done * n_samples)
        return Estimate(per_sample * (1 - done) * n_samples, "attacks",
                        "the attacks still to run; the finishing checks are added once they "
                        "have started", per_sample)
    return None
