#!/usr/bin/env bash
# Benchmarks: results as JSON under bench/results/ (library, CA signing, server, agent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node packages/spiffe/dist/bench/run.js
node packages/tessera/dist/bench/ca.bench.js
if [ -f packages/tessera/dist/bench/server.bench.js ]; then
  node packages/tessera/dist/bench/server.bench.js
fi
node packages/tessera/dist/bench/agent.bench.js
