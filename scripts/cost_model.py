#!/usr/bin/env python3
"""Cost model: AWS dollars per million sign-ins, from measured AWS calls and CPU, beside Cognito.

    .venv/bin/python scripts/cost_model.py --flows .local/bench-flows.json \
        --lambda .local/bench-lambda.json --template infra/template.yaml [--sign-ins-per-user 8]

Inputs: the AWS calls and in-process CPU time of each request, measured by the Rust benchmark
(tools/bench → bench-flows.json); the cold starts measured by the Lambda harness
(portcullis-lambda-harness, also in tools/bench → bench-lambda.json); memory, architecture and
the fixed resources from the template. Prints a Markdown section: a table per sign-in flow (each
component in $ per million flows), a comparison with Amazon Cognito user pools, the fixed
monthly costs and the assumptions.

Python 3.10+ standard library plus PyYAML. Importable (the tests import it): main() is guarded.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import cfn_yaml

# All prices: us-east-1, prices as published in 2025; check before relying on them.
PRICES = {
    # https://aws.amazon.com/api-gateway/pricing/ (HTTP APIs, first 300 million requests/month)
    "apigw_http_per_million": 1.00,
    # https://aws.amazon.com/lambda/pricing/ (requests; duration per GB-second, first tier)
    "lambda_per_million_requests": 0.20,
    "lambda_gb_second": {"arm64": 0.0000133334, "x86_64": 0.0000166667},
    # https://aws.amazon.com/dynamodb/pricing/on-demand/ (on-demand, standard table class)
    "dynamodb_per_million_rru": 0.125,
    "dynamodb_per_million_wru": 0.625,
    # https://aws.amazon.com/kms/pricing/ (requests; customer managed key per month)
    "kms_symmetric_per_10k": 0.03,  # Encrypt, Decrypt, GenerateMac, VerifyMac, GenerateDataKey
    "kms_asymmetric_per_10k": 0.15,  # Sign, Verify, GetPublicKey (ECC)
    "kms_key_month": 1.00,
    # https://aws.amazon.com/sns/pricing/ (topic publishes; SMS is billed per message instead)
    "sns_per_million_publishes": 0.50,
    # https://aws.amazon.com/ses/pricing/ (outbound email)
    "ses_per_thousand_emails": 0.10,
    # https://aws.amazon.com/cloudwatch/pricing/ (Logs ingestion; standard alarms; custom metrics)
    "logs_ingest_per_gb": 0.50,
    "alarm_month": 0.10,
    "custom_metric_month": 0.30,
    # https://aws.amazon.com/cognito/pricing/ (user pools, per monthly active user above the free tier)
    "cognito_mau": {"Lite": 0.0055, "Essentials": 0.015, "Plus": 0.02},
}

AWS_CALL_MS = 5.0  # assumed in-region round trip of one AWS call (--aws-call-ms)
FULL_VCPU_MB = 1769  # Lambda gives one full vCPU at 1769 MB, proportionally less below
LOG_KB_PER_INVOCATION = 1.0  # START/END/REPORT platform lines + one request line
INVOCATIONS_PER_ENVIRONMENT = 1000  # how many requests one warm execution environment serves

# Calls the functions make once per execution environment, not per request (cached after
# the first use): the signing key's public half (shared/src/deps.rs SignerSlot).
ONCE_PER_ENVIRONMENT = {"KMS GetPublicKey"}

DYNAMODB_READS = {"GetItem": 1, "Query": 1, "Scan": 1, "BatchGetItem": 1}  # RRU per call
DYNAMODB_WRITES = {"PutItem": 1, "UpdateItem": 1, "DeleteItem": 1}  # WRU per call
TRANSACT_ITEMS_IF_UNKNOWN = 2  # TransactWriteItems: 2 WRU per item
KMS_SYMMETRIC = {"Decrypt", "Encrypt", "GenerateMac", "VerifyMac", "GenerateDataKey", "ReEncrypt"}
KMS_ASYMMETRIC = {"Sign", "Verify", "GetPublicKey"}

FLOWS = {
    "password only (trusted device)": ["sign_in_trusted"],
    "password + TOTP": ["sign_in_mfa", "verify_totp"],
    "password + SMS code": ["sign_in_mfa", "send_sms", "verify_sms"],
}

COMPONENTS = [
    ("apigw", "API Gateway (HTTP API)"),
    ("lambda_requests", "Lambda requests"),
    ("lambda_duration", "Lambda duration"),
    ("lambda_init", "Lambda init (amortised)"),
    ("dynamodb_reads", "DynamoDB reads"),
    ("dynamodb_writes", "DynamoDB writes"),
    ("kms_symmetric", "KMS symmetric / HMAC"),
    ("kms_asymmetric", "KMS asymmetric (Sign, GetPublicKey)"),
    ("sns", "SNS topic publishes (voice)"),
    ("ses", "SES email"),
    ("logs", "CloudWatch Logs ingestion"),
]


class ModelError(Exception):
    pass


# ---- template --------------------------------------------------------------------------------




def load_template(path):
    return cfn_yaml.load(path)


def template_functions(template):
    """binary name → {"memory_mb", "architecture"} (the function's own setting, else Globals)."""
    glob = ((template.get("Globals") or {}).get("Function")) or {}
    out = {}
    for res in (template.get("Resources") or {}).values():
        if (res or {}).get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties") or {}
        binary = ((res.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        if binary:
            arch = props.get("Architectures") or glob.get("Architectures") or ["x86_64"]
            out[binary] = {
                "memory_mb": int(props.get("MemorySize", glob.get("MemorySize", 128))),
                "architecture": str(arch[0]),
            }
    return out


def count_resources(template, resource_type):
    return sum(
        1 for r in (template.get("Resources") or {}).values() if (r or {}).get("Type") == resource_type
    )


# ---- the model ---------------------------------------------------------------------------------


def split_call(name):
    service, _, operation = name.partition(" ")
    if not operation:
        raise ModelError(f"call name {name!r} is not '<Service> <Operation>'")
    return service, operation


def billed_ms(cpu_ms, aws_calls, memory_mb, aws_call_ms=AWS_CALL_MS):
    """Billed duration: the CPU time stretched by the CPU share of `memory_mb` (one vCPU at
    1769 MB, no faster above), plus the assumed AWS round trips; Lambda rounds up to 1 ms."""
    cpu_share = min(1.0, memory_mb / FULL_VCPU_MB)
    return math.ceil(cpu_ms / cpu_share + aws_calls * aws_call_ms - 1e-9)


def request_cost(request, memory_mb, architecture, *, key="", aws_call_ms=AWS_CALL_MS,
                 init_ms=0.0, invocations_per_env=INVOCATIONS_PER_ENVIRONMENT,
                 log_kb=LOG_KB_PER_INVOCATION, prices=PRICES):
    """Dollars of ONE request, by component (see COMPONENTS). `request` is one entry of
    bench-flows.json's "requests"; `key` its name there (SNS publishes count as SMS — $0 here —
    when the request says "sns_target": "sms" or its name contains "sms")."""
    if architecture not in prices["lambda_gb_second"]:
        raise ModelError(f"no Lambda price for architecture {architecture!r}")
    calls = request.get("calls") or {}
    sms = request.get("sns_target", "sms" if "sms" in key.lower() else "topic") == "sms"
    cost = dict.fromkeys((c for c, _ in COMPONENTS), 0.0)
    per_request_calls = 0.0
    for name, n in calls.items():
        service, op = split_call(name)
        weight = 1.0 / invocations_per_env if name in ONCE_PER_ENVIRONMENT else 1.0
        n = n * weight
        per_request_calls += n
        if service == "DynamoDB":
            if op in DYNAMODB_READS:
                cost["dynamodb_reads"] += n * DYNAMODB_READS[op] * prices["dynamodb_per_million_rru"] / 1e6
            elif op in DYNAMODB_WRITES:
                cost["dynamodb_writes"] += n * DYNAMODB_WRITES[op] * prices["dynamodb_per_million_wru"] / 1e6
            elif op == "TransactWriteItems":
                items = (request.get("transact_items") or {}).get(name, TRANSACT_ITEMS_IF_UNKNOWN)
                cost["dynamodb_writes"] += n * 2 * items * prices["dynamodb_per_million_wru"] / 1e6
            else:
                raise ModelError(f"no price rule for {name!r}")
        elif service == "KMS":
            if op in KMS_SYMMETRIC:
                cost["kms_symmetric"] += n * prices["kms_symmetric_per_10k"] / 1e4
            elif op in KMS_ASYMMETRIC:
                cost["kms_asymmetric"] += n * prices["kms_asymmetric_per_10k"] / 1e4
            else:
                raise ModelError(f"no price rule for {name!r}")
        elif service == "SNS" and op == "Publish":
            if not sms:  # a text message's Publish request is free; the message is billed apart
                cost["sns"] += n * prices["sns_per_million_publishes"] / 1e6
        elif service in ("SESv2", "SES") and op == "SendEmail":
            cost["ses"] += n * prices["ses_per_thousand_emails"] / 1e3
        else:
            raise ModelError(f"no price rule for {name!r}")
    gb = memory_mb / 1024
    gb_s_price = prices["lambda_gb_second"][architecture]
    # The request waits for its longest chain of sequential calls (concurrent ones overlap);
    # without that measurement, for every call one after another.
    chain = request.get("longest_chain")
    round_trips = float(chain) if isinstance(chain, (int, float)) else per_request_calls
    ms = billed_ms(float(request.get("cpu_ms", 0.0)), round_trips, memory_mb, aws_call_ms)
    cost["apigw"] = prices["apigw_http_per_million"] / 1e6
    cost["lambda_requests"] = prices["lambda_per_million_requests"] / 1e6
    cost["lambda_duration"] = ms / 1000 * gb * gb_s_price
    if init_ms > 0:
        init_billed = math.ceil(init_ms * max(1.0, FULL_VCPU_MB / memory_mb) - 1e-9)
        cost["lambda_init"] = init_billed / 1000 * gb * gb_s_price / invocations_per_env
    cost["logs"] = log_kb / 1e6 * prices["logs_ingest_per_gb"]
    return cost, ms


def init_ms_of(lambda_results, function):
    """The init phase: as the harness measured it (spawn to the first request for an event),
    else the cold start minus a warm invocation."""
    r = (lambda_results or {}).get(function)
    if not r:
        return 0.0
    if r.get("init_ms") is not None:
        return max(0.0, r["init_ms"])
    if r.get("cold_start_ms") is None:
        return 0.0
    return max(0.0, r["cold_start_ms"] - (r.get("warm_ms_median") or 0.0))


def flow_costs(flows, functions, lambda_results, **opts):
    """{flow: {"requests": [(key, cost dict, billed ms)], "total": cost dict}} in $ per flow."""
    requests = flows.get("requests") or {}
    out = {}
    for flow, keys in FLOWS.items():
        missing = [k for k in keys if k not in requests]
        if missing:
            raise ModelError(f"bench-flows.json has no {', '.join(missing)} (flow {flow!r})")
        rows = []
        total = dict.fromkeys((c for c, _ in COMPONENTS), 0.0)
        for key in keys:
            req = requests[key]
            fn = req.get("function")
            if fn not in functions:
                raise ModelError(f"request {key!r}: function {fn!r} is not in the template")
            cost, ms = request_cost(req, functions[fn]["memory_mb"], functions[fn]["architecture"],
                                    key=key, init_ms=init_ms_of(lambda_results, fn), **opts)
            rows.append((key, cost, ms))
            for c in total:
                total[c] += cost[c]
        out[flow] = {"requests": rows, "total": total}
    return out


def cognito_per_million(sign_ins_per_user, prices=PRICES):
    """Cognito $ per million sign-ins: 1,000,000 / sign-ins per user MAUs at each tier's price."""
    maus = 1e6 / sign_ins_per_user
    return {tier: maus * p for tier, p in prices["cognito_mau"].items()}


def fixed_monthly(template, prices=PRICES):
    rows = [
        ("KMS customer managed keys", count_resources(template, "AWS::KMS::Key"), prices["kms_key_month"]),
        ("CloudWatch alarms (standard)", count_resources(template, "AWS::CloudWatch::Alarm"), prices["alarm_month"]),
        ("custom metrics (log metric filters)", count_resources(template, "AWS::Logs::MetricFilter"),
         prices["custom_metric_month"]),
    ]
    return [(name, n, price, n * price) for name, n, price in rows]


# ---- report ------------------------------------------------------------------------------------


def money(x):
    return f"{x:,.3f}" if abs(x) < 100 else f"{x:,.2f}"


def total_of(cost):
    return sum(cost.values())


def markdown(flows, functions, lambda_results, template, sign_ins_per_user, *, aws_call_ms,
             invocations_per_env, log_kb):
    costs = flow_costs(flows, functions, lambda_results, aws_call_ms=aws_call_ms,
                       invocations_per_env=invocations_per_env, log_kb=log_kb)
    requests = flows.get("requests") or {}
    archs = sorted({f["architecture"] for f in functions.values()})
    lines = [
        "## Cost model: AWS $ per million sign-ins, beside Cognito",
        "",
        f"Per request: the AWS calls and in-process CPU time measured by the benchmark above, "
        f"priced at on-demand us-east-1 rates (Lambda {', '.join(archs)} at the memory the "
        f"template gives each function). Dollars per **million flows**; the price of the text "
        f"message itself is excluded (Cognito's SMS MFA pays it too).",
        "",
    ]
    for flow, data in costs.items():
        keys = [k for k, _, _ in data["requests"]]
        lines.append(f"### {flow}")
        lines.append("")
        head = " | ".join(f"{k} ({requests[k].get('function')})" for k in keys)
        lines.append(f"| component | {head} | total |")
        lines.append("|---|" + "---:|" * (len(keys) + 1))
        for comp, label in COMPONENTS:
            vals = [c[comp] * 1e6 for _, c, _ in data["requests"]]
            if not any(vals):
                continue
            lines.append(f"| {label} | " + " | ".join(money(v) for v in vals)
                         + f" | {money(data['total'][comp] * 1e6)} |")
        billed = " | ".join(f"{ms} ms" for _, _, ms in data["requests"])
        lines.append(f"| *billed duration per request* | {billed} | |")
        lines.append("| **total** | " + " | ".join(money(total_of(c) * 1e6) for _, c, _ in data["requests"])
                     + f" | **{money(total_of(data['total']) * 1e6)}** |")
        lines.append("")
    cognito = cognito_per_million(sign_ins_per_user)
    lines.append(f"### Beside Cognito user pools ({sign_ins_per_user:g} sign-ins per user per month)")
    lines.append("")
    lines.append("| flow | Portcullis $ / 1M sign-ins | Cognito Lite | Essentials | Plus |")
    lines.append("|---|---:|---:|---:|---:|")
    for flow, data in costs.items():
        lines.append(f"| {flow} | {money(total_of(data['total']) * 1e6)} | "
                     + " | ".join(money(cognito[t]) for t in ("Lite", "Essentials", "Plus")) + " |")
    lines.append("")
    lines.append(f"Cognito bills monthly active users: 1,000,000 / {sign_ins_per_user:g} = "
                 f"{1e6 / sign_ins_per_user:,.0f} MAU per million sign-ins at "
                 + ", ".join(f"${p} ({t})" for t, p in PRICES["cognito_mau"].items())
                 + " per MAU (free tier ignored).")
    lines.append("")
    fixed = fixed_monthly(template)
    lines.append("### Fixed monthly costs (from the template)")
    lines.append("")
    lines.append("| item | count | $ each per month | $ per month |")
    lines.append("|---|---:|---:|---:|")
    for name, n, price, total in fixed:
        lines.append(f"| {name} | {n} | {price:.2f} | {total:.2f} |")
    lines.append(f"| **total** | | | **{sum(r[3] for r in fixed):.2f}** |")
    lines.append("")
    lines.append("Not included: DynamoDB storage and point-in-time recovery, log storage (by "
                 "volume); the data key rotates yearly and costs $1/month more after each of its "
                 "first two rotations.")
    lines.append("")
    lines.append("Assumptions:")
    lines.append("")
    lines.append(f"- Measured: the AWS calls of each request (SDK interceptor, against moto), its "
                 f"in-process CPU time (on this machine's x86_64 core), cold starts (the Lambda "
                 f"harness). Assumed: {aws_call_ms:g} ms per in-region AWS call, and an arm64 "
                 f"core as fast as this one; CPU time is stretched by {FULL_VCPU_MB} MB / memory "
                 f"(one vCPU at {FULL_VCPU_MB} MB). The billed duration counts the request's "
                 f"longest chain of sequential calls (those made at once overlap).")
    lines.append("- DynamoDB: 1 RRU per read call (items < 4 KB, strongly consistent: an upper "
                 "bound), 1 WRU per write call (items < 1 KB), audit-table writes included; "
                 "KMS GetPublicKey and the init phase are paid once per execution environment, "
                 f"counted here as 1 per {invocations_per_env:,} invocations.")
    lines.append(f"- Logs: {log_kb:g} KB per invocation. SNS Publish to a phone number is $0 "
                 "(SMS is billed per message, excluded on both sides); voice-topic publishes "
                 "$0.50 per million.")
    lines.append("- Excluded: free tiers, data transfer, X-Ray (Tracing is Active: $5 per million "
                 "traces recorded; default sampling records 1 request/s + 5 %). Prices: "
                 "us-east-1 as published in 2025; check before relying on them.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", required=True, help="bench-flows.json (the Rust benchmark)")
    parser.add_argument("--lambda", dest="lambda_json", required=True,
                        help="bench-lambda.json (portcullis-lambda-harness)")
    parser.add_argument("--template", required=True, help="infra/template.yaml")
    parser.add_argument("--sign-ins-per-user", type=float, default=8.0,
                        help="sign-ins per user per month, for Cognito's MAU price (default 8)")
    parser.add_argument("--aws-call-ms", type=float, default=AWS_CALL_MS,
                        help=f"assumed in-region AWS round trip (default {AWS_CALL_MS:g})")
    parser.add_argument("--invocations-per-environment", type=int, default=INVOCATIONS_PER_ENVIRONMENT,
                        help="requests served per execution environment, to amortise the init "
                        f"phase and GetPublicKey (default {INVOCATIONS_PER_ENVIRONMENT})")
    parser.add_argument("--log-kb", type=float, default=LOG_KB_PER_INVOCATION,
                        help="CloudWatch Logs per invocation in KB (default 1)")
    args = parser.parse_args(argv)
    if args.sign_ins_per_user <= 0 or args.invocations_per_environment < 1:
        parser.error("--sign-ins-per-user must be > 0 and --invocations-per-environment ≥ 1")
    try:
        with open(args.flows, encoding="utf-8") as f:
            flows = json.load(f)
        with open(args.lambda_json, encoding="utf-8") as f:
            lambda_results = json.load(f).get("functions") or {}
        template = load_template(args.template)
        functions = template_functions(template)
        sys.stdout.write(markdown(flows, functions, lambda_results, template, args.sign_ins_per_user,
                                  aws_call_ms=args.aws_call_ms,
                                  invocations_per_env=args.invocations_per_environment,
                                  log_kb=args.log_kb))
    except (OSError, ValueError, ModelError) as err:
        print(f"cost_model.py: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
