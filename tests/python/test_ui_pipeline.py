"""The dashboard's pipeline monitor in a real browser: a ledger, a Kinesis stream, a Firehose
delivery stream reading it into an index, shown as the map of the running pipeline with its
counters; a stream's records peeked and decoded."""

import json
import sys
import time
import urllib.request

from amazon.ion import simpleion

from conftest import aws_client
from playwright.sync_api import expect
from ui_support import browser, page, screenshot  # noqa: F401 (fixtures)

ROLE = "arn:aws:iam::000000000000:role/firehose"
RECORDS = 40
# The debug binary delivers within seconds; this bound only keeps a broken build from hanging.
DELIVERY_TIMEOUT_S = 60


def count(sluice, index):
    request = urllib.request.Request(f"{sluice.es_url}/{index}/_count")
    try:
        return json.load(urllib.request.urlopen(request))["count"]
    except urllib.error.HTTPError:
        return 0


def test_the_monitor_shows_a_stream_delivering_into_an_index(sluice, page):
    aws_client(sluice, "qldb").create_ledger(Name="orders", PermissionsMode="STANDARD")
    aws_client(sluice, "dynamodb").create_table(
        TableName="accounts", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
    kinesis = aws_client(sluice, "kinesis")
    kinesis.create_stream(StreamName="ticks", ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName="ticks")["StreamDescriptionSummary"]["StreamARN"]
    aws_client(sluice, "firehose").create_delivery_stream(
        DeliveryStreamName="ticks-to-index",
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": arn, "RoleARN": ROLE},
        ElasticsearchDestinationConfiguration={
            "RoleARN": ROLE,
            "IndexName": "ticks",
            "IndexRotationPeriod": "NoRotation",
            "BufferingHints": {"IntervalInSeconds": 0, "SizeInMBs": 1},
            "S3BackupMode": "FailedDocumentsOnly",
            "S3Configuration": {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::ticks-backup"},
        },
    )
    kinesis.put_records(
        StreamName="ticks",
        Records=[{"Data": json.dumps({"ticker": "AMZN", "price": 100 + i}).encode(), "PartitionKey": "AMZN"}
                 for i in range(RECORDS)],
    )
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while count(sluice, "ticks") < RECORDS:
        assert time.monotonic() < deadline, "the records were not delivered"
        time.sleep(0.2)

    page.goto(f"{sluice.ui_url}/#/pipeline?refresh=0")
    ledgers = page.locator('section[aria-label="Ledgers and tables"]')
    ledgers.locator("h3", has_text="orders").wait_for()
    assert "DynamoDB table" in ledgers.locator("article", has_text="accounts").inner_text()
    streams = page.locator('section[aria-label="Streams"]')
    assert "ticks-to-index" in streams.locator("article", has_text="ticks").inner_text()
    delivery = page.locator('article[data-delivery-stream="ticks-to-index"]')
    text = delivery.inner_text()
    assert "ACTIVE" in text
    assert f"delivered\n{RECORDS}" in text, text
    destination = page.locator('article[data-destination-of="ticks-to-index"]')
    assert "index ticks" in destination.inner_text()
    assert f"documents\n{RECORDS}" in destination.inner_text()
    assert "ticks-backup" in destination.inner_text()
    screenshot(page, "pipeline-map")

    page.select_option('select[aria-label="Stream to peek"]', "ticks")
    page.select_option('select[aria-label="Peek from"]', "TRIM_HORIZON")
    page.click("button:text-is(\"Peek\")")
    rows = page.locator(".peek tbody tr")
    rows.first.wait_for()
    assert rows.count() == 25
    first = rows.first.inner_text()
    assert "JSON" in first and '"ticker": "AMZN"' in first and '"price": 100' in first
    screenshot(page, "pipeline-peek")


def test_rates_appear_between_two_refreshes(sluice, page):
    firehose = aws_client(sluice, "firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName="direct",
        DeliveryStreamType="DirectPut",
        ElasticsearchDestinationConfiguration={
            "RoleARN": ROLE,
            "IndexName": "direct",
            "IndexRotationPeriod": "NoRotation",
            "BufferingHints": {"IntervalInSeconds": 0, "SizeInMBs": 1},
            "S3Configuration": {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::direct-backup"},
        },
    )
    page.goto(f"{sluice.ui_url}/#/pipeline?refresh=0")
    card = page.locator('article[data-delivery-stream="direct"]')
    card.wait_for()
    assert "incoming rate\n–" in card.inner_text()
    firehose.put_record_batch(DeliveryStreamName="direct", Records=[{"Data": b'{"a": 1}'}] * 10)
    page.click("button:text-is(\"Refresh\")")
    expect(card.locator("dt:text-is('incoming rate') + dd")).not_to_have_text("–")
    text = card.inner_text()
    assert "incoming\n10" in text, text
    rate = float(text.split("incoming rate\n")[1].split("/s")[0])
    assert rate > 0


def test_ion_records_are_shown_as_ion_text(sluice, page):
    kinesis = aws_client(sluice, "kinesis")
    kinesis.create_stream(StreamName="journal", ShardCount=1)
    # Ion binary, as QLDB journal streams and other Ion producers send it.
    value = simpleion.loads("{price: 12.50, at: 2021-03-04T, key: {{aGVsbG8=}}}")
    kinesis.put_record(StreamName="journal", Data=simpleion.dumps(value, binary=True), PartitionKey="k")
    kinesis.put_record(StreamName="journal", Data=b"plain text", PartitionKey="k")
    page.goto(f"{sluice.ui_url}/#/pipeline?refresh=0")
    page.locator('section[aria-label="Streams"] h3', has_text="journal").wait_for()
    page.select_option('select[aria-label="Stream to peek"]', "journal")
    page.click('button:text-is("Peek")')
    page.locator(".peek tbody tr").first.wait_for()
    assert page.locator(".peek tbody tr td:nth-child(4)").all_inner_texts() == ["Ion", "text"]
    ion_text = page.locator(".peek tbody tr td:nth-child(5)").first.inner_text()
    # Every type kept: the decimal's scale, the timestamp's precision, the blob.
    assert "price: 12.50" in ion_text and "at: 2021-03-04T" in ion_text and "key: {{aGVsbG8=}}" in ion_text, ion_text


def test_a_failing_function_shows_on_its_delivery_stream(sluice_factory, tmp_path, page):
    # The handler's module does not exist: every invocation fails (Lambda.FunctionError).
    task_root = tmp_path / "task"
    task_root.mkdir()
    config = tmp_path / "late.json"
    config.write_text(json.dumps({"functions": [{
        "name": "late", "kind": "runtime-api", "task_root": str(task_root),
        "command": [sys.executable, "-m", "awslambdaric", "late.handler"],
    }]}))
    sluice = sluice_factory(extra_args=["--config", str(config)])
    firehose = aws_client(sluice, "firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName="late-stream",
        DeliveryStreamType="DirectPut",
        ElasticsearchDestinationConfiguration={
            "RoleARN": ROLE,
            "IndexName": "late",
            "IndexRotationPeriod": "NoRotation",
            "BufferingHints": {"IntervalInSeconds": 0, "SizeInMBs": 1},
            "S3Configuration": {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::late-backup"},
            "ProcessingConfiguration": {"Enabled": True, "Processors": [{"Type": "Lambda", "Parameters": [
                {"ParameterName": "LambdaArn", "ParameterValue": "arn:aws:lambda:us-east-1:000000000000:function:late"},
                {"ParameterName": "NumberOfRetries", "ParameterValue": "0"}]}]},
        },
    )
    firehose.put_record_batch(DeliveryStreamName="late-stream", Records=[{"Data": b'{"a": 1}'}])
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while "FailureDescription" not in firehose.describe_delivery_stream(
            DeliveryStreamName="late-stream")["DeliveryStreamDescription"]:
        assert time.monotonic() < deadline, "the failure was not described"
        time.sleep(0.2)
    page.goto(f"{sluice.ui_url}/#/pipeline?refresh=0")
    card = page.locator('article[data-delivery-stream="late-stream"]')
    card.wait_for()
    text = card.inner_text()
    assert "functions\nlate (failing)" in text, text
    assert "function failures\nlate Lambda.FunctionError ×1" in text, text
    assert "Lambda.FunctionError" in card.locator('[role="alert"]').inner_text()
    screenshot(page, "pipeline-failing-function")
