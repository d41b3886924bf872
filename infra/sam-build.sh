#!/usr/bin/env bash
# Builds the three functions the way a deployment builds them: `sam build` on
# infra/template.yaml through its rust-cargolambda build method (a SAM beta feature), with
# the pinned SAM CLI (infra/requirements.txt) and cargo-lambda (infra/build-requirements.txt)
# on PATH. Writes .aws-sam/build/<Function>/bootstrap and the built template, checks the
# three bootstraps are there and prints their sizes and the build's time.
# The architecture is the template's Architecture parameter: x86_64 unless ARCHITECTURE is
# set (CI builds x86_64: it never adds the aarch64 Rust target that arm64 needs).
# Usage: infra/sam-build.sh [more `sam build` arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Same venvs as infra/check.sh and infra/build.sh.
install() {
  local venv=$1 requirements=$2 tool=$3
  if [[ ! -x "$venv/bin/$tool" ]] || ! cmp -s "$requirements" "$venv/.requirements"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/.requirements"
  fi
}
install target/infra-venv infra/requirements.txt sam
install target/lambda-venv infra/build-requirements.txt cargo-lambda
export PATH="$PWD/target/lambda-venv/bin:$PWD/target/infra-venv/bin:$PATH"
# Offline and anonymous: no telemetry, a fixed region, never the instance-metadata address.
export SAM_CLI_TELEMETRY=0 AWS_REGION=${AWS_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true

start=$SECONDS
sam build --template-file infra/template.yaml --beta-features \
  --parameter-overrides "Architecture=${ARCHITECTURE:-x86_64}" "$@"
echo "infra/sam-build.sh: sam build took $((SECONDS - start)) s"

for function in IngestFunction EnricherFunction OrchestratorFunction EraserFunction; do
  binary=.aws-sam/build/$function/bootstrap
  if [[ ! -x "$binary" ]]; then
    echo "infra/sam-build.sh: sam build did not write $binary" >&2
    exit 1
  fi
  python3 -c 'import os, sys; print(f"{sys.argv[1]:<21} {os.path.getsize(sys.argv[2]) / 2**20:6.1f} MiB  {sys.argv[2]}")' \
    "$function" "$binary"
done
