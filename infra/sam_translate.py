"""Translates a SAM template into plain CloudFormation, offline, for cfn-lint (infra/check.sh).

Usage: sam_translate.py SOURCE.yaml TARGET.json
"""
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
