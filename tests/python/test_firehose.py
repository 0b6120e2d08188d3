"""Firehose compatibility: boto3's firehose client against the real `sluice` binary, delivering
into Sluice's own index through Lambda handlers run by awslambdaric (scenario 2), with hourly
rotation on a shifted clock, failed documents backed up after the retry duration, and a kill -9
under load that loses and duplicates nothing acknowledged."""

import base64
import calendar
import collections
import json
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from conftest import aws_client, wait_until

HANDLERS = Path(__file__).resolve().parent / "handlers"
LAMBDA_ARN = "arn:aws:lambda:us-east-1:000000000000:function:{}"


def firehose(sluice):
    return aws_client(sluice, "firehose")


def es(sluice, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        sluice.es_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def count(sluice, target, query=None):
    es(sluice, "POST", f"/{target}/_refresh")
    status, body = es(sluice, "POST", f"/{target}/_count", {"query": query or {"match_all": {}}})
    return body["count"] if status == 200 else 0


def config_file(tmp_path, functions=()):
    path = tmp_path / "sluice.json"
    path.write_text(
        json.dumps(
            {
                "functions": [
                    {
                        "name": name,
                        "kind": "runtime-api",
                        "command": [sys.executable, "-m", "awslambdaric", f"{module}.handler"],
                        "task_root": str(HANDLERS),
                    }
                    for name, module in functions
                ]
            }
        )
    )
    return ["--config", str(path)]


def create_stream(client, name, index="example", rotation="OneHour", processor=None,
                  retry_s=60, interval_s=1, backup_mode="AllDocuments"):
    destination = {
        "RoleARN": "arn:aws:iam::000000000000:role/firehose",
        "IndexName": index,
        "IndexRotationPeriod": rotation,
        "BufferingHints": {"IntervalInSeconds": interval_s, "SizeInMBs": 1},
        "RetryOptions": {"DurationInSeconds": retry_s},
        "S3BackupMode": backup_mode,
        "S3Configuration": {
            "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            "BucketARN": "arn:aws:s3:::backup",
        },
    }
    if processor:
        destination["ProcessingConfiguration"] = {
            "Enabled": True,
            "Processors": [
                {
                    "Type": "Lambda",
                    "Parameters": [
                        {"ParameterName": "LambdaArn", "ParameterValue": LAMBDA_ARN.format(processor)},
                        {"ParameterName": "NumberOfRetries", "ParameterValue": "3"},
                        {"ParameterName": "BufferSizeInMBs", "ParameterValue": "1"},
                        {"ParameterName": "BufferIntervalInSeconds", "ParameterValue": "60"},
                    ],
                }
            ],
        }
    return client.create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ElasticsearchDestinationConfiguration=destination,
    )


def hello_records(n, word="hello world"):
    return [{"Data": json.dumps({"message": f"{word} {i}"}).encode()} for i in range(n)]


@pytest.mark.parametrize("handler, expected_word", [("identity", "hello"), ("bye", "bye")])
def test_scenario_2_put_record_batch_through_a_lambda_into_rotated_index(
    sluice_factory, tmp_path, handler, expected_word
):
    sluice = sluice_factory(extra_args=config_file(tmp_path, [(handler, handler)]))
    client = firehose(sluice)
    arn = create_stream(client, "hello-stream", processor=handler)["DeliveryStreamARN"]
    assert arn.endswith(":deliverystream/hello-stream")

    hours = {time.strftime("example-%Y-%m-%d-%H", time.gmtime())}
    response = client.put_record_batch(DeliveryStreamName="hello-stream", Records=hello_records(499))
    hours.add(time.strftime("example-%Y-%m-%d-%H", time.gmtime()))
    assert response["FailedPutCount"] == 0
    assert len(response["RequestResponses"]) == 499
    assert all("RecordId" in r for r in response["RequestResponses"])

    wait_until(lambda: count(sluice, "example-*") == 499, what="499 documents")
    assert count(sluice, "example-*", {"term": {"message": expected_word}}) == 499
    other = "bye" if expected_word == "hello" else "hello"
    assert count(sluice, "example-*", {"term": {"message": other}}) == 0
    status, indices = es(sluice, "GET", "/_cat/indices/example-*?format=json")
    assert status == 200
    [index] = [i["index"] for i in indices]
    assert index in hours
    # AllDocuments: every delivered document is also in the backup bucket.
    backup = sluice.data_dir / "s3" / "backup"
    wait_until(
        lambda: sum(f.read_bytes().count(b'"message"') for f in backup.rglob("*") if f.is_file()
                    and "failed" not in str(f)) == 499,
        what="the backup of all documents",
    )

    description = client.describe_delivery_stream(DeliveryStreamName="hello-stream")["DeliveryStreamDescription"]
    assert description["DeliveryStreamStatus"] == "ACTIVE"
    assert description["DeliveryStreamType"] == "DirectPut"
    destination = description["Destinations"][0]["ElasticsearchDestinationDescription"]
    assert destination["IndexName"] == "example"
    assert destination["IndexRotationPeriod"] == "OneHour"
    assert client.list_delivery_streams()["DeliveryStreamNames"] == ["hello-stream"]

    with urllib.request.urlopen(sluice.aws_url + "/metrics") as metrics:
        text = metrics.read().decode()
    assert 'sluice_firehose_incoming_records_total{delivery_stream="hello-stream"} 499' in text
    assert 'sluice_firehose_delivery_to_elasticsearch_records_total{delivery_stream="hello-stream"} 499' in text


