"""Unit tests of scripts/provision.py on moto in process (moto's mock_aws, no server).

A small template of its own, scripts/test_provision_template.yaml (not infra/template.yaml, so
the tests do not move with the product's resources), with every resource type provisioning
handles: a table with TTL, KMS keys of each spec, an alias, an SNS topic, an SES identity, and
an SQS queue whose RedrivePolicy names its dead-letter queue by !GetAtt Arn, read by a
function's environment through !Ref.

    .venv/bin/python -m unittest scripts/test_provision.py
"""

import contextlib
import io
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

import provision  # noqa: E402

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_provision_template.yaml")


class ProvisionTest(unittest.TestCase):
    def setUp(self):
        self.mock = mock_aws()
        self.mock.start()
        os.environ.update(
            AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1"
        )
        self.template = provision.load_template(TEMPLATE)

    def tearDown(self):
        self.mock.stop()

    def provision(self, topic_taps=False):
        # endpoint None: boto3's own AWS endpoints, which mock_aws intercepts
        provisioner = provision.Provisioner(
            self.template, None, "us-east-1", "local", topic_taps=topic_taps
        )
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return provisioner.run()

    def test_queues_are_created_with_their_attributes_and_redrive_to_the_dead_letter_queue(self):
        env = self.provision()
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq_url = sqs.get_queue_url(QueueName="portcullis-local-OutboxDeadLetters")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.assertTrue(env["OUTBOX_QUEUE_URL"].endswith("/portcullis-local-OutboxQueue"))
        attributes = sqs.get_queue_attributes(
            QueueUrl=env["OUTBOX_QUEUE_URL"], AttributeNames=["All"]
        )["Attributes"]
        self.assertEqual(attributes["VisibilityTimeout"], "60")
        self.assertEqual(
            json.loads(attributes["RedrivePolicy"]),
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5},
        )
        self.assertEqual(env["OUTBOX_QUEUE_ARN"], attributes["QueueArn"])
        self.assertEqual(env["DLQ_NAME"], "portcullis-local-OutboxDeadLetters")
        self.assertEqual(env["OWN"], "portcullis-local-OutboxQueue")
        dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
        self.assertEqual(dlq["MessageRetentionPeriod"], "1209600")

    def test_a_fifo_queue_gets_the_fifo_suffix_and_its_attributes(self):
        env = self.provision()
        self.assertTrue(env["FIFO_URL"].endswith("/portcullis-local-OrderedQueue.fifo"))
        sqs = boto3.client("sqs", region_name="us-east-1")
        attributes = sqs.get_queue_attributes(QueueUrl=env["FIFO_URL"], AttributeNames=["All"])[
            "Attributes"
        ]
        self.assertEqual(attributes["FifoQueue"], "true")
        self.assertEqual(attributes["ContentBasedDeduplication"], "true")

    def test_every_other_resource_type_is_created_as_the_template_says(self):
        env = self.provision()
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ttl = ddb.describe_time_to_live(TableName=env["TABLE"])["TimeToLiveDescription"]
        self.assertEqual((ttl["TimeToLiveStatus"], ttl["AttributeName"]), ("ENABLED", "ttl"))
        kms = boto3.client("kms", region_name="us-east-1")
        hmac = kms.describe_key(KeyId=env["HMAC_KEY"])["KeyMetadata"]
        self.assertEqual((hmac["KeySpec"], hmac["KeyUsage"]), ("HMAC_256", "GENERATE_VERIFY_MAC"))
        signing = kms.describe_key(KeyId=env["SIGNING_ALIAS"])["KeyMetadata"]
        self.assertEqual((signing["KeySpec"], signing["KeyUsage"]), ("ECC_NIST_P256", "SIGN_VERIFY"))
        sns = boto3.client("sns", region_name="us-east-1")
        topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
        self.assertIn(env["TOPIC"], topics)
        ses = boto3.client("ses", region_name="us-east-1")
        self.assertIn("no-reply@example.com", ses.list_identities()["Identities"])

    def test_a_second_run_reuses_everything_and_brings_changed_queue_attributes_in_line(self):
        first = self.provision()
        self.template["Resources"]["OutboxQueue"]["Properties"]["VisibilityTimeout"] = 90
        second = self.provision()
        self.assertEqual(first, second)
        sqs = boto3.client("sqs", region_name="us-east-1")
        attributes = sqs.get_queue_attributes(
            QueueUrl=second["OUTBOX_QUEUE_URL"], AttributeNames=["VisibilityTimeout"]
        )["Attributes"]
        self.assertEqual(attributes["VisibilityTimeout"], "90")

    def test_topic_taps_receive_what_is_published_to_their_topic(self):
        env = self.provision(topic_taps=True)
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        name = env["TOPIC"].split(":")[-1]
        tap = sqs.get_queue_url(QueueName=f"{name}-tap")["QueueUrl"]
        sns.publish(TopicArn=env["TOPIC"], Message='{"to": "+12025550100"}')
        messages = sqs.receive_message(QueueUrl=tap, WaitTimeSeconds=1).get("Messages", [])
        self.assertEqual([m["Body"] for m in messages], ['{"to": "+12025550100"}'])
        # idempotent: no second subscription on a re-run
        self.provision(topic_taps=True)
        subscriptions = sns.list_subscriptions_by_topic(TopicArn=env["TOPIC"])["Subscriptions"]
        self.assertEqual(len(subscriptions), 1)


if __name__ == "__main__":
    unittest.main()
