#!/usr/bin/env bash
# Builds the image and runs a short training in it, then checks the health
# check and the metrics endpoint. For machines with Docker and an NVIDIA GPU.
#
#   deploy/smoke-image.sh [IMAGE_TAG]
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-appliance:smoke}
name=appliance-smoke-$$
docker build -t "$tag" .
cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
docker run -d --name "$name" --gpus all --shm-size=2g -p 127.0.0.1::9100 \
  "$tag" train --env cartpole --total-steps 2000000 --run-dir /runs/smoke
port=$(docker port "$name" 9100/tcp | head -n1 | sed 's/.*://')
for _ in $(seq 1 60); do
  if curl -fsS "http://127.0.0.1:$port/metrics" | grep -q appliance_env_steps_total; then
    break
  fi
  sleep 2
done
curl -fsS "http://127.0.0.1:$port/metrics" | grep -E '^appliance_(env_steps_total|gpu_utilization_ratio)' 
docker exec "$name" appliance health
docker wait "$name"
docker cp "$name:/runs/smoke/summary.json" - | tar -xO
echo "smoke test passed"
