#!/usr/bin/env bash
# The enricher's capacity-and-CPU benchmark: starts moto's server (tests/emulator.sh),
# builds the enricher's release binary, and delivers a seeded corpus to it under a loopback
# Lambda Runtime API. Prints, per applied event, DynamoDB requests by operation, read and
# write units, the largest item and the bytes per stream record, and the function's CPU per
# delivered event. Arguments go to `bench capacity` (e.g. --corpus heavy, --instances 4,
# --json).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/emulator.sh

cargo build --release --locked -p referral-enricher --bin enricher
cargo build --locked -p referral-tests --bin bench
# The function's log lines (one per message, as deployed) go to a file, not the terminal.
target/debug/bench capacity --enricher target/release/enricher "$@" 2>target/bench-enricher.log
