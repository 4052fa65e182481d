#!/usr/bin/env bash
# One short run on a machine with a CUDA GPU: the `gpu` test tier, a small benchmark of the
# attacks' per-step overhead, and ours against AutoAttack on a ResNet-18 (issue 16's target),
# figures printed. Installs nothing: run `bash scripts/setup.sh
# test` first (or point PYTHON at an environment that has the project and its test extras).
# Usage: bash scripts/gpu_check.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$py" - <<'PY'
import torch
if not torch.cuda.is_available():
    raise SystemExit(f"no CUDA device visible to torch {torch.__version__}: nothing to check")
p = torch.cuda.get_device_properties(0)
print(f"torch {torch.__version__} cuda {torch.version.cuda} | {p.name}, "
      f"{p.total_memory / 2**30:.0f} GiB, {torch.cuda.device_count()} device(s)")
PY
echo "== pytest -m gpu"
"$py" -m pytest -m gpu tests/test_gpu.py -v -p no:cacheprovider --durations=0 --timeout 420 "$@"
echo "== bench: attack overhead on the GPU (before/after in one run)"
"$py" -m bench.attack_overhead --device cuda --batch 1024 --iterations 50
echo "== bench: the same at the default batch on the CPU, for the ratio"
"$py" -m bench.attack_overhead --device cpu --batch 256 --iterations 20 --skip-passes
echo "== bench: ours vs AutoAttack, CIFAR-stem ResNet-18 on a synthetic task, 3 seeds (issue 16)"
# Sized for about 3 minutes on an H200 (an estimate, not yet measured); the timeout keeps a
# slow run from eating the device time, and the rows printed so far still come back.
timeout 480 "$py" -m bench.attacks --model resnet18-cifar --device cuda --points 300 \
    --seeds 0,1,2
