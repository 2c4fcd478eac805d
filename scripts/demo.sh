#!/usr/bin/env bash
# Tessera's main job: a server (the trust domain's CA) and a node agent attested
# with a join token; entries registered with the SPIRE-style CLI; workloads get
# their SVIDs over the SPIFFE Workload API and talk mTLS authorized by SPIFFE ID
# (impostors refused); a JWT-SVID fetched and validated through the agent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node packages/tessera/dist/src/demo/main.js "$@"
