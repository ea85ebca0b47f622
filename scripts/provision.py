#!/usr/bin/env python3
"""Create the resources of infra/template.yaml on an AWS emulator (moto or LocalStack).

The template is the only list of resources: this script reads it and creates each resource
through the service APIs, then writes the functions' environment (Globals.Function.Environment
merged with each function's own Environment, resolved) to an env file that the local endpoint,
the operator CLI and the tests source with `set -a; . FILE; set +a`.

Why not deploy the template to the emulator's CloudFormation: moto's CloudFormation ignores
TimeToLiveSpecification and KeySpec/KeyUsage (HMAC and ECC keys come out symmetric), fails
DescribeKey when a KeyPolicy is a YAML mapping, and drops SAM functions (moto 5.2). Creating
each resource through its own service API behaves the same on moto and LocalStack.

    python scripts/provision.py --template infra/template.yaml \\
        --endpoint http://127.0.0.1:4566 --region us-east-1 --stage local \\
        --emulator localstack --env-out .local/portcullis.env

(LocalStack's init hook, localstack/init/ready.d/10-provision.sh, runs the same command inside
the container with --env-endpoint http://127.0.0.1:4566 so the file works on the host.)

What is created (local names `portcullis-<stage>-<LogicalId>` unless the template names it):
  AWS::DynamoDB::Table      CreateTable (keys, attributes, billing mode, indexes) + UpdateTimeToLive
  AWS::KMS::Key             CreateKey with its KeySpec/KeyUsage (no key policy; tagged with the
                            logical id so a re-run finds it)
  AWS::KMS::Alias           CreateAlias (UpdateAlias if it points elsewhere)
  AWS::SNS::Topic           CreateTopic
  AWS::SES::EmailIdentity   VerifyEmailIdentity (emulators verify at once)
  AWS::SQS::Queue           CreateQueue with its attributes (RedrivePolicy, VisibilityTimeout,
                            FifoQueue, ...); !Ref is the queue URL, !GetAtt Arn / QueueName /
                            QueueUrl as in CloudFormation, so an environment variable set to
                            `!Ref SomeQueue` in the template gets the local queue URL
Every other type (functions, the HTTP API, log groups, alarms, ...) is skipped with a note on
stderr: the local endpoint serves the functions, and the rest has no local use.

With --emulator localstack, every SNS topic also gets a local-only "tap": an SQS queue named
`<topic name>-tap` subscribed to it with raw delivery, because LocalStack keeps no record of
what was published to a topic (moto does, in /moto-api/data.json). Tests read a tap without
consuming it at GET /_aws/sqs/messages/<region>/<account>/<topic name>-tap (LocalStack's
developer endpoint). The env file also names the emulator (PORTCULLIS_EMULATOR), so tests know
where to read sent messages back.

Idempotent: re-running against the same emulator reuses what exists. Exits non-zero with a
one-line message on any failure.
"""

import argparse
import json
import os
import re
import sys
import tempfile

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    import yaml

    import cfn_yaml
except ImportError as err:  # pragma: no cover - depends on the interpreter
    sys.exit(f"provision.py: {err.name} is missing (pip install boto3 pyyaml)")

LOCAL_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
KEY_TAG = "portcullis:logical-id"


class ProvisionError(Exception):
    """A failure with a message fit for the user."""


# ---- template loading ----------------------------------------------------------------------




