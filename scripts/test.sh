#!/usr/bin/env bash
# The whole test suite: set-up, lint, typecheck (the build), then every test
# tier (unit, in-process integration, privileged — see test/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "[test] lint"
npx --no-install eslint --max-warnings 0 .

if [ "$(id -u)" -ne 0 ]; then
  echo "[test] WARNING: not running as root: privileged tests (network namespaces, nftables) will SKIP" >&2
fi

mapfile -t files < <(find packages/*/dist/test -name '*.test.js' | sort)
if [ ${#files[@]} -eq 0 ]; then
  echo "[test] no test files found" >&2
  exit 1
fi
echo "[test] node --test (${#files[@]} files)"
exec node --enable-source-maps --test --test-concurrency=2 --test-reporter=spec "$@" "${files[@]}"
