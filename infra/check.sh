#!/usr/bin/env bash
# Lints infra/template.yaml twice, with the pinned tools of infra/requirements.txt:
#  1. cfn-lint on the SAM template as written;
#  2. cfn-lint on the template as aws-sam-translator transforms it. cfn-lint checks SAM
#     resources against schemas only, so a mistake inside an event source (a misspelt
#     FunctionResponseTypes, a bad StartingPosition) passes step 1; the transform turns the
#     events into AWS::Lambda::EventSourceMapping resources, which step 2 does check, and
#     the transform itself refuses unknown event properties.
# Exits non-zero on any finding, informational ones included. Offline: no AWS account or credentials are used.
# Usage: infra/check.sh [template]   (default infra/template.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."

template=${1:-infra/template.yaml}
# Under target/ (ignored by git) rather than .venv, which tests/run.sh owns.
venv=target/infra-venv
if [[ ! -x "$venv/bin/cfn-lint" ]] || ! cmp -s infra/requirements.txt "$venv/.requirements"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r infra/requirements.txt
  cp infra/requirements.txt "$venv/.requirements"
fi

out=target/infra
mkdir -p "$out"
translated="$out/template.translated.json"

echo "cfn-lint $template"
"$venv/bin/cfn-lint" --include-checks I -- "$template"

echo "aws-sam-translator $template -> $translated"
# A fixed region and account; nothing here calls AWS.
AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  "$venv/bin/python" - "$template" "$translated" <<'PY'
import json
import sys

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

source, target = sys.argv[1], sys.argv[2]
with open(source, encoding="utf-8") as handle:
    template = yaml_parse(handle.read())

# `sam build` replaces each CodeUri with the uploaded artifact; the transform needs an
# S3 URI there.
for name, resource in template.get("Resources", {}).items():
    if resource.get("Type") == "AWS::Serverless::Function":
        resource.setdefault("Properties", {})["CodeUri"] = f"s3://referral-artifacts/{name}.zip"


class NoManagedPolicies:
    """The template names no managed policy, so none is ever looked up in IAM."""

    def load(self):
        return {}


parameters = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "referral-check",
}
try:
    output = transform(template, parameters, NoManagedPolicies())
except InvalidDocumentException as error:
    for cause in error.causes:
        print(f"aws-sam-translator: {cause.message}", file=sys.stderr)
    sys.exit(1)
with open(target, "w", encoding="utf-8") as handle:
    json.dump(output, handle, indent=2, sort_keys=True)
PY

echo "cfn-lint $translated"
"$venv/bin/cfn-lint" --include-checks I -- "$translated"

echo "infra/check.sh: no findings"
