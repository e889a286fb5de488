#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py arguments...]
# Environment: NNODES, NODE_RANK, PORT, MASTER_ADDR (as MMAction2's script).
# On a machine without CUDA, GPUS processes train on CPU with gloo.
# Multi-node: run it once per node with the same NNODES, PORT and
# MASTER_ADDR (node 0's address) and NODE_RANK=0..NNODES-1, e.g. on two
# nodes `NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 tools/dist_train.sh CFG 8`
# and the same with NODE_RANK=1 (docs/bilevel.md, "Multi-node").
# SIGTERM or SIGUSR1 to this script (e.g. Slurm's `--signal`) reaches the
# training processes as SIGTERM; their PreemptionHook saves a checkpoint and
# exits, and torchrun kills them if that takes longer than 30 s. Rerun with
# `--resume` to continue.
exec bash "$(dirname "$0")/dist_launch.sh" "$2" train.py "$1" \
    --launcher pytorch "${@:3}"