def test_errors_match_firehose(sluice):
    client = firehose(sluice)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.put_record(DeliveryStreamName="missing", Record={"Data": b"x"})
    create_stream(client, "twice")
    with pytest.raises(client.exceptions.ResourceInUseException):
        create_stream(client, "twice")
    # A ClusterEndpoint is accepted (test_firehose_external.py); a bucket name of one letter is not.
    with pytest.raises(client.exceptions.InvalidArgumentException, match="does not name a valid bucket"):
        client.create_delivery_stream(
            DeliveryStreamName="external",
            ElasticsearchDestinationConfiguration={
                "RoleARN": "arn:aws:iam::000000000000:role/firehose",
                "ClusterEndpoint": "https://search.example.com",
                "IndexName": "x",
                "S3Configuration": {"RoleARN": "arn:aws:iam::000000000000:role/firehose",
                                    "BucketARN": "arn:aws:s3:::b"},
            },
        )
    record_id = client.put_record(DeliveryStreamName="twice", Record={"Data": b'{"a": 1}'})["RecordId"]
    assert record_id
    client.delete_delivery_stream(DeliveryStreamName="twice")
    assert client.list_delivery_streams()["DeliveryStreamNames"] == []


def shifted(iso):
    """SLUICE_CLOCK_OFFSET_MS that makes the server's clock read `iso` (UTC) now."""
    target_ms = calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%S")) * 1000
    return str(target_ms - int(time.time() * 1000))


def test_hourly_rotation_follows_the_arrival_time(sluice_factory, monkeypatch, tmp_path):
    monkeypatch.setenv("SLUICE_CLOCK_OFFSET_MS", shifted("2016-02-25T13:30:00"))
    sluice = sluice_factory()
    client = firehose(sluice)
    create_stream(client, "rotating")
    client.put_record_batch(DeliveryStreamName="rotating", Records=hello_records(3))
    wait_until(lambda: count(sluice, "example-2016-02-25-13") == 3, what="the 13h index")
    sluice.stop()

    monkeypatch.setenv("SLUICE_CLOCK_OFFSET_MS", shifted("2016-02-25T14:30:00"))
    sluice = sluice_factory()
    client = firehose(sluice)
    client.put_record_batch(DeliveryStreamName="rotating", Records=hello_records(4))
    wait_until(lambda: count(sluice, "example-2016-02-25-14") == 4, what="the 14h index")
    assert count(sluice, "example-2016-02-25-13") == 3


