#!/usr/bin/env bash
# Multi-node training with torchrun's c10d rendezvous: run this same command on
# every node. One learner rank per GPU on each node.
#
#   NNODES=2 RDZV_HOST=node0.example:29400 deploy/launch-multinode.sh --env snake
#
# Environment: NNODES (required), RDZV_HOST host:port of the rendezvous (required),
# NPROC_PER_NODE (default: GPUs on this node, else 1), RUN_ID (default: appliance),
# MAX_RESTARTS (default 3: a failed rank restarts the group, which resumes from
# the last checkpoint). RUN_DIR (default runs/$RUN_ID) must be storage every node
# shares: rank 0 writes the checkpoints and every rank reads them on a restart.
# --resume-if-present makes the first start train fresh and every restart (or a
# rerun of this script) continue. Extra arguments go to `appliance train`.
set -euo pipefail
: "${NNODES:?set NNODES to the number of nodes}"
: "${RDZV_HOST:?set RDZV_HOST to host:port of the rendezvous endpoint}"
if [[ -z "${NPROC_PER_NODE:-}" ]]; then
  NPROC_PER_NODE=$(python -c 'import torch; print(max(torch.cuda.device_count(), 1))')
fi
RUN_DIR=${RUN_DIR:-runs/${RUN_ID:-appliance}}
# torchrun otherwise hands every restart round the same worker store, and restarted
# ranks read the killed ranks' stale gloo/NCCL addresses from it (connection refused).
export TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
exec torchrun \
  --nnodes="$NNODES" \
  --nproc-per-node="$NPROC_PER_NODE" \
  --rdzv-backend=c10d \
  --rdzv-endpoint="$RDZV_HOST" \
  --rdzv-id="${RUN_ID:-appliance}" \
  --max-restarts="${MAX_RESTARTS:-3}" \
  -m appliance train --run-dir "$RUN_DIR" --resume-if-present "$@"
