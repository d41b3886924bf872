#!/usr/bin/env bash
# Lints infra/template.yaml twice, with the pinned tools of infra/requirements.txt:
#  1. cfn-lint on the SAM template as written;
#  2. cfn-lint on the template as aws-sam-translator transforms it (infra/sam_translate.py).
#     cfn-lint checks SAM resources against schemas only, so a mistake inside an event
#     source (a misspelt FunctionResponseTypes, a bad StartingPosition) passes step 1; the
#     transform turns the events into AWS::Lambda::EventSourceMapping resources, which step 2
#     does check, and the transform itself refuses unknown event properties;
#  3. `sam validate --lint`, what a deployer's SAM CLI says of it.
# Exits non-zero on any finding, informational ones included. Offline: no AWS account or
# credentials are used.
# Usage: infra/check.sh [template]   (default infra/template.yaml; with the default, the
#        checks are then shown to catch the mistakes they exist for: see the end)
set -euo pipefail
cd "$(dirname "$0")/.."

template=${1:-infra/template.yaml}
# Under target/ (ignored by git) rather than .venv, which tests/run.sh owns.
venv=target/infra-venv
if [[ ! -x "$venv/bin/sam" ]] || ! cmp -s infra/requirements.txt "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r infra/requirements.txt
  cp infra/requirements.txt "$venv/.requirements"
fi

out=target/infra
mkdir -p "$out"

# Lints one template every way; non-zero on any finding. Each step returns on failure
# itself: `set -e` does not apply where the caller tests the result (the mutants below).
lint() {
  local source=$1
  local translated
  translated="$out/$(basename "${source%.*}").translated.json"
  echo "cfn-lint $source"
  "$venv/bin/cfn-lint" --include-checks I -- "$source" || return
  echo "aws-sam-translator $source -> $translated"
  # A fixed region and account; nothing here calls AWS.
  AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    "$venv/bin/python" infra/sam_translate.py "$source" "$translated" || return
  echo "cfn-lint $translated"
  "$venv/bin/cfn-lint" --include-checks I -- "$translated" || return
  echo "sam validate --lint $source"
  SAM_CLI_TELEMETRY=0 AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true "$venv/bin/sam" validate --lint -t "$source"
}

lint "$template"
echo "infra/check.sh: no findings in $template"

if [[ $# -eq 0 ]]; then
  # A check that cannot fail proves nothing: each of these slips must be reported. The
  # first two are event-source mistakes that plain cfn-lint misses (only the translated
  # pass sees them); the last is an out-of-range value cfn-lint itself must flag.
  # Each mutant is a sed expression and the text the finding must show, so that a check
  # failing for another reason (a crash, a missing region) does not count as a catch.
  mutants=(
    's/FunctionResponseTypes: \[ReportBatchItemFailures\]/FunctionResponseTypes: [ReportBatchItemFailure]/' "'ReportBatchItemFailure' is not one of"
    's/StartingPosition: TRIM_HORIZON/StartingPosition: TRIM_HORIZONS/' "'TRIM_HORIZONS'"
    's/VisibilityTimeout: 180/VisibilityTimeout: 50000/' '50000 is greater than the maximum'
  )
  broken="$out/mutant.yaml"
  for ((i = 0; i < ${#mutants[@]}; i += 2)); do
    mutant=${mutants[i]} finding=${mutants[i + 1]}
    sed "$mutant" "$template" >"$broken"
    if cmp -s "$template" "$broken"; then
      echo "infra/check.sh: '$mutant' no longer changes $template; update the mutant" >&2
      exit 1
    fi
    if (lint "$broken") >"$out/mutant.log" 2>&1 || ! grep -qF -- "$finding" "$out/mutant.log"; then
      echo "infra/check.sh: the checks did not report \"$finding\" for the deliberate mistake" \
        "'$mutant'; see $out/mutant.log" >&2
      exit 1
    fi
    echo "caught the deliberate mistake $mutant"
  done
fi