def test_documents_the_index_refuses_end_in_elasticsearch_failed(sluice):
    status, _ = es(sluice, "PUT", "/strict", {"mappings": {"properties": {"n": {"type": "integer"}}}})
    assert status == 200
    client = firehose(sluice)
    create_stream(client, "failing", index="strict", rotation="NoRotation", retry_s=2,
                  backup_mode="FailedDocumentsOnly")
    response = client.put_record_batch(
        DeliveryStreamName="failing",
        Records=[{"Data": b'{"n": 1}'}, {"Data": b'{"n": "not a number"}'}],
    )
    assert response["FailedPutCount"] == 0
    failed_dir = sluice.data_dir / "s3" / "backup" / "elasticsearch_failed"
    files = wait_until(lambda: [f for f in failed_dir.rglob("*") if f.is_file()], what="a failed-documents object")
    [line] = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert set(line) == {"attemptsMade", "arrivalTimestamp", "errorCode", "errorMessage",
                         "attemptEndingTimestamp", "esDocumentId", "esIndexName", "esTypeName", "rawData"}
    assert line["errorCode"] == "400"
    assert line["esIndexName"] == "strict"
    assert base64.b64decode(line["rawData"]) == b'{"n": "not a number"}'
    assert line["attemptEndingTimestamp"] - line["arrivalTimestamp"] >= 2000
    assert count(sluice, "strict") == 1


def test_kill_9_under_load_loses_and_duplicates_nothing_acknowledged(sluice_factory):
    sluice = sluice_factory()
    client = firehose(sluice)
    create_stream(client, "crash", index="crash", rotation="NoRotation", interval_s=0,
                  backup_mode="FailedDocumentsOnly")
    acknowledged = []
    stop = threading.Event()

    def produce(worker):
        producer = firehose(sluice)
        batch_number = 0
        while not stop.is_set():
            messages = [f"w{worker}-b{batch_number}-r{i}" for i in range(100)]
            batch_number += 1
            try:
                response = producer.put_record_batch(
                    DeliveryStreamName="crash",
                    Records=[{"Data": json.dumps({"message": m}).encode()} for m in messages],
                )
            except Exception:
                return
            for message, result in zip(messages, response["RequestResponses"]):
                if "RecordId" in result:
                    acknowledged.append(message)

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(3)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(acknowledged) >= 6000, what="load")
    sluice.kill()
    stop.set()
    for thread in threads:
        thread.join()
    assert acknowledged

    sluice = sluice_factory()
    wait_until(lambda: count(sluice, "crash") >= len(acknowledged), what="redelivery after restart")
    es(sluice, "POST", "/crash/_refresh")
    # Look every acknowledged message up by value, a thousand at a time (a search returns at most
    # 10,000 hits, and the load may have acknowledged more than that before the kill).
    seen = collections.Counter()
    for start in range(0, len(acknowledged), 1000):
        chunk = acknowledged[start:start + 1000]
        status, body = es(sluice, "POST", "/crash/_search",
                          {"size": 10000, "query": {"terms": {"message.keyword": chunk}}})
        assert status == 200
        for hit in body["hits"]["hits"]:
            seen[hit["_source"]["message"]] += 1
    assert all(seen[m] == 1 for m in acknowledged), "an acknowledged record is missing or duplicated"
    # Records in flight at the kill may be there too, but never twice: ids come from log positions.
    sent_in_flight = 3 * 100
    assert len(acknowledged) <= count(sluice, "crash") <= len(acknowledged) + sent_in_flight


def test_config_file_declares_functions_and_delivery_streams(sluice_factory, tmp_path):
    path = tmp_path / "declared.json"
    path.write_text(json.dumps({
        "functions": [{
            "name": "identity",
            "kind": "runtime-api",
            "command": [sys.executable, "-m", "awslambdaric", "identity.handler"],
            "task_root": str(HANDLERS),
        }],
        "delivery_streams": [{
            "DeliveryStreamName": "declared",
            "DeliveryStreamType": "DirectPut",
            "AmazonopensearchserviceDestinationConfiguration": {
                "RoleARN": "arn:aws:iam::000000000000:role/firehose",
                "IndexName": "declared",
                "IndexRotationPeriod": "NoRotation",
                "BufferingHints": {"IntervalInSeconds": 0, "SizeInMBs": 1},
                "S3Configuration": {"RoleARN": "arn:aws:iam::000000000000:role/firehose",
                                    "BucketARN": "arn:aws:s3:::declared"},
                "ProcessingConfiguration": {"Enabled": True, "Processors": [{"Type": "Lambda", "Parameters": [
                    {"ParameterName": "LambdaArn", "ParameterValue": LAMBDA_ARN.format("identity")}]}]},
            },
        }],
    }))
    sluice = sluice_factory(extra_args=["--config", str(path)])
    client = firehose(sluice)
    description = client.describe_delivery_stream(DeliveryStreamName="declared")["DeliveryStreamDescription"]
    assert "AmazonopensearchserviceDestinationDescription" in description["Destinations"][0]
    client.put_record(DeliveryStreamName="declared", Record={"Data": b'{"message": "hello"}'})
    wait_until(lambda: count(sluice, "declared") == 1, what="the declared stream to deliver")
    sluice.stop()
    # Applying the same file again keeps the existing stream (and its checkpoint).
    sluice = sluice_factory(extra_args=["--config", str(path)])
    assert firehose(sluice).list_delivery_streams()["DeliveryStreamNames"] == ["declared"]
    assert count(sluice, "declared") == 1


