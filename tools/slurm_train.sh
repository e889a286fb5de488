#!/usr/bin/env bash
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py arguments...]
# Environment: GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS (as MMAction2's),
# and SIGNAL: what srun sends the training tasks before the time limit
# (default USR1@120: SIGUSR1 120 s ahead). PreemptionHook then saves a
# checkpoint at the next iteration boundary and exits with 138 (SIGTERM,
# which Slurm sends on preemption or at the limit, gives 143); rerun with
# `--resume` to continue exactly. SIGNAL= (empty) sends nothing.
# In an sbatch script use `#SBATCH --signal=USR1@120` (all job steps) or
# `--signal=B:USR1@120` and forward it from the batch shell
# (`trap 'kill -USR1 $PID' USR1`); docs/bilevel.md has an example.

export MASTER_PORT=$((12000 + $RANDOM % 20000))
set -x

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
SIGNAL=${SIGNAL-USR1@120}
SIGNAL_ARGS=${SIGNAL:+--signal=${SIGNAL}}

# Arguments from the fourth one on are passed to train.py.
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
    python -u "$(dirname "$0")/train.py" "$CONFIG" --launcher="slurm" "${@:4}"
