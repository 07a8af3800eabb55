#!/usr/bin/env bash
# Installs dependencies if missing, builds, and runs every test (unit, adapter, integration).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== running tests"
# setup.sh installed chromium: the dashboard's browser test must run, not skip.
export PATCHSWARM_REQUIRE_BROWSER=1
ctest --test-dir build --output-on-failure -j2 --timeout 600 "$@"
