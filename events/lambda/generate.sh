#!/usr/bin/env bash
# Regenerates the generated fixtures of events/lambda/ from the webhook fixtures, with
# `referral events`. processors/referral/tests/events.rs runs this script into a scratch
# directory and fails when a committed fixture differs from what it writes.
# The legacy-*.json fixtures are not generated: they keep the item layout and the
# NEW_AND_OLD_IMAGES stream view of the first release, which readers must still accept.
# Usage: events/lambda/generate.sh [OUT_DIR]   (default events/lambda; REFERRAL=path/to/referral
#        uses that binary instead of `cargo run`)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-events/lambda}
mkdir -p "$out"

events() {
  if [[ -n ${REFERRAL:-} ]]; then
    "$REFERRAL" events "$@"
  else
    cargo run -q --locked -p referral -- events "$@"
  fi
}

valid=events/webhooks/valid
# The ingest tests verify these with the same secret; the timestamp defaults to 2 s after
# the webhook's occurred_at.
secret=whsec_fixture_only_not_a_real_secret

events apigw "$valid/01-jane-doe-first-service.json" --secret "$secret" \
  --out "$out/apigw-http-v2-request.json"
events apigw "$valid/01-jane-doe-first-service.json" --secret "$secret" --base64 \
  --out "$out/apigw-http-v2-request-base64.json"
# Two customers' first events, a redelivery of the first and a body that is not JSON.
events sqs "$valid/01-jane-doe-first-service.json" "$valid/05-jane-doe-redelivered.json" \
  "$valid/10-noah-kim-minimal.json" events/webhooks/invalid/body--not-json.json \
  --out "$out/sqs-batch.json"
# One customer's item created by one enricher batch, then changed by the next.
events stream "$valid/01-jane-doe-first-service.json" "$valid/12-jane-doe-late-arrival.json" \
  --batch-size 1 --out "$out/dynamodb-stream-insert-modify.json"
