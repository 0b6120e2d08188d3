"""The Kinesis Data Streams API with the real boto3 client (and the AWS CLI when installed) against
the real `sluice` binary: stream management, PutRecord(s)/GetRecords across shards with every
iterator type, per-shard order, MillisBehindLatest, durability across a restart, limits and errors.

Iterator expiry (5 minutes) is proven by the Rust tests of `crates/api/src/aws/kinesis.rs`, which
move an injected clock; the binary has no switch to shorten it."""

import base64
import json
import os
import shutil
import subprocess
import time
from collections import defaultdict

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import aws_client


def kinesis_client(server):
    return aws_client(server, "kinesis")


@pytest.fixture
def kinesis(sluice):
    return kinesis_client(sluice)


def shard_iterator(client, stream, shard_id, iterator_type, **extra):
    return client.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType=iterator_type, **extra
    )["ShardIterator"]


def read_all(client, iterator, limit=None):
    """Reads a shard from `iterator` until a page comes back empty and caught up."""
    records = []
    for _ in range(1000):
        kwargs = {"ShardIterator": iterator}
        if limit:
            kwargs["Limit"] = limit
        page = client.get_records(**kwargs)
        records.extend(page["Records"])
        iterator = page["NextShardIterator"]
        if not page["Records"] and page["MillisBehindLatest"] == 0:
            return records, iterator
    raise AssertionError("shard never caught up")


def test_create_describe_list_and_delete_streams(kinesis):
    kinesis.create_stream(StreamName="orders", ShardCount=3)
    kinesis.create_stream(StreamName="clicks", StreamModeDetails={"StreamMode": "ON_DEMAND"})

    description = kinesis.describe_stream(StreamName="orders")["StreamDescription"]
    assert description["StreamName"] == "orders"
    assert description["StreamARN"] == "arn:aws:kinesis:us-east-1:000000000000:stream/orders"
    assert description["StreamStatus"] == "ACTIVE"
    assert description["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert description["RetentionPeriodHours"] == 24
    assert description["EncryptionType"] == "NONE"
    assert description["HasMoreShards"] is False
    shards = description["Shards"]
    assert [shard["ShardId"] for shard in shards] == [
        "shardId-000000000000",
        "shardId-000000000001",
        "shardId-000000000002",
    ]
    # The hash key ranges tile the whole 128-bit space in order.
    assert shards[0]["HashKeyRange"]["StartingHashKey"] == "0"
    assert shards[-1]["HashKeyRange"]["EndingHashKey"] == str(2**128 - 1)
    for left, right in zip(shards, shards[1:]):
        assert int(left["HashKeyRange"]["EndingHashKey"]) + 1 == int(right["HashKeyRange"]["StartingHashKey"])
    assert all("StartingSequenceNumber" in shard["SequenceNumberRange"] for shard in shards)

    on_demand = kinesis.describe_stream_summary(StreamName="clicks")["StreamDescriptionSummary"]
    assert on_demand["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert on_demand["OpenShardCount"] == 4

    listed = kinesis.list_streams()
    assert listed["StreamNames"] == ["clicks", "orders"]
    assert listed["HasMoreStreams"] is False
    assert [summary["StreamARN"] for summary in listed["StreamSummaries"]] == [
        "arn:aws:kinesis:us-east-1:000000000000:stream/clicks",
        "arn:aws:kinesis:us-east-1:000000000000:stream/orders",
    ]
    first_page = kinesis.list_streams(Limit=1)
    assert first_page["StreamNames"] == ["clicks"] and first_page["HasMoreStreams"] is True
    assert kinesis.list_streams(ExclusiveStartStreamName="clicks")["StreamNames"] == ["orders"]
    paginated = [name for page in kinesis.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 1}) for name in page["StreamNames"]]
    assert paginated == ["clicks", "orders"]

    shard_pages = kinesis.get_paginator("list_shards").paginate(StreamName="clicks", PaginationConfig={"PageSize": 3})
    assert [shard["ShardId"] for page in shard_pages for shard in page["Shards"]] == [
        f"shardId-00000000000{index}" for index in range(4)
    ]
    described = kinesis.get_paginator("describe_stream").paginate(StreamName="clicks", PaginationConfig={"PageSize": 1})
    assert len([shard for page in described for shard in page["StreamDescription"]["Shards"]]) == 4

    with pytest.raises(kinesis.exceptions.ResourceInUseException) as raised:
        kinesis.create_stream(StreamName="orders", ShardCount=1)
    assert raised.value.response["Error"]["Message"] == "Stream orders under account 000000000000 already exists."

    kinesis.delete_stream(StreamName="orders")
    assert kinesis.list_streams()["StreamNames"] == ["clicks"]
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.describe_stream(StreamName="orders")