def load_template(path):
    try:
        template = cfn_yaml.load(path)
    except OSError as err:
        raise ProvisionError(f"cannot read the template {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ProvisionError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise ProvisionError(f"{path} has no Resources section")
    return template


# ---- provisioning --------------------------------------------------------------------------


class Unresolvable(Exception):
    """An intrinsic function that has no local value (e.g. !GetAtt of a skipped resource)."""


class Provisioner:
    def __init__(self, template, endpoint, region, stage, topic_taps=False):
        self.template = template
        self.topic_taps = topic_taps
        self.stage = stage
        self.region = region
        self.params = {}
        for name, spec in (template.get("Parameters") or {}).items():
            self.params[name] = (spec or {}).get("Default")
        self.params["Stage"] = stage
        self.resources = template["Resources"]
        self.conditions = template.get("Conditions") or {}
        session = boto3.session.Session(region_name=region, **LOCAL_CREDENTIALS)
        config = botocore.config.Config(
            connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
        )
        self.clients = {
            svc: session.client(svc, endpoint_url=endpoint, config=config)
            for svc in ("dynamodb", "kms", "sns", "ses", "sqs")
        }
        self.physical = {}  # logical id -> what !Ref resolves to (None: not emulated)
        self.attributes = {}  # logical id -> {attribute: value} for !GetAtt
        self.in_progress = set()
        self.skipped = {}  # type -> logical ids: not emulated (served locally or AWS-only)
        self.account_id = None  # learnt from the first ARN the emulator hands back

    # ---- intrinsic functions ----
    def resolve(self, value):
        """The local value of a template expression; Unresolvable if it has none."""
        if isinstance(value, (str, int, float, bool)):
            return value
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            raise Unresolvable(repr(value))
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        (fn, arg), = value.items()
        if fn == "Ref":
            return self.ref(arg)
        if fn == "Fn::Sub":
            return self.sub(arg)
        if fn == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(logical_id, attribute)
        if fn == "Fn::If":
            condition, when_true, when_false = arg
            return self.resolve(when_true if self.condition(condition) else when_false)
        if fn == "Fn::Join":
            separator, items = arg
            return str(separator).join(str(self.resolve(i)) for i in self.resolve(items))
        if fn == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if fn in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Condition"):
            return self.evaluate(value)
        if fn.startswith("Fn::"):
            raise Unresolvable(f"{fn} is not supported locally")
        return {fn: self.resolve(arg)}

    def ref(self, name):
        pseudo = {
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": f"portcullis-{self.stage}",
        }
        if name in pseudo:
            return pseudo[name]
        if name == "AWS::AccountId":
            return self.account()
        if name in self.params:
            return self.params[name]
        if name in self.resources:
            self.create(name)
            if self.physical.get(name) is None:
                raise Unresolvable(f"!Ref {name} ({self.resources[name].get('Type')} is not emulated)")
            return self.physical[name]
        raise ProvisionError(f"!Ref {name}: no such parameter or resource in the template")

    def sub(self, arg):
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] or {})

        def replace(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"  # ${!Literal}
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and name.split(".", 1)[0] in self.resources:
                return str(self.get_att(*name.split(".", 1)))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def get_att(self, logical_id, attribute):
        if logical_id not in self.resources:
            raise ProvisionError(f"!GetAtt {logical_id}.{attribute}: no such resource")
        self.create(logical_id)
        value = self.attributes.get(logical_id, {}).get(attribute)
        if value is None:
            raise Unresolvable(f"!GetAtt {logical_id}.{attribute} has no local value")
        return value

    def condition(self, name):
        if name not in self.conditions:
            raise ProvisionError(f"condition {name} is not defined in Conditions")
        return self.evaluate(self.conditions[name])

    def evaluate(self, expr):
        (fn, arg), = expr.items()
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            left, right = (str(self.resolve(a)) for a in arg)
            return left == right
        if fn == "Fn::Not":
            return not self.evaluate(arg[0])
        if fn == "Fn::And":
            return all(self.evaluate(a) for a in arg)
        if fn == "Fn::Or":
            return any(self.evaluate(a) for a in arg)
        raise Unresolvable(f"{fn} in a condition")

    def account(self):
        if self.account_id is None:
            # Nothing has handed back an ARN yet: moto answers 123456789012, LocalStack
            # 000000000000; CreateTopic is idempotent and cheap, so ask through one.
            arn = self.clients["sns"].create_topic(Name=self.local_name("account-probe"))["TopicArn"]
            self.clients["sns"].delete_topic(TopicArn=arn)
            self.learn_account(arn)
        return self.account_id

    def learn_account(self, arn):
        if self.account_id is None and arn and arn.count(":") >= 5:
            self.account_id = arn.split(":")[4]

    def local_name(self, logical_id):
        return f"portcullis-{self.stage}-{logical_id}"

    def name_of(self, logical_id, props, name_property):
        if props.get(name_property) is not None:
            return str(self.resolve(props[name_property]))
        return self.local_name(logical_id)

    # ---- resources ----
    def create(self, logical_id):
        if logical_id in self.physical:
            return
        if logical_id in self.in_progress:
            raise ProvisionError(f"{logical_id}: circular reference in the template")
        self.in_progress.add(logical_id)
        resource = self.resources[logical_id] or {}
        kind = resource.get("Type")
        handler = {
            "AWS::DynamoDB::Table": self.table,
            "AWS::KMS::Key": self.key,
            "AWS::KMS::Alias": self.alias,
            "AWS::SNS::Topic": self.topic,
            "AWS::SES::EmailIdentity": self.email_identity,
            "AWS::SQS::Queue": self.queue,
        }.get(kind)
        if handler is None:
            self.skipped.setdefault(kind, []).append(logical_id)
            self.physical[logical_id] = None
        else:
            try:
                self.physical[logical_id] = handler(logical_id, resource.get("Properties") or {})
            except Unresolvable as err:
                raise ProvisionError(f"{logical_id}: {err}") from err
        self.in_progress.discard(logical_id)

    def table(self, logical_id, props):
        ddb = self.clients["dynamodb"]
        name = self.name_of(logical_id, props, "TableName")
        key_schema = self.resolve(props["KeySchema"])
        try:
            existing = ddb.describe_table(TableName=name)["Table"]
        except ddb.exceptions.ResourceNotFoundException:
            existing = None
        if existing is None:
            args = {
                "TableName": name,
                "KeySchema": key_schema,
                "AttributeDefinitions": self.resolve(props["AttributeDefinitions"]),
                "BillingMode": self.resolve(props.get("BillingMode", "PROVISIONED")),
            }
            if args["BillingMode"] == "PROVISIONED":
                args["ProvisionedThroughput"] = self.resolve(
                    props.get("ProvisionedThroughput")
                    or {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
                )
            for index_kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if props.get(index_kind):
                    args[index_kind] = self.resolve(props[index_kind])
            existing = ddb.create_table(**args)["TableDescription"]
            ddb.get_waiter("table_exists").wait(
                TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
            )
            print(f"created table  {name} ({logical_id})")
        else:
            have = sorted((k["AttributeName"], k["KeyType"]) for k in existing["KeySchema"])
            want = sorted((k["AttributeName"], k["KeyType"]) for k in key_schema)
            if have != want:
                raise ProvisionError(
                    f"table {name} exists with key schema {have}, the template says {want}; "
                    "reset the emulator (POST /moto-api/reset) and provision again"
                )
            print(f"reused  table  {name} ({logical_id})")
        self.learn_account(existing.get("TableArn"))
        self.attributes[logical_id] = {"Arn": existing.get("TableArn")}
        ttl = self.resolve(props.get("TimeToLiveSpecification") or {})
        if ttl.get("Enabled") in (True, "true", "True"):
            current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
                if current.get("AttributeName") != ttl["AttributeName"]:
                    raise ProvisionError(
                        f"table {name} has TTL on {current.get('AttributeName')!r}, the template "
                        f"says {ttl['AttributeName']!r}; reset the emulator and provision again"
                    )
            else:
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
                print(f"enabled TTL    {name}.{ttl['AttributeName']}")
        return name

    def key(self, logical_id, props):
        kms = self.clients["kms"]
        tag = self.local_name(logical_id)
        spec = self.resolve(props.get("KeySpec", "SYMMETRIC_DEFAULT"))
        usage = self.resolve(props.get("KeyUsage", "ENCRYPT_DECRYPT"))
        found = None
        for page in kms.get_paginator("list_keys").paginate():
            for k in page["Keys"]:
                tags = kms.list_resource_tags(KeyId=k["KeyId"]).get("Tags", [])
                if any(t["TagKey"] == KEY_TAG and t["TagValue"] == tag for t in tags):
                    meta = kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]
                    if (
                        meta.get("KeyState") == "Enabled"
                        and meta.get("KeySpec") == spec
                        and meta.get("KeyUsage") == usage
                    ):
                        found = meta
                        break
            if found:
                break
        if found:
            print(f"reused  key    {logical_id} {found['KeyId']} ({spec}, {usage})")
        else:
            found = kms.create_key(
                Description=str(self.resolve(props.get("Description") or logical_id)),
                KeySpec=spec,
                KeyUsage=usage,
                Tags=[{"TagKey": KEY_TAG, "TagValue": tag}],
            )["KeyMetadata"]
            if found.get("KeySpec") != spec or found.get("KeyUsage") != usage:
                raise ProvisionError(
                    f"{logical_id}: the emulator made a {found.get('KeySpec')}/"
                    f"{found.get('KeyUsage')} key, the template asks {spec}/{usage}"
                )
            print(f"created key    {logical_id} {found['KeyId']} ({spec}, {usage})")
        self.learn_account(found.get("Arn"))
        self.attributes[logical_id] = {"Arn": found.get("Arn"), "KeyId": found["KeyId"]}
        return found["KeyId"]

    def alias(self, logical_id, props):
        kms = self.clients["kms"]
        name = str(self.resolve(props["AliasName"]))
        target = str(self.resolve(props["TargetKeyId"]))
        aliases = {}
        for page in kms.get_paginator("list_aliases").paginate():
            for a in page["Aliases"]:
                aliases[a["AliasName"]] = a.get("TargetKeyId")
        if name not in aliases:
            kms.create_alias(AliasName=name, TargetKeyId=target)
            print(f"created alias  {name} -> {target}")
        elif aliases[name] != target:
            kms.update_alias(AliasName=name, TargetKeyId=target)
            print(f"updated alias  {name} -> {target}")
        else:
            print(f"reused  alias  {name} -> {target}")
        return name

    def topic(self, logical_id, props):
        name = self.name_of(logical_id, props, "TopicName")
        arn = self.clients["sns"].create_topic(Name=name)["TopicArn"]  # idempotent by name
        self.learn_account(arn)
        self.attributes[logical_id] = {"TopicArn": arn, "TopicName": name}
        print(f"ensured topic  {arn} ({logical_id})")
        if self.topic_taps:
            self.tap(name, arn)
        return arn

    def tap(self, topic_name, topic_arn):
        """A local-only SQS queue that receives every message published to the topic, raw."""
        sqs = self.clients["sqs"]
        name = f"{topic_name}-tap"
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.clients["sns"].subscribe(  # idempotent for the same topic, protocol and endpoint
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        print(f"ensured tap    {name} (SQS queue subscribed to {topic_name})")

    # CloudFormation properties of AWS::SQS::Queue that are SQS queue attributes of the same name.
    QUEUE_ATTRIBUTES = (
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "DelaySeconds",
        "FifoQueue",
        "FifoThroughputLimit",
        "KmsDataKeyReusePeriodSeconds",
        "KmsMasterKeyId",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "RedriveAllowPolicy",
        "RedrivePolicy",
        "SqsManagedSseEnabled",
        "VisibilityTimeout",
    )

    def queue(self, logical_id, props):
        sqs = self.clients["sqs"]
        fifo = str(self.resolve(props.get("FifoQueue", False))).lower() == "true"
        name = self.name_of(logical_id, props, "QueueName")
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"  # CloudFormation's generated names for FIFO queues end so, too
        attributes = {}
        for prop in self.QUEUE_ATTRIBUTES:
            if props.get(prop) is None:
                continue
            value = self.resolve(props[prop])
            if isinstance(value, (dict, list)):
                value = json.dumps(value, separators=(",", ":"))  # redrive policies are JSON
            elif isinstance(value, bool):
                value = "true" if value else "false"
            attributes[prop] = str(value)
        try:
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            verb = "ensured"
        except botocore.exceptions.ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if "QueueAlreadyExists" not in code and "QueueNameExists" not in code:
                raise
            # Same name, other attributes (the template changed): bring the queue in line.
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            settable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
            if settable:
                sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
            verb = "updated"
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.learn_account(arn)
        self.attributes[logical_id] = {"Arn": arn, "QueueName": name, "QueueUrl": url}
        print(f"{verb} queue  {url} ({logical_id})")
        return url

    def email_identity(self, logical_id, props):
        identity = str(self.resolve(props["EmailIdentity"]))
        # SES v1 verification is idempotent and shared with SES v2 in moto and LocalStack.
        if "@" in identity:
            self.clients["ses"].verify_email_identity(EmailAddress=identity)
        else:
            self.clients["ses"].verify_domain_identity(Domain=identity)
        print(f"verified email identity {identity} ({logical_id})")
        return identity

    # ---- the functions' environment ----
    def environment(self):
        """Globals.Function.Environment.Variables, then each function's own Variables over them
        (as Lambda merges them). Locally one environment serves every function, so two
        functions giving one variable different values is an error."""
        globals_env = (
            ((self.template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
        ).get("Variables") or {}
        env = {name: self.env_value("Globals.Function", name, v) for name, v in globals_env.items()}
        set_by = {}
        for logical_id, resource in self.resources.items():
            if (resource or {}).get("Type") != "AWS::Serverless::Function":
                continue
            props = resource.get("Properties") or {}
            variables = (props.get("Environment") or {}).get("Variables") or {}
            for name, value in variables.items():
                resolved = self.env_value(logical_id, name, value)
                if name in set_by and env[name] != resolved:
                    raise ProvisionError(
                        f"environment variable {name} is {env[name]!r} in {set_by[name]} and "
                        f"{resolved!r} in {logical_id}; the local endpoint shares one environment"
                    )
                env[name] = resolved
                set_by[name] = logical_id
        return env

    def env_value(self, source, name, value):
        try:
            resolved = self.resolve(value)
        except Unresolvable as err:
            raise ProvisionError(f"{source}: environment variable {name}: {err}") from err
        if isinstance(resolved, bool):
            return "true" if resolved else "false"
        if not isinstance(resolved, (str, int, float)):
            raise ProvisionError(f"{source}: environment variable {name} is not a scalar")
        return str(resolved)

    def run(self):
        for logical_id in self.resources:
            self.create(logical_id)
        for kind, ids in sorted(self.skipped.items()):
            print(f"provision.py: not emulated, skipped {kind}: {', '.join(ids)}", file=sys.stderr)
        return self.environment()


def write_env(path, env):
    """KEY='value' lines, sourceable by sh with `set -a; . FILE; set +a`; written atomically."""
    for name in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ProvisionError(f"{name!r} is not a valid environment variable name")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    lines = []
    for name in sorted(env):
        if "\n" in env[name] or "\0" in env[name]:
            raise ProvisionError(f"environment variable {name} has a newline or NUL in its value")
        value = env[name].replace("'", "'\\''")
        lines.append(f"{name}='{value}'\n")
    fd, tmp = tempfile.mkstemp(prefix=".env-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(lines)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--template", required=True, help="the SAM template (infra/template.yaml)")
    parser.add_argument("--endpoint", required=True, help="emulator URL, e.g. http://127.0.0.1:4566")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--stage", default="local", help="value of the Stage parameter")
    parser.add_argument("--env-out", required=True, help="env file to write")
    parser.add_argument(
        "--emulator",
        choices=("localstack", "moto"),
        default="moto",
        help="which emulator answers at --endpoint (written to the env file as "
        "PORTCULLIS_EMULATOR; localstack also gets the topic taps)",
    )
    parser.add_argument(
        "--env-endpoint",
        help="AWS_ENDPOINT_URL to write into the env file when the readers reach the emulator "
        "by another address than this script does (LocalStack's init hook); default --endpoint",
    )
    args = parser.parse_args()
    try:
        template = load_template(args.template)
        provisioner = Provisioner(
            template,
            args.endpoint,
            args.region,
            args.stage,
            topic_taps=args.emulator == "localstack",
        )
        env = provisioner.run()
        env.update(
            {
                "AWS_ENDPOINT_URL": args.env_endpoint or args.endpoint,
                "AWS_REGION": args.region,
                "AWS_DEFAULT_REGION": args.region,  # Python and the AWS CLI read this one
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                # Local runs print logs as text; in Lambda the template asks for JSON.
                "AWS_LAMBDA_LOG_FORMAT": "TEXT",
                # Where tests read sent messages back (see the module docstring).
                "PORTCULLIS_EMULATOR": args.emulator,
            }
        )
        write_env(args.env_out, env)
    except ProvisionError as err:
        sys.exit(f"provision.py: {err}")
    except botocore.exceptions.EndpointConnectionError as err:
        sys.exit(f"provision.py: no emulator answers at {args.endpoint} ({err})")
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
        sys.exit(f"provision.py: provisioning against {args.endpoint} failed: {err}")
    except OSError as err:
        sys.exit(f"provision.py: {err}")
    print(f"wrote   env    {args.env_out} ({len(env)} variables)")


if __name__ == "__main__":
    main()
