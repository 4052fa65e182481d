"""How a certification is cut into shards: contiguous sample chunks for the attacks.

The plan depends only on the number of samples (never on how many workers there are), so the
same job gives the same chunks, hence the same figures, whether its shards run in one process
or across a fleet.
"""

from __future__ import annotations

# Where each step's progress lands in [0, 1] (the attack span is linear in chunks done, so in
# samples: verifiers.estimate reads throughput from it).
PREPARE_SPAN = (0.0, 0.1)
ATTACK_SPAN = (0.1, 0.6)
FINISH_SPAN = (0.6, 0.98)

# Samples per attack shard: the default batch size, so a shard is whole batches on a GPU and
# a small evaluation set still splits (the 300-sample demo runs as two shards).
SHARD_SAMPLES = 256


def attack_chunks(n_samples: int, size: int = SHARD_SAMPLES) -> list[tuple[int, int]]:
    """[lo, hi) ranges tiling [0, n_samples); one empty chunk for an empty set."""
    if n_samples <= 0:
        return [(0, 0)]
    return [(lo, min(lo + size, n_samples)) for lo in range(0, n_samples, size)]