def test_put_records_and_get_records_across_shards_in_order(kinesis):
    kinesis.create_stream(StreamName="events", ShardCount=4)
    sent = [{"Data": f"event-{index}".encode(), "PartitionKey": f"key-{index % 17}"} for index in range(200)]
    response = kinesis.put_records(StreamName="events", Records=sent)
    assert response["FailedRecordCount"] == 0
    assert response["EncryptionType"] == "NONE"
    assert len(response["Records"]) == 200

    # What each shard must hold, in the order PutRecords gave them.
    expected = defaultdict(list)
    for record, result in zip(sent, response["Records"]):
        expected[result["ShardId"]].append((result["SequenceNumber"], record["PartitionKey"], record["Data"]))
    assert len(expected) == 4, "17 partition keys spread over all 4 shards"
    # The same partition key always lands on the same shard.
    shard_of_key = {}
    for record, result in zip(sent, response["Records"]):
        assert shard_of_key.setdefault(record["PartitionKey"], result["ShardId"]) == result["ShardId"]

    for shard_id, records in expected.items():
        iterator = shard_iterator(kinesis, "events", shard_id, "TRIM_HORIZON")
        got, _ = read_all(kinesis, iterator, limit=7)
        assert [(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in got] == records
        sequence_numbers = [int(r["SequenceNumber"]) for r in got]
        assert sequence_numbers == sorted(sequence_numbers) and len(set(sequence_numbers)) == len(got)
        assert all(r["ApproximateArrivalTimestamp"].timestamp() > 1_600_000_000 for r in got)


def test_every_iterator_type(kinesis):
    kinesis.create_stream(StreamName="s", ShardCount=1)
    shard = "shardId-000000000000"
    first = [kinesis.put_record(StreamName="s", Data=f"a{index}".encode(), PartitionKey="k") for index in range(3)]
    assert first[0]["ShardId"] == shard
    latest = shard_iterator(kinesis, "s", shard, "LATEST")
    kinesis.put_records(StreamName="s", Records=[{"Data": f"b{index}".encode(), "PartitionKey": "k"} for index in range(3)])

    def data(records):
        return [record["Data"].decode() for record in records]

    everything, _ = read_all(kinesis, shard_iterator(kinesis, "s", shard, "TRIM_HORIZON"))
    assert data(everything) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    assert data(read_all(kinesis, latest)[0]) == ["b0", "b1", "b2"]
    at = shard_iterator(kinesis, "s", shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber=first[1]["SequenceNumber"])
    assert data(read_all(kinesis, at)[0]) == ["a1", "a2", "b0", "b1", "b2"]
    after = shard_iterator(kinesis, "s", shard, "AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=first[1]["SequenceNumber"])
    assert data(read_all(kinesis, after)[0]) == ["a2", "b0", "b1", "b2"]

    # AT_TIMESTAMP returns exactly the records that arrived at or after the timestamp. botocore
    # sends timestamps of the JSON protocols as whole epoch seconds, so the server sees the
    # timestamp truncated to the second.
    timestamp = everything[3]["ApproximateArrivalTimestamp"].replace(microsecond=0)
    at_time = shard_iterator(kinesis, "s", shard, "AT_TIMESTAMP", Timestamp=timestamp)
    assert data(read_all(kinesis, at_time)[0]) == data(
        [record for record in everything if record["ApproximateArrivalTimestamp"] >= timestamp]
    )
    future = shard_iterator(kinesis, "s", shard, "AT_TIMESTAMP", Timestamp=time.time() + 3600)
    assert read_all(kinesis, future)[0] == []

    # A LATEST iterator sees nothing until something is put after it.
    tail = shard_iterator(kinesis, "s", shard, "LATEST")
    page = kinesis.get_records(ShardIterator=tail)
    assert page["Records"] == [] and page["MillisBehindLatest"] == 0
    kinesis.put_record(StreamName="s", Data=b"c0", PartitionKey="k")
    assert data(kinesis.get_records(ShardIterator=page["NextShardIterator"])["Records"]) == ["c0"]

    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        shard_iterator(kinesis, "s", shard, "AT_SEQUENCE_NUMBER")
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        shard_iterator(kinesis, "s", shard, "AT_SEQUENCE_NUMBER", StartingSequenceNumber="123456789")
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        shard_iterator(kinesis, "s", "shardId-000000000009", "TRIM_HORIZON")


def test_millis_behind_latest(kinesis):
    kinesis.create_stream(StreamName="lag", ShardCount=1)
    kinesis.put_record(StreamName="lag", Data=b"old", PartitionKey="k")
    # A time gap between the two records, so the first is measurably behind the tip.
    time.sleep(0.05)
    kinesis.put_record(StreamName="lag", Data=b"new", PartitionKey="k")
    iterator = shard_iterator(kinesis, "lag", "shardId-000000000000", "TRIM_HORIZON")
    behind = kinesis.get_records(ShardIterator=iterator, Limit=1)
    assert [record["Data"] for record in behind["Records"]] == [b"old"]
    assert behind["MillisBehindLatest"] >= 50
    caught_up = kinesis.get_records(ShardIterator=behind["NextShardIterator"])
    assert [record["Data"] for record in caught_up["Records"]] == [b"new"]
    assert caught_up["MillisBehindLatest"] == 0


def test_records_survive_a_restart(sluice_factory, tmp_path):
    data_dir = tmp_path / "restart-data"
    server = sluice_factory(data_dir)
    client = kinesis_client(server)
    client.create_stream(StreamName="durable", ShardCount=2)
    client.increase_stream_retention_period(StreamName="durable", RetentionPeriodHours=48)
    put = client.put_records(
        StreamName="durable",
        Records=[{"Data": f"r{index}".encode(), "PartitionKey": f"p{index}"} for index in range(50)],
    )
    assert put["FailedRecordCount"] == 0
    assert server.stop() == 0

    server = sluice_factory(data_dir)
    client = kinesis_client(server)
    description = client.describe_stream(StreamName="durable")["StreamDescription"]
    assert description["RetentionPeriodHours"] == 48
    got = []
    last_sequence = {}
    for shard in description["Shards"]:
        records, _ = read_all(client, shard_iterator(client, "durable", shard["ShardId"], "TRIM_HORIZON"))
        got.extend(records)
        if records:
            last_sequence[shard["ShardId"]] = int(records[-1]["SequenceNumber"])
    assert sorted(record["Data"].decode() for record in got) == sorted(f"r{index}" for index in range(50))
    # Sequence numbers keep growing after the restart.
    again = client.put_record(StreamName="durable", Data=b"after", PartitionKey="p0")
    assert int(again["SequenceNumber"]) > last_sequence[again["ShardId"]]


def test_limits_and_errors(kinesis):
    kinesis.create_stream(StreamName="limits", ShardCount=1)

    with pytest.raises(ClientError) as raised:
        kinesis.put_records(StreamName="limits", Records=[{"Data": b"x", "PartitionKey": "k"}] * 501)
    error = raised.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "Member must have length less than or equal to 500" in error["Message"]

    with pytest.raises(ClientError) as raised:
        kinesis.put_record(StreamName="limits", Data=b"x" * (1024 * 1024 + 1), PartitionKey="k")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        # Data alone fits in 1 MiB, data plus partition key does not.
        kinesis.put_records(StreamName="limits", Records=[{"Data": b"x" * (1024 * 1024), "PartitionKey": "key"}])
    with pytest.raises(kinesis.exceptions.InvalidArgumentException) as raised:
        kinesis.put_records(StreamName="limits", Records=[{"Data": b"x" * (1024 * 1024 - 10), "PartitionKey": "k"}] * 6)
    assert "5 MB" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as raised:
        kinesis.put_record(StreamName="limits", Data=b"x", PartitionKey="k" * 257)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as raised:
        kinesis.create_stream(StreamName="no spaces allowed", ShardCount=1)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "regular expression pattern: [a-zA-Z0-9_.-]+" in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as raised:
        kinesis.get_records(ShardIterator="x", Limit=10001)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    # Nothing of the refused requests was written.
    assert read_all(kinesis, shard_iterator(kinesis, "limits", "shardId-000000000000", "TRIM_HORIZON"))[0] == []

    for call in (
        lambda: kinesis.describe_stream(StreamName="nope"),
        lambda: kinesis.put_record(StreamName="nope", Data=b"x", PartitionKey="k"),
        lambda: kinesis.put_records(StreamName="nope", Records=[{"Data": b"x", "PartitionKey": "k"}]),
        lambda: shard_iterator(kinesis, "nope", "shardId-000000000000", "LATEST"),
        lambda: kinesis.delete_stream(StreamName="nope"),
    ):
        with pytest.raises(kinesis.exceptions.ResourceNotFoundException) as raised:
            call()
        assert raised.value.response["Error"]["Message"] == "Stream nope under account 000000000000 not found."

    with pytest.raises(kinesis.exceptions.InvalidArgumentException) as raised:
        kinesis.get_records(ShardIterator="not-an-iterator")
    assert raised.value.response["Error"]["Message"] == "Invalid ShardIterator."
    good = shard_iterator(kinesis, "limits", "shardId-000000000000", "LATEST")
    raw = bytearray(base64.b64decode(good))
    raw[-1] ^= 1  # one bit of the CRC
    tampered = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.get_records(ShardIterator=tampered)

    # An iterator of a deleted stream names a stream that no longer exists.
    kinesis.delete_stream(StreamName="limits")
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.get_records(ShardIterator=good)


def test_retention_period_changes(kinesis):
    kinesis.create_stream(StreamName="kept", ShardCount=1)
    kinesis.increase_stream_retention_period(StreamName="kept", RetentionPeriodHours=168)
    assert kinesis.describe_stream_summary(StreamName="kept")["StreamDescriptionSummary"]["RetentionPeriodHours"] == 168
    with pytest.raises(kinesis.exceptions.InvalidArgumentException) as raised:
        kinesis.increase_stream_retention_period(StreamName="kept", RetentionPeriodHours=100)
    assert "Use DecreaseRetentionPeriod API" in raised.value.response["Error"]["Message"]
    with pytest.raises(kinesis.exceptions.InvalidArgumentException) as raised:
        kinesis.decrease_stream_retention_period(StreamName="kept", RetentionPeriodHours=12)
    assert raised.value.response["Error"]["Message"] == (
        "Minimum allowed retention period is 24 hours. Requested retention period (12 hours) is too short."
    )
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.increase_stream_retention_period(StreamName="kept", RetentionPeriodHours=8761)
    kinesis.decrease_stream_retention_period(StreamName="kept", RetentionPeriodHours=24)
    assert kinesis.describe_stream(StreamName="kept")["StreamDescription"]["RetentionPeriodHours"] == 24


def test_stream_arn_addresses_a_stream(kinesis):
    kinesis.create_stream(StreamName="by-arn", ShardCount=1)
    arn = "arn:aws:kinesis:us-east-1:000000000000:stream/by-arn"
    put = kinesis.put_record(StreamARN=arn, Data=b"via arn", PartitionKey="k")
    iterator = kinesis.get_shard_iterator(StreamARN=arn, ShardId=put["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [record["Data"] for record in kinesis.get_records(ShardIterator=iterator, StreamARN=arn)["Records"]] == [b"via arn"]


@pytest.mark.skipif(shutil.which("aws") is None, reason="the AWS CLI is not installed")
def test_aws_cli(sluice):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")

    def aws(*args):
        completed = subprocess.run(
            ["aws", "--endpoint-url", sluice.aws_url, "--output", "json", "kinesis", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert completed.returncode == 0, completed.stderr
        return json.loads(completed.stdout) if completed.stdout.strip() else None

    aws("create-stream", "--stream-name", "cli", "--shard-count", "2")
    assert aws("list-streams")["StreamNames"] == ["cli"]
    put = aws("put-record", "--stream-name", "cli", "--partition-key", "k", "--data", base64.b64encode(b"from the cli").decode())
    iterator = aws(
        "get-shard-iterator", "--stream-name", "cli", "--shard-id", put["ShardId"], "--shard-iterator-type", "TRIM_HORIZON"
    )["ShardIterator"]
    records = aws("get-records", "--shard-iterator", iterator)["Records"]
    assert len(records) == 1
    assert records[0]["SequenceNumber"] == put["SequenceNumber"]
    # CLI v1 sends --data as given (base64-encoding it once more); v2 takes base64 input.
    decoded = base64.b64decode(records[0]["Data"])
    assert b"from the cli" in (decoded, base64.b64decode(decoded))
    aws("delete-stream", "--stream-name", "cli")
    assert aws("list-streams")["StreamNames"] == []


def test_delivery_stream_logs_are_not_kinesis_streams(sluice, kinesis):
    """A DirectPut delivery stream keeps its records in the same log as Kinesis streams, under a
    reserved name: the Kinesis API neither lists, reads nor creates such names."""
    firehose = boto3.client("firehose", endpoint_url=sluice.aws_url, region_name="us-east-1",
                            aws_access_key_id="x", aws_secret_access_key="x")
    firehose.create_delivery_stream(
        DeliveryStreamName="direct",
        DeliveryStreamType="DirectPut",
        ElasticsearchDestinationConfiguration={
            "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            "IndexName": "direct",
            "S3Configuration": {"RoleARN": "arn:aws:iam::000000000000:role/firehose",
                                "BucketARN": "arn:aws:s3:::direct-backup"},
        },
    )
    kinesis.create_stream(StreamName="mine", ShardCount=1)
    assert kinesis.list_streams()["StreamNames"] == ["mine"]
    with pytest.raises(kinesis.exceptions.ResourceNotFoundException):
        kinesis.describe_stream(StreamName="firehose.direct")
    with pytest.raises(kinesis.exceptions.InvalidArgumentException):
        kinesis.create_stream(StreamName="firehose.other", ShardCount=1)
