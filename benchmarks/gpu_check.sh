#!/usr/bin/env bash
# The GPU checks of the bi-level step, in one go (about 3-5 minutes on one
# recent GPU; budgeted at 8). Results go to $OUT (default
# work_dirs/gpu_check):
#   gpu_check.json           CUDA-only branches (benchmarks/gpu_check.py):
#                            fp16 loss scale and overflow skip, AMP bi-level
#                            step, SyncBN with nccl in one process under the
#                            bi-level and MMEngine's DDP wrappers;
#   bench_slowr50_224.json   benchmarks/bench_bilevel.py, Slow-R50 at 224 px:
#   bench_slowr50_224.md     s/iter and peak CUDA memory of plain V-CL,
#                            BOD-VCL ITD-FD and AID-FD, as ratios;
#   env.txt                  GPU, driver and package versions.
# Usage: [OUT=dir] bash benchmarks/gpu_check.sh   (from the repository root)
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-work_dirs/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    python -c 'import torch, mmengine, mmcv, mmaction; print("torch", torch.__version__, "cuda", torch.version.cuda, "mmengine", mmengine.__version__, "mmcv", mmcv.__version__, "mmaction", mmaction.__version__)'
} > "$OUT/env.txt" 2>&1 || true

status=0
timeout 240 python benchmarks/gpu_check.py --device cuda --out "$OUT" \
    > "$OUT/gpu_check.log" 2>&1 || status=$?
tail -n 3 "$OUT/gpu_check.log"

timeout 300 python benchmarks/bench_bilevel.py --slow-r50 --size 224 \
    --device cuda --batch-size 4 --iters 10 --warmup 3 \
    --methods baseline itd_fd aid_fd \
    --json "$OUT/bench_slowr50_224.json" \
    > "$OUT/bench_slowr50_224.md" 2> "$OUT/bench_slowr50_224.log" \
    || status=$?
cat "$OUT/bench_slowr50_224.md"
exit $status
