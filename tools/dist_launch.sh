#!/usr/bin/env bash
# Shared by dist_train.sh and dist_test.sh: runs tools/SCRIPT in GPUS
# processes of this node with torchrun.
# Usage: tools/dist_launch.sh GPUS SCRIPT [SCRIPT arguments...]
# Environment: NNODES, NODE_RANK, PORT, MASTER_ADDR (as MMAction2's scripts).
# SIGTERM or SIGUSR1 to this script reaches the processes as SIGTERM (through
# torchrun, which ignores SIGUSR1), and this script exits with torchrun's
# status once torchrun has really exited.

set -x

GPUS=$1
SCRIPT=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}

PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
python -m torch.distributed.run --nnodes=$NNODES --node_rank=$NODE_RANK \
    --master_addr=$MASTER_ADDR --nproc_per_node=$GPUS --master_port=$PORT \
    "$(dirname "$0")/$SCRIPT" "${@:3}" &
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
