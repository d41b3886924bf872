#!/usr/bin/env bash
# Runs every test of the workspace. Installs the pinned test tools (tests/requirements.txt)
# into .venv, starts moto's AWS-API server on a free loopback port for the integration
# tests, and stops it on exit. With no arguments it first lints the SAM template
# (infra/check.sh); arguments go to `cargo test` (e.g. a test name) and skip the lint.
# The workspace's binaries are built first: tests run the Lambda functions' binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -eq 0 ]]; then
  infra/check.sh
fi

# moto's AWS-API server on a free loopback port, stopped when this script exits.
source tests/emulator.sh

# The Lambda functions' own binaries, which `referral invoke`'s tests run: cargo builds a
# package's binaries only for that package's tests. Built in one go with the tests, so both
# share one feature resolution and `cargo test` below builds nothing again.
cargo build --workspace --locked --bins --tests
cargo test --workspace --locked "$@"
