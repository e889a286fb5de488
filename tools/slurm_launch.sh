#!/usr/bin/env bash
# Shared by slurm_train.sh and slurm_test.sh: runs tools/SCRIPT as one srun
# task per GPU.
# Usage: tools/slurm_launch.sh PARTITION JOB_NAME SCRIPT [SCRIPT arguments...]
# Environment: GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS (as MMAction2's
# scripts), SIGNAL (srun's --signal, e.g. USR1@120; empty: none).

export MASTER_PORT=$((12000 + $RANDOM % 20000))
set -x

PARTITION=$1
JOB_NAME=$2
SCRIPT=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
SIGNAL_ARGS=${SIGNAL:+--signal=${SIGNAL}}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
srun -p ${PARTITION} \
    --job-name=${JOB_NAME} \
    --gres=gpu:${GPUS_PER_NODE} \
    --ntasks=${GPUS} \
    --ntasks-per-node=${GPUS_PER_NODE} \
    --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 \
    ${SIGNAL_ARGS} \
    ${SRUN_ARGS} \
    python -u "$(dirname "$0")/$SCRIPT" "${@:4}"
