#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py arguments...]
# Environment: NNODES, NODE_RANK, PORT, MASTER_ADDR (as MMAction2's script).
exec bash "$(dirname "$0")/dist_launch.sh" "$3" test.py "$1" "$2" \
    --launcher pytorch "${@:4}"
