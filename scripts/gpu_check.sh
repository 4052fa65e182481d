#!/usr/bin/env bash
# One short run on a machine with a CUDA GPU: the `gpu` test tier, ours against AutoAttack on
# a ResNet-18 over three seeds (issue 16's target), and the attacks' per-step overhead, Square
# included; figures printed. Every step has its own time limit and a failed step does not stop
# the next; the exit status says whether all passed. About 10 minutes on an H200 (estimate).
#
# Python: PYTHON, else .venv/bin/python (after `bash scripts/setup.sh test`), else python3.
# On a lent device machine, which reaches no package index, python3 is the image's (torch,
# onnx, onnxruntime...): carry the wheels `bash scripts/gpu_wheels.sh` put in .whl/ and they
# are installed into a folder of their own first. The log also goes to $OUT when it is set.
# Usage: bash scripts/gpu_check.sh [extra pytest arguments]
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
log="${OUT:-/tmp}/gpu-check.log"
exec > >(tee "$log") 2>&1
if compgen -G ".whl/*.whl" >/dev/null && ! "$py" -c "import onnx2pytorch, celery" 2>/dev/null; then
    site=/tmp/robustgate-site
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" .whl/*.whl || exit 2
    export PYTHONPATH="$PYTHONPATH:$site"
fi
"$py" - <<'PY' || exit 2
import torch
if not torch.cuda.is_available():
    raise SystemExit(f"no CUDA device visible to torch {torch.__version__}: nothing to check")
p = torch.cuda.get_device_properties(0)
print(f"torch {torch.__version__} cuda {torch.version.cuda} | {p.name}, "
      f"{p.total_memory / 2**30:.0f} GiB, {torch.cuda.device_count()} device(s)")
PY
failed=()
step() {  # step NAME SECONDS COMMAND...: run it under a time limit, remember a failure
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - start))s"
    [ "$rc" -eq 0 ] || failed+=("$name")
}
step "pytest -m gpu" 240 "$py" -m pytest -m gpu tests/test_gpu.py -v -p no:cacheprovider \
    --durations=0 "$@"
step "ours vs AutoAttack, CIFAR-stem ResNet-18, synthetic task, 3 seeds" 300 \
    "$py" -m bench.attacks --model resnet18-cifar --device cuda --points 300 --seeds 0,1,2
step "attack overhead on the GPU" 120 \
    "$py" -m bench.attack_overhead --device cuda --batch 1024 --iterations 50
step "Square's queries on the GPU" 90 "$py" -m bench.attack_overhead --only-square --device cuda
step "attack overhead on this machine's CPU, for the ratio" 60 \
    "$py" -m bench.attack_overhead --device cpu --batch 256 --iterations 20 --skip-passes
if [ "${#failed[@]}" -gt 0 ]; then
    printf 'failed: %s\n' "${failed[@]}"
    exit 1
fi
echo "all steps passed"
