#!/usr/bin/env bash
# The GPU checks of the bi-level step, in one go (budgeted at 8 minutes on
# one GPU; each step has its own timeout). Results go to $OUT (default
# work_dirs/gpu_check):
#   gpu_check.json           CUDA-only branches (benchmarks/gpu_check.py):
#                            fp16 loss scale and overflow skip, AMP bi-level
#                            step, SyncBN with nccl in one process under the
#                            bi-level and MMEngine's DDP wrappers;
#   bench_slowr50_224.json   benchmarks/bench_bilevel.py, Slow-R50 at 224 px:
#   bench_slowr50_224.md     s/iter and peak CUDA memory of plain V-CL,
#                            BOD-VCL ITD-FD and AID-FD with the lower level
#                            on all, 1/2 and 1/4 of the clips, as ratios;
#   env.txt                  GPU, driver and package versions.
# On a node without OpenMMLab packages (and without network), give the
# folder that benchmarks/prepare_gpu_wheels.sh filled elsewhere: WHEELS=DIR.
# They are installed with `pip install --no-index --no-deps --target` into
# $SITE (default: a fresh temporary folder) and put on PYTHONPATH; the node
# needs Python with a CUDA PyTorch, numpy, scipy, OpenCV and matplotlib.
# Usage: [OUT=dir] [WHEELS=dir] [PYTHON=python] bash benchmarks/gpu_check.sh
#        (from anywhere; it runs from the repository root)
set -euo pipefail

WHEELS=${WHEELS:+$(cd "$WHEELS" && pwd)}  # before leaving the caller's cwd
cd "$(dirname "$0")/.."
OUT=${OUT:-work_dirs/gpu_check}
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
if [ -n "${WHEELS:-}" ]; then
    SITE=${SITE:-$(mktemp -d)}
    "$PYTHON" -m pip install --no-index --no-deps --target "$SITE" \
        "$WHEELS"/*.whl > "$OUT/install.log" 2>&1
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    echo "installed $(ls "$WHEELS"/*.whl | wc -l) wheels into $SITE"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    "$PYTHON" -c 'import torch, mmengine, mmcv, mmaction; print("torch", torch.__version__, "cuda", torch.version.cuda, "mmengine", mmengine.__version__, "mmcv", mmcv.__version__, "mmaction", mmaction.__version__)'
} > "$OUT/env.txt" 2>&1 || true

status=0
timeout 150 "$PYTHON" benchmarks/gpu_check.py --device cuda --out "$OUT" \
    > "$OUT/gpu_check.log" 2>&1 || status=$?
tail -n 3 "$OUT/gpu_check.log"

timeout 300 "$PYTHON" benchmarks/bench_bilevel.py --slow-r50 --size 224 \
    --device cuda --batch-size 4 --iters 10 --warmup 3 \
    --methods baseline itd_fd aid_fd --lower-batch 1 0.5 0.25 \
    --json "$OUT/bench_slowr50_224.json" \
    > "$OUT/bench_slowr50_224.md" 2> "$OUT/bench_slowr50_224.log" \
    || status=$?
cat "$OUT/bench_slowr50_224.md"
exit $status
