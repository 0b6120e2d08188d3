"""Streams outside Sluice, through the `--config` file's `kinesis_endpoints`, against kinesalite
(npm's Kinesis API, started on 127.0.0.1 by the test) and a second Sluice started with
`--security` (whose Kinesis API checks SigV4): an event-source mapping and a delivery stream
reading an external stream across a shard split and a kill -9, KPL aggregates included; and a
journal stream written into an external stream, QLDB's record shapes read back with boto3 and
replayed by a replica."""

import base64
import json
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import boto3
import pytest
from amazon.ion import simpleion
from aws_kinesis_agg.aggregator import RecordAggregator
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from botocore.config import Config

from conftest import BINARY, ROOT, aws_client
from test_lambda import deploy
from test_s3 import free_port, wait_until
from test_ledger_replica_stream import (
    create_tables, declare_replica, driver, wait_until_equal, workload)

KINESALITE = ROOT / "tests" / "node" / "node_modules" / "kinesalite"
START_TIMEOUT_S = 30
# The account and region of the external streams' ARNs, mapped to the endpoint by the config.
ACCOUNT = "123456789012"
REGION = "us-east-1"
KPL_MAGIC = bytes([0xF3, 0x89, 0x9A, 0xC2])


def arn(stream):
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream}"


def kinesis_client(url, key=("kinesalite", "kinesalite")):
    return boto3.client("kinesis", endpoint_url=url, region_name=REGION,
                        aws_access_key_id=key[0], aws_secret_access_key=key[1],
                        config=Config(retries={"max_attempts": 1}))