def test_scenario_3_stock_ticker_gets_a_timestamp_from_its_lambda(sluice_factory, tmp_path):
    sluice = sluice_factory(extra_args=config_file(tmp_path, [("stock", "stock")]))
    client = firehose(sluice)
    create_stream(client, "stocks", index="stockdata", rotation="NoRotation", processor="stock",
                  backup_mode="FailedDocumentsOnly")
    tickers = [("AMZN", "RETAIL"), ("WMT", "RETAIL"), ("NVDA", "TECHNOLOGY")]
    records = [
        {"Data": json.dumps({"ticker_symbol": t, "sector": s, "change": -0.5 + i, "price": 100.0 + i}).encode()}
        for i, (t, s) in enumerate(tickers * 10)
    ]
    assert client.put_record_batch(DeliveryStreamName="stocks", Records=records)["FailedPutCount"] == 0
    wait_until(lambda: count(sluice, "stockdata") == 30, what="30 stock documents")
    status, body = es(sluice, "POST", "/stockdata/_search", {"size": 1, "query": {"term": {"ticker_symbol": "nvda"}}})
    assert status == 200 and body["hits"]["total"]["value"] == 10, body
    source = body["hits"]["hits"][0]["_source"]
    assert source["timestamp"].endswith("Z") and "T" in source["timestamp"]
    # FailedDocumentsOnly: nothing failed, so nothing is backed up.
    assert not (sluice.data_dir / "s3" / "backup").exists()


def metrics_text(sluice):
    with urllib.request.urlopen(sluice.aws_url + "/metrics") as metrics:
        return metrics.read().decode()


def describe(client, name):
    return client.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]


