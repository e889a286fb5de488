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
export SIGNAL=${SIGNAL-USR1@120}
exec bash "$(dirname "$0")/slurm_launch.sh" "$1" "$2" train.py "$3" \
    --launcher=slurm "${@:4}"
