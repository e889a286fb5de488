#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py arguments...]
# Environment: NNODES, NODE_RANK, PORT, MASTER_ADDR (as MMAction2's script).
# On a machine without CUDA, GPUS processes train on CPU with gloo.
# Multi-node: run it once per node with the same NNODES, PORT and
# MASTER_ADDR (node 0's address) and NODE_RANK=0..NNODES-1, e.g. on two
# nodes `NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 tools/dist_train.sh CFG 8`
# and the same with NODE_RANK=1 (docs/bilevel.md, "Multi-node").
# SIGTERM or SIGUSR1 to this script (e.g. Slurm's `--signal`) reaches the
# training processes as SIGTERM (through torchrun, which ignores SIGUSR1);
# their PreemptionHook saves a checkpoint and exits, and torchrun kills them
# if that takes longer than 30 s. Rerun with `--resume` to continue.

set -x

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

# Arguments from the third one on are passed to train.py.
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
python -m torch.distributed.run --nnodes=$NNODES --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR --nproc_per_node=$GPUS --master_port=$PORT \
    "$(dirname "$0")/train.py" "$CONFIG" --launcher pytorch "${@:3}" &
PID=$!
trap 'kill -TERM $PID' TERM USR1
trap 'kill -INT $PID' INT
# `wait` returns early when a trapped signal arrives: wait until torchrun
# has really exited and pass its status on.
wait $PID
STATUS=$?
while kill -0 $PID 2>/dev/null; do
    wait $PID
    STATUS=$?
done
exit $STATUS