def test_a_function_that_cannot_start_is_described_counted_logged_once_and_cleared(
    sluice_factory, tmp_path
):
    """Deliverable 5: the handler module does not exist yet, so every runtime exits at start.
    PutRecordBatch still succeeds (as in Firehose, the records are in the stream), the records
    go to processing-failed/, DescribeDeliveryStream and /metrics show the failure, the log says
    it once; once the module exists, delivery resumes and the description is cleared."""
    task_root = tmp_path / "task"
    task_root.mkdir()
    command = [sys.executable, "-m", "awslambdaric", "late.handler"]
    config = tmp_path / "late.json"
    config.write_text(json.dumps({"functions": [
        {"name": "late", "kind": "runtime-api", "command": command, "task_root": str(task_root)}
    ]}))
    sluice = sluice_factory(extra_args=["--config", str(config)])
    client = firehose(sluice)
    client.create_delivery_stream(
        DeliveryStreamName="late-stream",
        DeliveryStreamType="DirectPut",
        ElasticsearchDestinationConfiguration={
            "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            "IndexName": "late",
            "IndexRotationPeriod": "NoRotation",
            "BufferingHints": {"IntervalInSeconds": 0, "SizeInMBs": 1},
            "S3BackupMode": "FailedDocumentsOnly",
            "S3Configuration": {"RoleARN": "arn:aws:iam::000000000000:role/firehose",
                                "BucketARN": "arn:aws:s3:::late-backup"},
            "ProcessingConfiguration": {"Enabled": True, "Processors": [{"Type": "Lambda", "Parameters": [
                {"ParameterName": "LambdaArn", "ParameterValue": LAMBDA_ARN.format("late")},
                {"ParameterName": "NumberOfRetries", "ParameterValue": "1"}]}]},
        },
    )
    assert "FailureDescription" not in describe(client, "late-stream")

    response = client.put_record_batch(DeliveryStreamName="late-stream", Records=hello_records(3))
    assert response["FailedPutCount"] == 0
    failure = wait_until(lambda: describe(client, "late-stream").get("FailureDescription"),
                         what="the failure to be described")
    description = describe(client, "late-stream")
    assert description["DeliveryStreamStatus"] == "ACTIVE"
    assert failure["Type"] == "UNKNOWN_ERROR"
    details = failure["Details"]
    assert "Lambda function " + LAMBDA_ARN.format("late") + " failed 1 invocations" in details, details
    assert "Lambda.FunctionError" in details, details
    assert f"could not start `{sys.executable} -m awslambdaric late.handler`" in details, details
    assert "Runtime.ImportModuleError" in details and "No module named 'late'" in details, details

    failed_dir = sluice.data_dir / "s3" / "late-backup" / "processing-failed"
    wait_until(lambda: failed_dir.exists() and any(f.is_file() for f in failed_dir.rglob("*")),
               what="the processing-failed backup")
    lines = [json.loads(line) for f in failed_dir.rglob("*") if f.is_file()
             for line in f.read_text().splitlines()]
    assert len(lines) == 3
    assert {line["errorCode"] for line in lines} == {"Lambda.FunctionError"}
    assert {line["attemptsMade"] for line in lines} == {2}
    assert sorted(json.loads(base64.b64decode(line["rawData"]))["message"] for line in lines) == [
        "hello world 0", "hello world 1", "hello world 2"]

    text = metrics_text(sluice)
    assert ('sluice_firehose_processing_failures_total{delivery_stream="late-stream",'
            'function="late",error_code="Lambda.FunctionError"} 1') in text, text
    assert 'sluice_firehose_processor_failing{delivery_stream="late-stream",function="late"} 1' in text

    # A second failing batch: the same burst, so the log does not say it again.
    client.put_record_batch(DeliveryStreamName="late-stream", Records=hello_records(2, "again"))
    wait_until(lambda: "failed 2 invocations" in describe(client, "late-stream")
               .get("FailureDescription", {}).get("Details", ""),
               what="the second failure")
    log = "".join(sluice.output)
    assert "\x1b[" not in log, "the log of a server whose stderr is a pipe has no ANSI codes"
    said = [line for line in log.splitlines() if "could not start" in line]
    # One line from the function host (with the command), one from the delivery stream.
    assert len(said) == 2, "\n".join(said)
    assert any("ERROR" in line and "invocation failed" in line for line in said), said
    assert any("WARN" in line and "go to processing-failed/" in line for line in said), said
    # Four processes were started and failed; only the first start is logged at info level.
    started = [line for line in log.splitlines() if "runtime process started" in line]
    assert len(started) == 1, "\n".join(started)

    # The module appears: the next batch is delivered and the failure is cleared.
    (task_root / "late.py").write_text((HANDLERS / "identity.py").read_text())
    client.put_record_batch(DeliveryStreamName="late-stream", Records=hello_records(4, "now"))
    wait_until(lambda: count(sluice, "late") == 4, what="delivery after the module appeared")
    assert "FailureDescription" not in describe(client, "late-stream")
    text = metrics_text(sluice)
    assert 'sluice_firehose_processor_failing{delivery_stream="late-stream",function="late"} 0' in text
    assert ('sluice_firehose_processing_failures_total{delivery_stream="late-stream",'
            'function="late",error_code="Lambda.FunctionError"} 2') in text, text


