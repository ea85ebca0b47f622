#!/usr/bin/env python3
"""Create the resources of infra/template.yaml on an AWS emulator (moto or LocalStack).

The template is the only list of resources: this script reads it and creates each resource
through the service APIs (moto's CloudFormation ignores TTL specifications and key specs, see
../shared/EMULATOR.md), then writes the functions' environment (Globals.Function.Environment,
resolved) to an env file the local endpoint, the CLI and the tests source.

    python scripts/provision.py --template infra/template.yaml \
        --endpoint http://127.0.0.1:4566 --region us-east-1 --stage local \
        --env-out .local/portcullis.env

Idempotent: re-running against the same emulator reuses what exists.
"""

import argparse
import sys

import boto3
import yaml


class CfnLoader(yaml.SafeLoader):
    """A YAML loader that keeps CloudFormation short tags as {'!Tag': value}."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"!" + suffix: value}


CfnLoader.add_multi_constructor("!", _tag)


def fail(message):
    sys.exit(f"provision.py: {message}")


class Provisioner:
    def __init__(self, template, endpoint, region, stage):
        self.template = template
        self.stage = stage
        self.params = {
            name: spec.get("Default")
            for name, spec in (template.get("Parameters") or {}).items()
        }
        self.params["Stage"] = stage
        self.resources = template.get("Resources") or {}
        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name=region
        )
        self.clients = {
            svc: session.client(svc, endpoint_url=endpoint)
            for svc in ("dynamodb", "kms", "sns", "sesv2")
        }
        self.physical = {}  # logical id -> what !Ref resolves to
        self.region = region
        self.skipped = []  # functions, API, logs, alarms: served or not needed locally

    # ---- intrinsic functions (the subset the template uses) ----
    def resolve(self, value):
        if isinstance(value, dict) and len(value) == 1:
            (key, arg), = value.items()
            if key in ("!Ref", "Ref"):
                return self.ref(arg)
            if key in ("!Sub", "Fn::Sub"):
                text = arg if isinstance(arg, str) else arg[0]
                for name, val in self.params.items():
                    text = text.replace("${%s}" % name, str(val))
                text = text.replace("${AWS::Region}", self.region)
                text = text.replace("${AWS::AccountId}", "123456789012")
                text = text.replace("${AWS::Partition}", "aws")
                return text
            if key in ("!GetAtt", "Fn::GetAtt"):
                return None
        if isinstance(value, (str, int, float)):
            return value
        return None

    def ref(self, name):
        if name in self.params:
            return self.params[name]
        if name in self.physical:
            return self.physical[name]
        if name in self.resources:
            self.create(name)
            return self.physical.get(name)
        fail(f"!Ref {name}: no such parameter or resource")

    def local_name(self, logical_id):
        return f"portcullis-{self.stage}-{logical_id}"

    # ---- resources ----
    def create(self, logical_id):
        if logical_id in self.physical:
            return
        resource = self.resources[logical_id]
        kind = resource.get("Type")
        props = resource.get("Properties") or {}
        handler = {
            "AWS::DynamoDB::Table": self.table,
            "AWS::KMS::Key": self.key,
            "AWS::KMS::Alias": self.alias,
            "AWS::SNS::Topic": self.topic,
            "AWS::SES::EmailIdentity": self.email_identity,
        }.get(kind)
        if handler is None:
            self.skipped.append(logical_id)
            self.physical[logical_id] = None
            return
        self.physical[logical_id] = handler(logical_id, props)

    def table(self, logical_id, props):
        ddb = self.clients["dynamodb"]
        name = props.get("TableName") and self.resolve(props["TableName"]) or self.local_name(logical_id)
        existing = ddb.list_tables().get("TableNames", [])
        if name not in existing:
            args = {
                "TableName": name,
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if props.get("GlobalSecondaryIndexes"):
                args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            ddb.create_table(**args)
            ddb.get_waiter("table_exists").wait(TableName=name)
            print(f"  create table {name}")
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
                print(f"  ttl    {name}.{ttl['AttributeName']}")
        return name

    def key(self, logical_id, props):
        kms = self.clients["kms"]
        tag = self.local_name(logical_id)
        for page in kms.get_paginator("list_keys").paginate():
            for k in page["Keys"]:
                tags = kms.list_resource_tags(KeyId=k["KeyId"]).get("Tags", [])
                if any(t["TagKey"] == "portcullis:logical-id" and t["TagValue"] == tag for t in tags):
                    return k["KeyId"]
        key = kms.create_key(
            Description=str(self.resolve(props.get("Description", "")) or logical_id),
            KeySpec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
            KeyUsage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
            Tags=[{"TagKey": "portcullis:logical-id", "TagValue": tag}],
        )["KeyMetadata"]
        print(f"  create key   {logical_id} ({key['KeySpec']}, {key['KeyUsage']})")
        return key["KeyId"]

    def alias(self, logical_id, props):
        kms = self.clients["kms"]
        name = self.resolve(props["AliasName"])
        target = self.resolve(props["TargetKeyId"])
        aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
        if name not in aliases:
            kms.create_alias(AliasName=name, TargetKeyId=target)
            print(f"  create alias {name}")
        elif aliases[name] != target:
            kms.update_alias(AliasName=name, TargetKeyId=target)
        return name

    def topic(self, logical_id, props):
        name = props.get("TopicName") and self.resolve(props["TopicName"]) or self.local_name(logical_id)
        arn = self.clients["sns"].create_topic(Name=name)["TopicArn"]  # idempotent by name
        print(f"  topic  {arn}")
        return arn

    def email_identity(self, logical_id, props):
        identity = self.resolve(props["EmailIdentity"])
        ses = self.clients["sesv2"]
        try:
            ses.create_email_identity(EmailIdentity=identity)
            print(f"  create email identity {identity}")
        except ses.exceptions.AlreadyExistsException:
            pass
        return identity

    def run(self):
        for logical_id in self.resources:
            self.create(logical_id)
        env = {}
        globals_env = (
            ((self.template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
        ).get("Variables") or {}
        for name, value in globals_env.items():
            resolved = self.resolve(value)
            if resolved is None:
                fail(f"cannot resolve environment variable {name}: {value!r}")
            env[name] = str(resolved)
        for logical_id, resource in self.resources.items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            variables = (((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {}
            for name, value in variables.items():
                resolved = self.resolve(value)
                if resolved is not None:
                    env[name] = str(resolved)
        return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--stage", default="local")
    parser.add_argument("--env-out", required=True)
    args = parser.parse_args()
    with open(args.template, encoding="utf-8") as f:
        template = yaml.load(f, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    try:
        provisioner = Provisioner(template, args.endpoint, args.region, args.stage)
        env = provisioner.run()
        print(f"  not emulated (served by the local endpoint or AWS-only): {len(provisioner.skipped)} resources")
    except Exception as err:  # boto errors, unreachable endpoint
        fail(f"provisioning against {args.endpoint} failed: {err}")
    env.update(
        {
            "AWS_ENDPOINT_URL": args.endpoint,
            "AWS_REGION": args.region,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            # Local runs print logs as text; Lambda uses JSON (template).
            "AWS_LAMBDA_LOG_FORMAT": "TEXT",
        }
    )
    with open(args.env_out, "w", encoding="utf-8") as f:
        for name in sorted(env):
            value = env[name].replace("'", "'\\''")
            f.write(f"{name}='{value}'\n")
    print(f"  wrote  {args.env_out} ({len(env)} variables)")


if __name__ == "__main__":
    main()
