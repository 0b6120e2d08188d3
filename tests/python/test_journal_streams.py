"""Journal streams (QLDB's StreamJournalToKinesis) against the real binary, with real clients:
boto3's `qldb` client drives the control plane, pyqldb writes, and a consumer written as users
write them reads the Kinesis stream with boto3's `kinesis` client polling GetRecords,
de-aggregates with `aws_kinesis_agg`, parses Ion with `amazon.ion`, checks every revision's hash
with its own implementation of QLDB's rules, and indexes into the search API with external
versions (scenario 1 of SCENARIOS.md). A kill -9 test shows the stream resumes at least once; a
chaos test feeds that consumer duplicated, shuffled records across a kill -9 and `check-index`
finds no difference."""

import base64
import collections.abc
import datetime
import decimal
import hashlib
import json
import random
import subprocess
import threading
import time

import ionhash  # noqa: F401 - adds `ion_hash` to amazon.ion's values
import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from botocore.exceptions import ClientError
from elasticsearch import ConflictError, Elasticsearch, NotFoundError
from pyqldb.config.retry_config import RetryConfig
from pyqldb.driver.qldb_driver import QldbDriver

from conftest import BINARY, aws_client, kill_9_while_writing

ROLE_ARN = "arn:aws:iam::000000000000:role/qldb-stream"
# Generous bound for the stream to deliver what was committed; a healthy run takes well under a
# second.
DELIVERY_BOUND_S = 60


def stream_arn(name):
    return f"arn:aws:kinesis:us-east-1:000000000000:stream/{name}"


