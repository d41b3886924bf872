#!/usr/bin/env bash
# Builds the Lambda functions as `sam build` would (cargo lambda, release profile) and
# prints the size of each bootstrap. cargo-lambda (with zig) comes pinned from PyPI
# (infra/build-requirements.txt). Extra arguments go to `cargo lambda build`, e.g. --arm64
# where the aarch64 Rust target is installed; without it the functions build for x86_64,
# which is what CI checks (it never adds a target).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/lambda-venv
if [[ ! -x "$venv/bin/cargo-lambda" ]] || ! cmp -s infra/build-requirements.txt "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r infra/build-requirements.txt
  cp infra/build-requirements.txt "$venv/.requirements"
fi
export PATH="$PWD/$venv/bin:$PATH"

functions=(ingest enricher orchestrator backfill eraser)
packages=()
for function in "${functions[@]}"; do
  packages+=(-p "referral-$function")
done
cargo lambda build --release --locked "${packages[@]}" "$@"

for function in "${functions[@]}"; do
  binary=target/lambda/$function/bootstrap
  if [[ ! -x "$binary" ]]; then
    echo "infra/build.sh: $binary was not built" >&2
    exit 1
  fi
  python3 -c 'import os, sys; print(f"{sys.argv[1]:<13} {os.path.getsize(sys.argv[2]) / 2**20:6.1f} MiB  {sys.argv[2]}")' \
    "$function" "$binary"
done
