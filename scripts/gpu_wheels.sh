#!/usr/bin/env bash
# Wheels for a lent GPU machine, fetched here (it reaches no package index): what the device
# image lacks of what the GPU checks import (tests/test_gpu.py, bench/attack_overhead.py,
# bench/attacks.py). Its image already has torch, torchvision, onnx, onnxruntime, numpy,
# scipy, pyyaml, httpx, jinja2, pytest and friends (.library/device/KINDS.md); its Python is
# 3.12. Versions are the ones this checkout's .venv runs, so both machines run the same code.
#
#   bash scripts/gpu_wheels.sh            # -> .whl/ (git-ignored; about 25 MB)
#   then carry ".whl" in the device call and run: bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
[ -x "$py" ] || { echo "run 'bash scripts/setup.sh test' first: the pins come from .venv" >&2; exit 2; }
names=(onnx2pytorch pyautoattack captum
       celery kombu billiard vine amqp click-didyoumean click-plugins click-repl prompt_toolkit
       wcwidth tzlocal redis tenacity
       SQLAlchemy greenlet alembic Mako psycopg psycopg-binary
       fastapi starlette pydantic pydantic_core annotated-types typing-inspection
       annotated-doc opentelemetry-api importlib-metadata zipp
       python-multipart uvicorn fastapi-offline
       cryptography cffi pycparser)
# The pins of those names this .venv holds (a name it lacks, e.g. greenlet on some
# platforms, is skipped: the code here does not need it).
mapfile -t pins < <("$py" -m pip list --format=freeze 2>/dev/null | "$py" -c '
import sys
wanted = {n.lower().replace("_", "-") for n in sys.argv[1:]}
for line in sys.stdin:
    name = line.split("==")[0].lower().replace("_", "-")
    if name in wanted:
        print(line.strip())
' "${names[@]}")
rm -rf .whl
mkdir -p .whl
plat=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
         manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 \
         manylinux_2_34_x86_64 manylinux_2_31_x86_64; do
    plat+=(--platform "$p")
done
"$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${plat[@]}" -d .whl "${pins[@]}"
# pyautoattack ships a 44 MB example model (examples/model_test.pt) no code imports: drop its
# examples, and their RECORD lines, so the wheels fit the device call's 64 MiB with the tree.
"$py" - .whl/pyautoattack-*.whl <<'PY'
import sys, zipfile
from pathlib import Path
path = Path(sys.argv[1])
slim = path.with_suffix(".slim")
with zipfile.ZipFile(path) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if "/examples/" in item.filename:
            continue
        data = src.read(item)
        if item.filename.endswith(".dist-info/RECORD"):
            data = b"".join(line for line in data.splitlines(keepends=True)
                            if b"/examples/" not in line)
        dst.writestr(item, data)
slim.replace(path)
PY
du -sh .whl