def driver(server, ledger, **kwargs):
    return QldbDriver(ledger, endpoint_url=server.aws_url, region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x", **kwargs)


def setup_ledger(server, ledger, table, destination, shards=1):
    aws_client(server, "qldb").create_ledger(Name=ledger, PermissionsMode="STANDARD", DeletionProtection=False)
    aws_client(server, "kinesis").create_stream(StreamName=destination, ShardCount=shards)
    qldb = driver(server, ledger)
    qldb.execute_lambda(lambda txn: txn.execute_statement(f"CREATE TABLE {table}"))
    return qldb


def start_stream(server, ledger, destination, aggregation=True, **extra):
    return aws_client(server, "qldb").stream_journal_to_kinesis(
        LedgerName=ledger, RoleArn=ROLE_ARN, StreamName=f"{ledger}-stream",
        InclusiveStartTime=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
        KinesisConfiguration={"StreamArn": stream_arn(destination), "AggregationEnabled": aggregation},
        Tags={"team": "ledger"}, **extra)["StreamId"]


# --- QLDB's hashing rules, written here independently of the server ---------------------------

def ion_hash(value):
    return value.ion_hash("SHA256")


def dot(a, b):
    """QLDB's `dot`: the SHA-256 of both hashes, the smaller first, comparing signed bytes from
    the last one; an empty hash leaves the other unchanged."""
    if not a:
        return b
    if not b:
        return a
    signed = lambda byte: byte - 256 if byte > 127 else byte  # noqa: E731
    for x, y in zip(reversed(a), reversed(b)):
        if signed(x) != signed(y):
            smaller, larger = (a, b) if signed(x) < signed(y) else (b, a)
            return hashlib.sha256(smaller + larger).digest()
    return hashlib.sha256(a + b).digest()


def revision_hash(revision):
    data = revision.get("data")
    return dot(ion_hash(revision["metadata"]), ion_hash(data) if data is not None else b"")


def test_the_hash_rules_of_this_test_match_a_revision_real_qldb_streamed():
    revision = simpleion.loads(
        '{data: {OrderId: "12345", Item: "ABC12345", Quantity: 1}, '
        'metadata: {id: "3Ax1in3Mt7L0YvVb6XhYyn", version: 0, txTime: 2020-07-05T18:22:14.019Z, '
        'txId: "84MQSpihZfxFzpQ4fGyXtX"}}')
    assert base64.b64encode(revision_hash(revision)).decode() == "hrhsCwsNPzLjCsOBHRtSkMCh2JGrB6q0eOGFswyQBPU="


# --- a consumer as users write it ---------------------------------------------------------------

def to_json(value):
    """Ion to JSON with real types: numbers stay numbers (the pitfall users hit was strings)."""
    ion_type = getattr(value, "ion_type", None)
    if value is None or ion_type == IonType.NULL:
        return None
    if ion_type == IonType.BOOL:
        return bool(value)
    if isinstance(value, collections.abc.Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if ion_type in (IonType.LIST, IonType.SEXP) or isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


class Consumer:
    """Reads every shard of a stream from its start with GetRecords, de-aggregates, parses Ion."""

    def __init__(self, server, stream):
        self.kinesis = aws_client(server, "kinesis")
        self.stream = stream
        shards = self.kinesis.list_shards(StreamName=stream)["Shards"]
        self.iterators = {
            shard["ShardId"]: self.kinesis.get_shard_iterator(
                StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            for shard in shards}
        self.records = []
        self.raw_records = 0

    def poll(self):
        """One GetRecords per shard; returns the new journal records."""
        new = []
        for shard_id, iterator in self.iterators.items():
            answer = self.kinesis.get_records(ShardIterator=iterator, Limit=1000)
            self.iterators[shard_id] = answer["NextShardIterator"]
            self.raw_records += len(answer["Records"])
            for user_record in iter_deaggregate_records(answer["Records"], data_format="Boto3"):
                data = user_record["kinesis"]["data"]
                if isinstance(data, str):
                    data = base64.b64decode(data)
                elif not data.startswith(b"\xe0\x01\x00\xea"):
                    data = base64.b64decode(data)
                new.append((user_record["kinesis"]["partitionKey"], simpleion.loads(data)))
        self.records.extend(new)
        return new

    def poll_until(self, what, done):
        deadline = time.monotonic() + DELIVERY_BOUND_S
        while not done(self.records):
            assert time.monotonic() < deadline, f"the stream did not deliver {what}"
            if not self.poll():
                time.sleep(0.05)


def revisions_of(records, table):
    return [record["payload"]["revision"] for _, record in records
            if record["recordType"] == "REVISION_DETAILS" and record["payload"]["tableInfo"]["tableName"] == table]


def index_revision(es, index, revision):
    """Scenario 1's consumer: the whole document on create and update, a delete with the same
    external version when the revision has no data; conflicts are expected and ignored."""
    metadata = revision["metadata"]
    try:
        if revision.get("data") is not None:
            es.index(index=index, id=str(metadata["id"]), document=to_json(revision["data"]),
                     version=int(metadata["version"]), version_type="external")
        else:
            es.delete(index=index, id=str(metadata["id"]), version=int(metadata["version"]),
                      version_type="external")
    except (ConflictError, NotFoundError):
        pass


# --- tests --------------------------------------------------------------------------------------

def test_the_control_plane_answers_in_qldbs_shapes(sluice):
    qldb = aws_client(sluice, "qldb")
    setup_ledger(sluice, "control", "T", "control-dest")
    first = start_stream(sluice, "control", "control-dest", aggregation=False)
    assert len(first) == 22
    stream = qldb.describe_journal_kinesis_stream(LedgerName="control", StreamId=first)["Stream"]
    assert stream["Status"] == "ACTIVE"
    assert stream["LedgerName"] == "control"
    assert stream["StreamName"] == "control-stream"
    assert stream["RoleArn"] == ROLE_ARN
    assert stream["Arn"] == f"arn:aws:qldb:us-east-1:000000000000:stream/control/{first}"
    assert stream["KinesisConfiguration"] == {"StreamArn": stream_arn("control-dest"), "AggregationEnabled": False}
    assert stream["InclusiveStartTime"] == datetime.datetime(2020, 1, 1, tzinfo=stream["InclusiveStartTime"].tzinfo)
    assert "ExclusiveEndTime" not in stream

    # Stream names are unique among a ledger's active streams.
    with pytest.raises(ClientError) as refused:
        start_stream(sluice, "control", "control-dest")
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    second = aws_client(sluice, "qldb").stream_journal_to_kinesis(
        LedgerName="control", RoleArn=ROLE_ARN, StreamName="second",
        InclusiveStartTime=datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1),
        ExclusiveEndTime=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1),
        KinesisConfiguration={"StreamArn": stream_arn("control-dest")})["StreamId"]

    # Listed oldest first, one page at a time.
    page = qldb.list_journal_kinesis_streams_for_ledger(LedgerName="control", MaxResults=1)
    assert [stream["StreamId"] for stream in page["Streams"]] == [first]
    rest = qldb.list_journal_kinesis_streams_for_ledger(LedgerName="control", MaxResults=1, NextToken=page["NextToken"])
    assert [stream["StreamId"] for stream in rest["Streams"]] == [second]
    assert "NextToken" not in rest
    assert rest["Streams"][0]["KinesisConfiguration"]["AggregationEnabled"] is True

    # Bad input gets QLDB's errors.
    for kwargs, code in [
        (dict(StreamId="0" * 22), "ResourceNotFoundException"),
    ]:
        with pytest.raises(ClientError) as refused:
            qldb.describe_journal_kinesis_stream(LedgerName="control", **kwargs)
        assert refused.value.response["Error"]["Code"] == code
    with pytest.raises(ClientError) as refused:
        qldb.stream_journal_to_kinesis(
            LedgerName="control", RoleArn=ROLE_ARN, StreamName="elsewhere",
            InclusiveStartTime=datetime.datetime(2020, 1, 1),
            KinesisConfiguration={"StreamArn": stream_arn("missing")})
    assert refused.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as refused:
        qldb.stream_journal_to_kinesis(
            LedgerName="nope", RoleArn=ROLE_ARN, StreamName="x",
            InclusiveStartTime=datetime.datetime(2020, 1, 1),
            KinesisConfiguration={"StreamArn": stream_arn("control-dest")})
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"

    # A ledger with active streams is not deleted; canceled streams do not hold it.
    with pytest.raises(ClientError) as refused:
        qldb.delete_ledger(Name="control")
    assert refused.value.response["Error"]["Code"] == "ResourceInUseException"
    assert qldb.cancel_journal_kinesis_stream(LedgerName="control", StreamId=first)["StreamId"] == first
    with pytest.raises(ClientError) as refused:
        qldb.cancel_journal_kinesis_stream(LedgerName="control", StreamId=first)
    assert refused.value.response["Error"]["Code"] == "ResourcePreconditionNotMetException"
    assert qldb.describe_journal_kinesis_stream(LedgerName="control", StreamId=first)["Stream"]["Status"] == "CANCELED"

    # A destination that disappears impairs the stream, with QLDB's cause.
    aws_client(sluice, "kinesis").delete_stream(StreamName="control-dest")
    deadline = time.monotonic() + DELIVERY_BOUND_S
    while True:
        described = qldb.describe_journal_kinesis_stream(LedgerName="control", StreamId=second)["Stream"]
        if described["Status"] == "IMPAIRED":
            break
        assert time.monotonic() < deadline, described
        time.sleep(0.05)
    assert described["ErrorCause"] == "KINESIS_STREAM_NOT_FOUND"
    qldb.cancel_journal_kinesis_stream(LedgerName="control", StreamId=second)
    qldb.delete_ledger(Name="control")


def test_a_users_consumer_checks_every_hash_and_indexes_with_external_versions(sluice):
    ledger, table, destination, index = "licences", "BicycleLicence", "licence-journal", "licence"
    qldb = setup_ledger(sluice, ledger, table, destination, shards=2)
    licences = [
        {"Name": "Ana", "LicenceId": "L-1", "Postcode": "EC1A", "PenaltyPoints": 0},
        {"Name": "Bo", "LicenceId": "L-2", "Postcode": "EC1A", "PenaltyPoints": 3},
        {"Name": "Cy", "LicenceId": "L-3", "Postcode": "N1", "PenaltyPoints": 6},
    ]
    for licence in licences:
        qldb.execute_lambda(lambda txn, licence=licence: txn.execute_statement(f"INSERT INTO {table} ?", licence))
    # The stream starts in the past: the inserts above are replayed.
    stream_id = start_stream(sluice, ledger, destination, aggregation=True)
    qldb.execute_lambda(lambda txn: txn.execute_statement(
        f"UPDATE {table} SET PenaltyPoints = 4 WHERE LicenceId = 'L-2'"))
    qldb.execute_lambda(lambda txn: txn.execute_statement(f"DELETE FROM {table} WHERE LicenceId = 'L-3'"))
    qldb.execute_lambda(lambda txn: txn.execute_statement(
        f"INSERT INTO {table} ?", {"Name": "Di", "LicenceId": "L-4", "Postcode": "N1", "PenaltyPoints": 1.5}))

    consumer = Consumer(sluice, destination)
    consumer.poll_until("six revisions", lambda records: len(revisions_of(records, table)) >= 6)
    assert consumer.raw_records < len(consumer.records), "aggregation packs several records in one"
    arn = f"arn:aws:qldb:us-east-1:000000000000:stream/{ledger}/{stream_id}"
    kinds = [record["recordType"] for _, record in consumer.records]
    assert kinds.count("CONTROL") == 1 and {"BLOCK_SUMMARY", "REVISION_DETAILS"} <= set(kinds)
    summaries = {}
    for key, record in consumer.records:
        assert record["qldbStreamArn"] == arn
        payload = record["payload"]
        if record["recordType"] == "CONTROL":
            assert payload["controlRecordType"] == "CREATED"
        elif record["recordType"] == "BLOCK_SUMMARY":
            for summary in payload["revisionSummaries"]:
                summaries[summary["documentId"]] = summaries.get(summary["documentId"], []) + [bytes(summary["hash"])]
        else:
            revision = payload["revision"]
            assert key == revision["metadata"]["id"]
            assert bytes(revision["hash"]) == revision_hash(revision), revision
    for revision in revisions_of(consumer.records, table):
        assert bytes(revision["hash"]) in summaries[revision["metadata"]["id"]]

    es = Elasticsearch(sluice.es_url)
    # Records delivered twice and out of order still converge: external versions decide.
    revisions = revisions_of(consumer.records, table)
    for revision in list(reversed(revisions)) + revisions:
        index_revision(es, index, revision)
    es.indices.refresh(index=index)
    committed = qldb.execute_lambda(lambda txn: list(txn.execute_statement(
        f"SELECT metadata.id AS id, metadata.version AS version, data FROM _ql_committed_{table}")))
    hits = es.search(index=index, query={"match_all": {}}, version=True, size=100)["hits"]["hits"]
    assert {hit["_id"]: (hit["_version"], hit["_source"]) for hit in hits} == {
        str(row["id"]): (int(row["version"]), to_json(row["data"])) for row in committed}
    assert len(hits) == 3, "the deleted licence is gone"
    points = es.search(index=index, query={"range": {"PenaltyPoints": {"gte": 3}}})["hits"]["hits"]
    assert [hit["_source"]["LicenceId"] for hit in points] == ["L-2"]
    assert isinstance(points[0]["_source"]["PenaltyPoints"], int)
    aws_client(sluice, "qldb").cancel_journal_kinesis_stream(LedgerName=ledger, StreamId=stream_id)
    consumer.poll_until("CANCELLED", lambda records: records[-1][1]["recordType"] == "CONTROL"
                        and records[-1][1]["payload"]["controlRecordType"] == "CANCELLED")


def test_after_kill_9_the_stream_resumes_and_nothing_is_missing(sluice_factory, tmp_path):
    data_dir = tmp_path / "data"
    server = sluice_factory(data_dir)
    ledger, table, destination = "chaos", "Events", "chaos-journal"
    setup_ledger(server, ledger, table, destination).close()
    start_stream(server, ledger, destination)

    acknowledged = []
    qldb = driver(server, ledger, retry_config=RetryConfig(retry_limit=0))

    def write_round(n):
        qldb.execute_lambda(lambda txn: txn.execute_statement(f"INSERT INTO {table} ?", {"n": n}))
        acknowledged.append(n)

    kill_9_while_writing(server, write_round, 30, DELIVERY_BOUND_S)

    server = sluice_factory(data_dir)
    qldb = driver(server, ledger)
    for n in range(10_000, 10_005):
        qldb.execute_lambda(lambda txn, n=n: txn.execute_statement(f"INSERT INTO {table} ?", {"n": n}))
        acknowledged.append(n)
    committed = {row["n"] for row in qldb.execute_lambda(
        lambda txn: list(txn.execute_statement(f"SELECT n FROM {table}")))}
    assert set(acknowledged) <= committed

    consumer = Consumer(server, destination)
    consumer.poll_until("every committed revision", lambda records: {
        revision["data"]["n"] for revision in revisions_of(records, table)} >= committed)
    for revision in revisions_of(consumer.records, table):
        assert bytes(revision["hash"]) == revision_hash(revision)


def test_chaos_shuffled_duplicated_records_and_kill_9_converge_per_check_index(sluice_factory, tmp_path):
    """Scenario 1's consumer, fed the journal stream's records duplicated and shuffled, with the
    server killed by kill -9 while it runs: afterwards `sluice ledger check-index` (comparing the
    consumer's `<ledger>-<table>` indices with the tables; the built-in indexer is off for this
    ledger) reports no difference."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"ledger_indexing": {"ledgers": {"chaos": {"enabled": False}}}}))
    data_dir = tmp_path / "data"
    server = sluice_factory(data_dir, ["--config", str(config)])
    qldb = setup_ledger(server, "chaos", "Events", "chaos-journal")
    qldb.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Counters"))
    qldb.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Counters ?", {"name": "c", "n": 0}))
    start_stream(server, "chaos", "chaos-journal", aggregation=True)
    shuffler = random.Random(10)
    enough = threading.Event()

    def index_shuffled(es, records):
        revisions = [(record["payload"]["tableInfo"]["tableName"], record["payload"]["revision"])
                     for _, record in records if record["recordType"] == "REVISION_DETAILS"]
        revisions = revisions + revisions
        shuffler.shuffle(revisions)
        for table, revision in revisions:
            index_revision(es, f"chaos-{table.lower()}", revision)

    def writer():
        writes = driver(server, "chaos", retry_config=RetryConfig(retry_limit=0))
        try:
            for n in range(10_000):
                writes.execute_lambda(lambda txn, n=n: [
                    txn.execute_statement("INSERT INTO Events ?", {"n": n, "kind": f"k{n % 3}"}),
                    txn.execute_statement("UPDATE Counters SET n = ? WHERE name = 'c'", n)])
                if n % 10 == 9:
                    writes.execute_lambda(lambda txn, n=n: txn.execute_statement("DELETE FROM Events WHERE n = ?", n - 5))
        except Exception:  # noqa: BLE001 - the server was killed under us: expected
            pass

    def consumer():
        es = Elasticsearch(server.es_url)
        try:
            reader = Consumer(server, "chaos-journal")
            while True:
                new = reader.poll()
                if not new:
                    time.sleep(0.05)
                index_shuffled(es, new)
                if len(revisions_of(reader.records, "Events")) >= 60:
                    enough.set()
        except Exception:  # noqa: BLE001 - the server was killed under us: expected
            pass
        finally:
            enough.set()

    threads = [threading.Thread(target=writer, daemon=True), threading.Thread(target=consumer, daemon=True)]
    for thread in threads:
        thread.start()
    assert enough.wait(DELIVERY_BOUND_S)
    server.kill()
    for thread in threads:
        thread.join(DELIVERY_BOUND_S)

    server = sluice_factory(data_dir, ["--config", str(config)])
    qldb = driver(server, "chaos")
    qldb.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Events ?", {"n": -1, "kind": "last"}))
    # The journal stream resumed where it stopped; a consumer reading from the start sees
    # everything (in order on its one shard), shuffles and duplicates it again.
    reader = Consumer(server, "chaos-journal")
    reader.poll_until("the last insert", lambda records: any(
        revision.get("data") is not None and revision["data"]["n"] == -1
        for revision in revisions_of(records, "Events")))
    index_shuffled(Elasticsearch(server.es_url), reader.records)
    checked = subprocess.run(
        [str(BINARY), "ledger", "check-index", "chaos", "--endpoint", server.aws_url, "--es-endpoint", server.es_url],
        capture_output=True, text=True, timeout=DELIVERY_BOUND_S * 2)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "index chaos-events matches table Events" in checked.stdout
    assert "index chaos-counters matches table Counters" in checked.stdout
