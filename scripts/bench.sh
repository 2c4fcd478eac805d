#!/usr/bin/env bash
# Benchmarks: results as JSON under bench/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node packages/spiffe/dist/bench/run.js
