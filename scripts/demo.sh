#!/usr/bin/env bash
# Tessera's main job for now: mint a trust domain's CA and SVIDs, inspect and
# verify them with the tessera CLI, and run an mTLS echo exchange authorized
# by SPIFFE ID. Later issues replace it with the full cluster demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node packages/tessera/dist/src/demo/main.js "$@"
