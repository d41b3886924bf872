#!/usr/bin/env bash
# Runs the three functions as infra/sam-build.sh built them (.aws-sam/build/<Function>/bootstrap,
# release builds as deployed) under `referral invoke` against moto's server: the tests of
# processors/referral/tests/smoke.rs with REFERRAL_SMOKE_BINARIES pointing at that build
# (tests/run.sh runs the same tests on the debug builds). Fails when the build is missing.
# Usage: infra/smoke.sh [build directory, default .aws-sam/build]
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:-.aws-sam/build}
for function in IngestFunction EnricherFunction OrchestratorFunction; do
  if [[ ! -x "$build/$function/bootstrap" ]]; then
    echo "infra/smoke.sh: $build/$function/bootstrap is missing: run infra/sam-build.sh first" >&2
    exit 1
  fi
done

# moto's AWS-API server on a free loopback port, stopped when this script exits.
source tests/emulator.sh
REFERRAL_SMOKE_BINARIES="$build" cargo test --locked -p referral --test smoke