@pytest.fixture
def kinesalite():
    """kinesalite on an ephemeral port of 127.0.0.1 (in memory); yields its URL."""
    port = free_port()
    script = ("require(process.argv[1])({createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0})"
              ".listen(+process.argv[2], '127.0.0.1', () => console.log('listening'))")
    process = subprocess.Popen(["node", "-e", script, str(KINESALITE), str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    line = process.stdout.readline()
    if "listening" not in line or time.monotonic() > deadline:
        process.kill()
        raise RuntimeError(f"kinesalite did not start: {line}{process.stdout.read()}")
    yield f"http://127.0.0.1:{port}"
    process.kill()
    process.wait(30)


@pytest.fixture
def credentials(monkeypatch):
    """The AWS credentials Sluice signs its Kinesis requests with (kinesalite checks only that a
    signature is there)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "kinesalite")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "kinesalite")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def config_args(tmp_path, endpoint, extra=()):
    path = tmp_path / "sluice.json"
    path.write_text(json.dumps({"kinesis_endpoints": [
        {"region": REGION, "account_id": ACCOUNT, "endpoint": endpoint}]}))
    return ["--config", str(path), *extra]


def create_stream(remote, name, shards):
    remote.create_stream(StreamName=name, ShardCount=shards)
    wait_until(lambda: remote.describe_stream_summary(StreamName=name)
               ["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", f"stream {name}")


def split_first_shard(remote, name):
    shard = remote.list_shards(StreamName=name)["Shards"][0]
    low = int(shard["HashKeyRange"]["StartingHashKey"])
    high = int(shard["HashKeyRange"]["EndingHashKey"])
    remote.split_shard(StreamName=name, ShardToSplit=shard["ShardId"],
                       NewStartingHashKey=str((low + high) // 2))
    wait_until(lambda: remote.describe_stream_summary(StreamName=name)
               ["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", "the split")
    # The closed parent is listed with its two children.
    assert len(remote.list_shards(StreamName=name)["Shards"]) == 4


class Producer:
    """Records `{"k": key, "n": n}` with n counting up per key, put into an external stream,
    sometimes as one KPL aggregate of several user records."""

    KEYS = [f"k{i}" for i in range(8)]

    def __init__(self, remote, stream):
        self.remote, self.stream = remote, stream
        self.counters = defaultdict(int)
        self.expected = []

    def next_record(self, key):
        record = {"k": key, "n": self.counters[key]}
        self.counters[key] += 1
        self.expected.append((key, record["n"]))
        return json.dumps(record).encode()

    def put(self, count):
        for start in range(0, count, 100):
            self.remote.put_records(StreamName=self.stream, Records=[
                {"PartitionKey": self.KEYS[i % len(self.KEYS)],
                 "Data": self.next_record(self.KEYS[i % len(self.KEYS)])}
                for i in range(start, min(count, start + 100))])

    def put_aggregate(self, keys):
        """One KPL aggregate of the user records of `keys`. The KPL aggregates only records bound
        for one shard: an aggregate of keys of different shards would order them across shards,
        which no consumer can undo, so the tests give one key at a time."""
        aggregator = RecordAggregator()
        for key in keys:
            aggregator.add_user_record(key, self.next_record(key))
        partition_key, _, data = aggregator.clear_and_get().get_contents()
        self.remote.put_record(StreamName=self.stream, PartitionKey=partition_key, Data=data)


def first_occurrences(pairs):
    seen, order = set(), []
    for pair in pairs:
        if pair not in seen:
            seen.add(pair)
            order.append(pair)
    return order


def test_a_mapping_reads_an_external_stream_in_key_order_across_a_split_and_a_kill_9(
        kinesalite, credentials, sluice_factory, tmp_path):
    remote = kinesis_client(kinesalite)
    create_stream(remote, "orders", 2)
    data_dir = tmp_path / "data"
    args = config_args(tmp_path, kinesalite, ["--lambda-python", sys.executable])
    server = sluice_factory(data_dir, args)
    seen = tmp_path / "seen.txt"
    deploy(server, "writer", "seen_writer", {"SEEN_FILE": str(seen)})
    mapping = aws_client(server, "lambda").create_event_source_mapping(
        EventSourceArn=arn("orders"), FunctionName="writer", StartingPosition="TRIM_HORIZON",
        BatchSize=10)
    assert mapping["EventSourceArn"] == arn("orders")
    # The copy is Sluice's own: its Kinesis API does not show it.
    assert aws_client(server, "kinesis").list_streams()["StreamNames"] == []

    def processed():
        lines = seen.read_text().splitlines() if seen.exists() else []
        return [(record["k"], record["n"]) for record in map(json.loads, lines)]

    producer = Producer(remote, "orders")
    producer.put(120)
    producer.put_aggregate(["k1", "k1", "k1"])
    wait_until(lambda: len(processed()) >= 20, "the first records")
    split_first_shard(remote, "orders")
    producer.put(120)
    wait_until(lambda: len(processed()) >= 150, "records after the split")
    server.kill()
    producer.put_aggregate(["k3", "k3"])
    producer.put(80)
    server = sluice_factory(data_dir, args)
    producer.put(40)
    wait_until(lambda: set(processed()) >= set(producer.expected), "every record")

    done = processed()
    assert set(done) == set(producer.expected)
    # Redelivery to the function after the kill is allowed (at least once); each key's records
    # come in the order they were put, across the split (parents read before children).
    by_key = defaultdict(list)
    for key, n in first_occurrences(done):
        by_key[key].append(n)
    for key, numbers in by_key.items():
        assert numbers == sorted(numbers), (key, numbers)

    # Deleting the mapping deletes its source: nothing is left to read the external stream.
    aws_client(server, "lambda").delete_event_source_mapping(UUID=mapping["UUID"])
    sources = server.data_dir / "kinesis-sources"
    wait_until(lambda: not list(sources.glob("*.position")), "the source to be deleted")


def count(server, index):
    try:
        with urllib.request.urlopen(f"{server.es_url}/{index}/_search?size=1000&q=*:*",
                                    timeout=30) as answer:
            hits = json.load(answer)["hits"]["hits"]
    except Exception:  # noqa: BLE001 - the index does not exist yet
        return None
    return [(hit["_source"]["k"], hit["_source"]["n"]) for hit in hits]


def test_a_delivery_stream_indexes_each_external_record_once_through_a_kill_9(
        kinesalite, credentials, sluice_factory, tmp_path):
    remote = kinesis_client(kinesalite)
    create_stream(remote, "clicks", 2)
    data_dir = tmp_path / "data"
    args = config_args(tmp_path, kinesalite)
    server = sluice_factory(data_dir, args)
    firehose = aws_client(server, "firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName="clicks-to-search",
        DeliveryStreamType="KinesisStreamAsSource",
        KinesisStreamSourceConfiguration={"KinesisStreamARN": arn("clicks"),
                                          "RoleARN": "arn:aws:iam::000000000000:role/firehose"},
        ElasticsearchDestinationConfiguration={
            "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            "DomainARN": "arn:aws:es:us-east-1:000000000000:domain/sluice",
            "IndexName": "clicks", "IndexRotationPeriod": "NoRotation",
            "BufferingHints": {"IntervalInSeconds": 1, "SizeInMBs": 1},
            "S3Configuration": {"RoleARN": "arn:aws:iam::000000000000:role/firehose",
                                "BucketARN": "arn:aws:s3:::backup"}})
    description = firehose.describe_delivery_stream(DeliveryStreamName="clicks-to-search")
    source = description["DeliveryStreamDescription"]["Source"]["KinesisStreamSourceDescription"]
    assert source["KinesisStreamARN"] == arn("clicks")
    producer = Producer(remote, "clicks")
    producer.put(200)
    producer.put_aggregate(["k5", "k5", "k5"])
    wait_until(lambda: len(count(server, "clicks") or []) >= 50, "the first documents")
    server.kill()
    split_first_shard(remote, "clicks")
    producer.put(100)
    server = sluice_factory(data_dir, args)
    producer.put(50)
    wait_until(lambda: len(count(server, "clicks") or []) >= len(producer.expected),
               "every document")
    time.sleep(2)
    indexed = count(server, "clicks")
    assert sorted(indexed) == sorted(producer.expected), "lost or duplicated documents"

    aws_client(server, "firehose").delete_delivery_stream(DeliveryStreamName="clicks-to-search")
    wait_until(lambda: not list((server.data_dir / "kinesis-sources").glob("*.position")),
               "the source to be deleted")


def read_stream(remote, stream):
    """Every user record of an external stream, KPL aggregates split, as Ion values."""
    records = []
    for shard in remote.list_shards(StreamName=stream)["Shards"]:
        iterator = remote.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            answer = remote.get_records(ShardIterator=iterator, Limit=1000)
            for record in answer["Records"]:
                if not record["Data"].startswith(KPL_MAGIC):
                    records.append(simpleion.loads(record["Data"]))
                    continue
                for user in iter_deaggregate_records([record], data_format="Boto3"):
                    records.append(simpleion.loads(base64.b64decode(user["kinesis"]["data"])))
            if not answer["Records"]:
                break
            iterator = answer.get("NextShardIterator")
    return records


def test_a_journal_stream_into_an_external_stream_has_qldb_shapes_and_feeds_a_replica(
        kinesalite, credentials, sluice_factory, tmp_path):
    remote = kinesis_client(kinesalite)
    create_stream(remote, "journal", 2)
    server = sluice_factory(tmp_path / "data", config_args(tmp_path, kinesalite))
    create_tables(server, "shop")
    qldb = driver(server, "shop")
    for n in range(10):
        workload(qldb, n)
    control = aws_client(server, "qldb")
    stream_id = control.stream_journal_to_kinesis(
        LedgerName="shop", StreamName="out", RoleArn="arn:aws:iam::000000000000:role/qldb",
        InclusiveStartTime=0,
        KinesisConfiguration={"StreamArn": arn("journal"), "AggregationEnabled": True})["StreamId"]
    described = control.describe_journal_kinesis_stream(LedgerName="shop", StreamId=stream_id)
    assert described["Stream"]["KinesisConfiguration"]["StreamArn"] == arn("journal")

    def record_types():
        return {record["recordType"] for record in read_stream(remote, "journal")}

    wait_until(lambda: {"CONTROL", "BLOCK_SUMMARY", "REVISION_DETAILS"} <= record_types(),
               "QLDB's three record types in the external stream")
    records = read_stream(remote, "journal")
    assert all(record["qldbStreamArn"].endswith(f"/{stream_id}") for record in records)
    revision = next(record for record in records if record["recordType"] == "REVISION_DETAILS")
    assert set(revision["payload"]) >= {"tableInfo", "revision"}
    assert not list((server.data_dir / "streams").glob("journal*")), \
        "the journal stream wrote into the node's own log"

    # A replica on the same server reads the external stream back.
    declare_replica(server, "shop-copy", {"SourceLedgerName": "shop",
                                          "KinesisStreamName": "journal",
                                          "SourceEndpoint": kinesalite,
                                          "SettlingWindowMs": 10_000})
    for n in range(10, 14):
        workload(qldb, n)
    rows = wait_until_equal(qldb, driver(server, "shop-copy"))
    assert all(rows.values())


def test_a_journal_stream_into_a_secured_sluice_is_signed_with_the_environment_s_key(
        credentials, sluice_factory, tmp_path, monkeypatch):
    """The destination checks SigV4: records arrive only if Sluice signs its PutRecords with
    the access key of the environment."""
    destination_dir = tmp_path / "destination"
    created = subprocess.run(
        [str(BINARY), "security", "--data-dir",
         str(destination_dir), "access-key", "create"],
        capture_output=True, text=True, check=True).stdout
    key_id = created.split("access key id: ")[1].split()[0]
    secret = created.split("secret access key: ")[1].split()[0]
    destination = sluice_factory(destination_dir, ["--security"])
    remote = kinesis_client(destination.aws_url, (key_id, secret))
    create_stream(remote, "journal", 1)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    (tmp_path / "source").mkdir()
    server = sluice_factory(tmp_path / "source" / "data",
                            config_args(tmp_path / "source", destination.aws_url))
    create_tables(server, "shop")
    workload(driver(server, "shop"), 0)
    aws_client(server, "qldb").stream_journal_to_kinesis(
        LedgerName="shop", StreamName="out", RoleArn="arn:aws:iam::000000000000:role/qldb",
        InclusiveStartTime=0,
        KinesisConfiguration={"StreamArn": arn("journal"), "AggregationEnabled": False})
    wait_until(lambda: any(record["recordType"] == "REVISION_DETAILS"
                           for record in read_stream(remote, "journal")),
               "the journal's revisions in the secured Sluice")