def test_a_runtime_not_installed_for_the_python_is_named_with_its_stderr(sluice_factory, tmp_path):
    """The issue's first-time user: `--function` names a runtime module the server's python
    does not have. The description names the command and quotes Python's complaint."""
    sluice = sluice_factory(extra_args=[
        "--function", f"bye={sys.executable} -m sluice_not_installed_runtime handler.handler"])
    client = firehose(sluice)
    create_stream(client, "missing-runtime", index="missing", rotation="NoRotation", processor="bye",
                  interval_s=0, backup_mode="FailedDocumentsOnly")
    assert client.put_record_batch(DeliveryStreamName="missing-runtime",
                                   Records=hello_records(2))["FailedPutCount"] == 0
    failure = wait_until(lambda: describe(client, "missing-runtime").get("FailureDescription"),
                         what="the failure to be described")
    details = failure["Details"]
    assert f"could not start `{sys.executable} -m sluice_not_installed_runtime handler.handler`" in details
    assert "exited with status 1 before asking for its first event" in details, details
    assert "No module named sluice_not_installed_runtime" in details, details


def test_handlers_get_the_documented_environment(sluice_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTUAL_ENV", "/opt/sluice-test-venv")
    monkeypatch.setenv("LC_TIME", "C")
    monkeypatch.setenv("SLUICE_TEST_SECRET", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "server-secret")
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    config = tmp_path / "env.json"
    config.write_text(json.dumps({"functions": [{
        "name": "envdump", "kind": "runtime-api",
        "command": [sys.executable, "-m", "awslambdaric", "envdump.handler"],
        "task_root": str(HANDLERS),
        "environment": {"GREETING": "hello", "TZ": "UTC"},
    }]}))
    sluice = sluice_factory(extra_args=["--config", str(config)])
    client = firehose(sluice)
    create_stream(client, "env", index="env", rotation="NoRotation", processor="envdump", interval_s=0,
                  backup_mode="FailedDocumentsOnly")
    client.put_record(DeliveryStreamName="env", Record={"Data": b'{"message": "hi"}'})
    wait_until(lambda: count(sluice, "env") == 1, what="the environment document")
    status, body = es(sluice, "POST", "/env/_search", {"query": {"match_all": {}}})
    assert status == 200, body
    environment = body["hits"]["hits"][0]["_source"]["environment"]
    # Inherited from the server: the documented set.
    assert environment["PATH"] == os.environ["PATH"]
    assert environment["VIRTUAL_ENV"] == "/opt/sluice-test-venv"
    assert environment["LC_TIME"] == "C"
    # Declared in the function's `environment`, winning over the server's.
    assert environment["GREETING"] == "hello"
    assert environment["TZ"] == "UTC"
    # Set by Sluice as Lambda does.
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "envdump"
    assert environment["AWS_LAMBDA_RUNTIME_API"].startswith("127.0.0.1:")
    assert environment["AWS_REGION"] == "us-east-1"
    assert environment["LAMBDA_TASK_ROOT"] == str(HANDLERS)
    # Never passed on: anything else of the server's environment, credentials above all.
    assert environment["SLUICE_TEST_SECRET"] is None
    assert environment["AWS_SECRET_ACCESS_KEY"] is None


def test_a_stream_whose_kinesis_source_is_gone_stays_active_and_says_why(sluice_factory):
    """A delivery stream whose worker cannot run (its Kinesis source was deleted, seen at the
    next start) is described with one of Firehose's statuses and a FailureDescription, and can
    be deleted."""
    sluice = sluice_factory()
    kinesis = boto3.client(
        "kinesis",
        endpoint_url=sluice.aws_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    kinesis.create_stream(StreamName="orders", ShardCount=1)
    client = firehose(sluice)
    client.create_delivery_stream(
        DeliveryStreamName="archive",
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={
            "KinesisStreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/orders",
            "RoleARN": "arn:aws:iam::000000000000:role/firehose",
        },
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            "BucketARN": "arn:aws:s3:::archive",
        },
    )
    description = describe(client, "archive")
    assert description["DeliveryStreamStatus"] == "ACTIVE"
    assert "FailureDescription" not in description
    kinesis.delete_stream(StreamName="orders")
    assert sluice.stop() == 0

    sluice = sluice_factory()
    client = firehose(sluice)
    description = describe(client, "archive")
    assert description["DeliveryStreamStatus"] == "ACTIVE"
    failure = description["FailureDescription"]
    assert failure["Type"] == "UNKNOWN_ERROR"
    assert "could not be resumed" in failure["Details"], failure
    assert "orders" in failure["Details"], failure
    client.delete_delivery_stream(DeliveryStreamName="archive")
    assert client.list_delivery_streams()["DeliveryStreamNames"] == []
