"""Tests of scripts/cost_model.py's arithmetic against hand-computed figures.

    .venv/bin/python -m unittest scripts/test_cost_model.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cost_model as cm  # noqa: E402

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "infra", "template.yaml")

# One request, priced by hand below (arm64, 512 MB, 5 ms per AWS call):
#   billed ms = ceil(10 × 1769 / 512 + 5 calls × 5) = ceil(34.5508 + 25) = 60
#   API Gateway         1.00 / 1e6                       = 1.000e-6
#   Lambda requests     0.20 / 1e6                       = 0.200e-6
#   Lambda duration     0.060 s × 0.5 GB × 0.0000133334  = 0.400002e-6
#   DynamoDB reads      2 RRU × 0.125 / 1e6              = 0.250e-6
#   DynamoDB writes     1 WRU × 0.625 / 1e6              = 0.625e-6
#   KMS Sign            0.15 / 1e4                       = 15.000e-6
#   KMS GenerateMac     0.03 / 1e4                       = 3.000e-6
#   CloudWatch Logs     1 KB = 1e-6 GB × 0.50            = 0.500e-6
#   total                                                = 20.975002e-6 → $20.975002 per million
REQUEST = {
    "function": "fn",
    "calls": {"DynamoDB GetItem": 2, "DynamoDB PutItem": 1, "KMS Sign": 1, "KMS GenerateMac": 1},
    "cpu_ms": 10.0,
    "latency_ms": 20.0,
}


class BilledDuration(unittest.TestCase):
    def test_cpu_is_stretched_below_one_vcpu_and_calls_add_round_trips(self):
        self.assertEqual(cm.billed_ms(10.0, 5, 512, 5.0), 60)

    def test_one_vcpu_at_1769_mb_and_no_faster_above(self):
        self.assertEqual(cm.billed_ms(10.0, 0, 1769), 10)
        self.assertEqual(cm.billed_ms(10.0, 0, 3538), 10)

    def test_rounds_up_to_the_millisecond(self):
        self.assertEqual(cm.billed_ms(0.1, 0, 1769), 1)
        self.assertEqual(cm.billed_ms(0.0, 2, 1769, 5.0), 10)


class RequestCost(unittest.TestCase):
    def test_hand_computed_request(self):
        cost, ms = cm.request_cost(REQUEST, 512, "arm64", key="example", aws_call_ms=5.0)
        self.assertEqual(ms, 60)
        expected = {
            "apigw": 1.0e-6,
            "lambda_requests": 0.2e-6,
            "lambda_duration": 0.400002e-6,
            "lambda_init": 0.0,
            "dynamodb_reads": 0.25e-6,
            "dynamodb_writes": 0.625e-6,
            "kms_symmetric": 3.0e-6,
            "kms_asymmetric": 15.0e-6,
            "sns": 0.0,
            "ses": 0.0,
            "logs": 0.5e-6,
        }
        self.assertEqual(set(cost), set(expected))
        for key, value in expected.items():
            self.assertAlmostEqual(cost[key] * 1e6, value * 1e6, places=9, msg=key)
        self.assertAlmostEqual(sum(cost.values()) * 1e6, 20.975002, places=9)

    def test_the_longest_chain_of_calls_is_what_the_request_waits_for(self):
        # 5 calls of which at most 2 one after another: ceil(34.5508 + 2 × 5) = 45
        chained = {**REQUEST, "longest_chain": 2}
        _, ms = cm.request_cost(chained, 512, "arm64", key="example", aws_call_ms=5.0)
        self.assertEqual(ms, 45)

    def test_x86_64_duration_price(self):
        cost, _ = cm.request_cost(REQUEST, 512, "x86_64", aws_call_ms=5.0)
        # 0.060 s × 0.5 GB × 0.0000166667
        self.assertAlmostEqual(cost["lambda_duration"] * 1e6, 0.500001, places=9)

    def test_sms_publish_is_free_and_topic_publish_is_not(self):
        req = {"function": "fn", "calls": {"SNS Publish": 1}, "cpu_ms": 0.0}
        sms, _ = cm.request_cost(req, 256, "arm64", key="send_sms")
        voice, _ = cm.request_cost(req, 256, "arm64", key="send_voice")
        explicit, _ = cm.request_cost(dict(req, sns_target="sms"), 256, "arm64", key="send_code")
        self.assertEqual(sms["sns"], 0.0)
        self.assertEqual(explicit["sns"], 0.0)
        self.assertAlmostEqual(voice["sns"] * 1e6, 0.5, places=12)

    def test_ses_email(self):
        req = {"function": "fn", "calls": {"SESv2 SendEmail": 2}, "cpu_ms": 0.0}
        cost, _ = cm.request_cost(req, 256, "arm64")
        self.assertAlmostEqual(cost["ses"], 2 * 0.10 / 1000, places=12)

    def test_transact_write_counts_two_wru_per_item_two_items_if_unknown(self):
        req = {"function": "fn", "calls": {"DynamoDB TransactWriteItems": 1}, "cpu_ms": 0.0}
        cost, _ = cm.request_cost(req, 256, "arm64")
        self.assertAlmostEqual(cost["dynamodb_writes"] * 1e6, 4 * 0.625, places=12)
        req["transact_items"] = {"DynamoDB TransactWriteItems": 3}
        cost, _ = cm.request_cost(req, 256, "arm64")
        self.assertAlmostEqual(cost["dynamodb_writes"] * 1e6, 6 * 0.625, places=12)

    def test_get_public_key_is_paid_once_per_environment(self):
        req = {"function": "fn", "calls": {"KMS GetPublicKey": 1}, "cpu_ms": 0.0}
        cost, ms = cm.request_cost(req, 1769, "arm64", invocations_per_env=1000, aws_call_ms=5.0)
        self.assertAlmostEqual(cost["kms_asymmetric"] * 1e6, 0.015, places=12)
        self.assertEqual(ms, 1)  # 0.005 ms of amortised round trip, rounded up

    def test_init_phase_is_amortised(self):
        req = {"function": "fn", "calls": {}, "cpu_ms": 0.0}
        cost, _ = cm.request_cost(req, 512, "arm64", init_ms=40.0, invocations_per_env=1000)
        # ceil(40 × 1769 / 512) = 139 ms, × 0.5 GB × 0.0000133334, / 1000 invocations
        self.assertAlmostEqual(cost["lambda_init"], 0.139 * 0.5 * 0.0000133334 / 1000, places=15)

    def test_unknown_calls_are_refused(self):
        for name in ("DynamoDB DescribeTable", "KMS CreateKey", "S3 GetObject", "Nonsense"):
            with self.assertRaises(cm.ModelError, msg=name):
                cm.request_cost({"calls": {name: 1}}, 256, "arm64")

    def test_unknown_architecture_is_refused(self):
        with self.assertRaises(cm.ModelError):
            cm.request_cost(REQUEST, 256, "mips")


class Flows(unittest.TestCase):
    FUNCTIONS = {"a": {"memory_mb": 512, "architecture": "arm64"},
                 "b": {"memory_mb": 256, "architecture": "arm64"}}

    def flows(self):
        base = {"calls": {"DynamoDB GetItem": 1}, "cpu_ms": 0.0}
        return {"requests": {
            "sign_in_trusted": dict(base, function="a"),
            "sign_in_mfa": dict(base, function="a"),
            "verify_totp": dict(base, function="b"),
            "send_sms": dict(base, function="b", calls={"SNS Publish": 1}),
            "verify_sms": dict(base, function="b"),
        }}

    def test_a_flow_costs_the_sum_of_its_requests(self):
        costs = cm.flow_costs(self.flows(), self.FUNCTIONS, {}, aws_call_ms=5.0)
        self.assertEqual(set(costs), set(cm.FLOWS))
        sms = costs["password + SMS code"]
        self.assertEqual([k for k, _, _ in sms["requests"]], ["sign_in_mfa", "send_sms", "verify_sms"])
        for comp in sms["total"]:
            self.assertAlmostEqual(sms["total"][comp], sum(c[comp] for _, c, _ in sms["requests"]))
        # three requests: three API Gateway requests, three Lambda requests
        self.assertAlmostEqual(sms["total"]["apigw"] * 1e6, 3.0)
        self.assertAlmostEqual(sms["total"]["lambda_requests"] * 1e6, 0.6)
        self.assertEqual(sms["total"]["sns"], 0.0)
        # billed: a (512 MB) 1 call → 5 ms; b 1 call → 5 ms
        self.assertEqual([ms for _, _, ms in sms["requests"]], [5, 5, 5])

    def test_init_comes_from_the_lambda_measurements(self):
        lam = {"a": {"cold_start_ms": 50.0, "warm_ms_median": 10.0}}
        costs = cm.flow_costs(self.flows(), self.FUNCTIONS, lam, invocations_per_env=1)
        trusted = costs["password only (trusted device)"]["total"]
        # ceil(40 × 1769 / 512) = 139 ms at 0.5 GB, every invocation (1 per environment)
        self.assertAlmostEqual(trusted["lambda_init"], 0.139 * 0.5 * 0.0000133334, places=15)

    def test_init_as_the_harness_measured_it_comes_first(self):
        lam = {"a": {"init_ms": 20.0, "cold_start_ms": 50.0, "warm_ms_median": 10.0}}
        costs = cm.flow_costs(self.flows(), self.FUNCTIONS, lam, invocations_per_env=1)
        trusted = costs["password only (trusted device)"]["total"]
        # ceil(20 × 1769 / 512) = 70 ms at 0.5 GB
        self.assertAlmostEqual(trusted["lambda_init"], 0.070 * 0.5 * 0.0000133334, places=15)

    def test_missing_request_or_function_is_an_error(self):
        flows = self.flows()
        del flows["requests"]["verify_totp"]
        with self.assertRaises(cm.ModelError):
            cm.flow_costs(flows, self.FUNCTIONS, {})
        flows = self.flows()
        flows["requests"]["verify_totp"]["function"] = "nope"
        with self.assertRaises(cm.ModelError):
            cm.flow_costs(flows, self.FUNCTIONS, {})


class CognitoAndFixed(unittest.TestCase):
    def test_cognito_per_million_sign_ins(self):
        c = cm.cognito_per_million(8)
        # 125,000 MAU
        self.assertAlmostEqual(c["Lite"], 687.5)
        self.assertAlmostEqual(c["Essentials"], 1875.0)
        self.assertAlmostEqual(c["Plus"], 2500.0)

    def test_fixed_costs_and_functions_from_the_template(self):
        template = cm.load_template(TEMPLATE)
        fixed = {name: (n, total) for name, n, _, total in cm.fixed_monthly(template)}
        self.assertEqual(fixed["KMS customer managed keys"], (3, 3.0))
        functions = cm.template_functions(template)
        self.assertEqual(functions["sign-in"], {"memory_mb": 512, "architecture": "arm64"})
        self.assertEqual(functions["send-code"]["memory_mb"], 256)  # Globals

    def test_report_renders(self):
        template = cm.load_template(TEMPLATE)
        functions = cm.template_functions(template)
        flows = {"requests": {k: {"function": f, "calls": {"DynamoDB GetItem": 1}, "cpu_ms": 1.0}
                              for k, f in [("sign_in_trusted", "sign-in"), ("sign_in_mfa", "sign-in"),
                                           ("verify_totp", "verify"), ("send_sms", "send-code"),
                                           ("verify_sms", "verify")]}}
        text = cm.markdown(flows, functions, {}, template, 8, aws_call_ms=5.0,
                           invocations_per_env=1000, log_kb=1.0)
        self.assertTrue(text.startswith("## Cost model: AWS $ per million sign-ins, beside Cognito"))
        self.assertIn("| flow | Portcullis $ / 1M sign-ins | Cognito Lite | Essentials | Plus |", text)
        self.assertIn("| password + TOTP |", text)
        self.assertIn("687.50", text)


if __name__ == "__main__":
    unittest.main()
