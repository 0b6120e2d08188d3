"""Ledger replicas fed by journal streams, against the real binary: `sluice ledger replicate`
declares a replica that reads the source's journal stream from a Kinesis stream, of the same
server or of a second Sluice process reached through `--endpoint`; records delivered duplicated
and reordered still make an equal replica; and a kill -9 in the middle of a workload of
inserts, updates and deletes across three tables leaves every table's data equal."""

import base64
import json
import random
import re
import subprocess
import time
import urllib.error
import urllib.request

from amazon.ion import simpleion
from aws_kinesis_agg.deaggregator import iter_deaggregate_records
from pyqldb.config.retry_config import RetryConfig
from pyqldb.driver.qldb_driver import QldbDriver

from conftest import BINARY, aws_client, kill_9_while_writing

# Generous bound for a replica to catch up; a healthy run takes about a second.
CATCH_UP_BOUND_S = 90
TABLES = ["Vehicle", "Person", "Registration"]


def driver(server, ledger, **kwargs):
    return QldbDriver(ledger, endpoint_url=server.aws_url, region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x", **kwargs)


def table_data(qldb, table):
    rows = qldb.execute_lambda(lambda txn: list(txn.execute_statement(f"SELECT * FROM {table}")))
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)


def replicate(source_server, target_server, source, target):
    """`sluice ledger replicate` from the CLI; returns its output."""
    done = subprocess.run(
        [str(BINARY), "ledger", "replicate", source, "--to", target,
         "--endpoint", source_server.aws_url, "--to-endpoint", target_server.aws_url],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def describe_replica(server, target):
    with urllib.request.urlopen(f"{server.aws_url}/ledgers/{target}/replica", timeout=10) as answer:
        return json.load(answer)["Replica"]


def declare_replica(server, target, body):
    request = urllib.request.Request(f"{server.aws_url}/ledgers/{target}/replica",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["Replica"]


def wait_until_equal(source_qldb, replica_qldb):
    """Waits until every table of the replica holds the source's data."""
    deadline = time.monotonic() + CATCH_UP_BOUND_S
    while True:
        source_rows = {table: table_data(source_qldb, table) for table in TABLES}
        try:
            replica_rows = {table: table_data(replica_qldb, table) for table in TABLES}
        except Exception:  # noqa: BLE001 - the target or its tables do not exist yet
            replica_rows = None
        if replica_rows == source_rows:
            return source_rows
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.2)


def create_tables(server, ledger):
    aws_client(server, "qldb").create_ledger(Name=ledger, PermissionsMode="STANDARD",
                                             DeletionProtection=False)
    setup = driver(server, ledger)
    for table in TABLES:
        setup.execute_lambda(lambda txn, table=table: txn.execute_statement(f"CREATE TABLE {table}"))
    setup.close()


def workload(qldb, n):
    """Inserts across three tables, an update, and every fifth round deletes and a field removed."""
    qldb.execute_lambda(lambda txn: [
        txn.execute_statement("INSERT INTO Vehicle ?", {"VIN": f"V{n}", "Year": 2000 + n % 20,
                                                       "Price": 10.5 + n}),
        txn.execute_statement("INSERT INTO Person ?", {"PersonId": f"P{n}", "Points": n % 7}),
        txn.execute_statement("INSERT INTO Registration ?", {"VIN": f"V{n}", "Owner": f"P{n}"})])
    qldb.execute_lambda(lambda txn: txn.execute_statement(
        "UPDATE Person SET Points = Points + 1 WHERE PersonId = ?", f"P{n // 2}"))
    if n % 5 == 4:
        qldb.execute_lambda(lambda txn: [
            txn.execute_statement("DELETE FROM Registration WHERE VIN = ?", f"V{n - 3}"),
            txn.execute_statement("UPDATE Vehicle REMOVE Price WHERE VIN = ?", f"V{n - 2}")])


def test_stream_fed_replica_equals_source_after_kill_9(sluice_factory, tmp_path):
    data_dir = tmp_path / "data"
    server = sluice_factory(data_dir)
    create_tables(server, "shop")
    output = replicate(server, server, "shop", "shop-replica")
    assert "ledger shop-replica replicates shop" in output, output
    assert "sluice-journal-shop" in output, output
    # Declaring it again changes nothing.
    replicate(server, server, "shop", "shop-replica")

    qldb = driver(server, "shop", retry_config=RetryConfig(retry_limit=0))
    kill_9_while_writing(server, lambda n: workload(qldb, n), 41, CATCH_UP_BOUND_S)

    # No --config: the declared replica is in the data directory and resumes.
    server = sluice_factory(data_dir)
    qldb = driver(server, "shop")
    qldb.execute_lambda(lambda txn: txn.execute_statement("DELETE FROM Vehicle WHERE VIN = 'V0'"))
    qldb.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Person ?", {"PersonId": "last"}))
    rows = wait_until_equal(qldb, driver(server, "shop-replica"))
    assert all(rows.values()), "a source table is empty"
    deadline = time.monotonic() + CATCH_UP_BOUND_S
    while describe_replica(server, "shop-replica").get("LagBlocks") != 0:
        assert time.monotonic() < deadline, "the lag did not reach 0"
        time.sleep(0.1)
    replica = describe_replica(server, "shop-replica")
    assert replica["SourceLedgerName"] == "shop"
    assert replica["KinesisStreamName"] == "sluice-journal-shop"
    assert replica["SettlingWindowMs"] == 120_000
    assert "SourceEndpoint" not in replica


def test_replica_of_a_ledger_on_another_sluice_through_its_kinesis_api(sluice_factory, tmp_path):
    source_server = sluice_factory(tmp_path / "source")
    target_dir = tmp_path / "target"
    target_server = sluice_factory(target_dir)
    create_tables(source_server, "shop")
    source_qldb = driver(source_server, "shop")
    for n in range(12):
        workload(source_qldb, n)
    replicate(source_server, target_server, "shop", "shop-copy")
    assert describe_replica(target_server, "shop-copy")["SourceEndpoint"] == source_server.aws_url
    wait_until_equal(source_qldb, driver(target_server, "shop-copy"))

    # The target restarts (kill -9) and the source keeps writing: the replica resumes.
    target_server.kill()
    for n in range(12, 20):
        workload(source_qldb, n)
    target_server = sluice_factory(target_dir)
    rows = wait_until_equal(source_qldb, driver(target_server, "shop-copy"))
    assert all(rows.values()), "a source table is empty"
    # The source server has no replica; the target's lag counts what the stream showed.
    deadline = time.monotonic() + CATCH_UP_BOUND_S
    while describe_replica(target_server, "shop-copy").get("LagBlocks") != 0:
        assert time.monotonic() < deadline, "the lag did not reach 0"
        time.sleep(0.1)


def test_duplicated_and_reordered_stream_records_make_an_equal_replica(sluice):
    """The journal stream's records copied into a second Kinesis stream duplicated and shuffled,
    some of them aggregated, as an at-least-once pipeline may deliver them."""
    create_tables(sluice, "shop")
    qldb = driver(sluice, "shop")
    for n in range(15):
        workload(qldb, n)
    kinesis = aws_client(sluice, "kinesis")
    qldb_control = aws_client(sluice, "qldb")
    for name in ("journal", "shuffled"):
        kinesis.create_stream(StreamName=name, ShardCount=2)
    stream_id = qldb_control.stream_journal_to_kinesis(
        LedgerName="shop", StreamName="all", RoleArn="arn:aws:iam::000000000000:role/x",
        InclusiveStartTime=0,
        KinesisConfiguration={"StreamArn": "arn:aws:kinesis:us-east-1:000000000000:stream/journal",
                              "AggregationEnabled": True})["StreamId"]
    # Read every Kinesis record of the journal stream (aggregated ones as they are) until every
    # block's summary was seen.
    tip = qldb_control.get_digest(Name="shop")["DigestTipAddress"]["IonText"]
    expected_summaries = int(re.search(r"sequenceNo:\s*(\d+)", tip).group(1)) + 1
    records = []
    summaries = 0
    deadline = time.monotonic() + CATCH_UP_BOUND_S
    iterators = {shard["ShardId"]: kinesis.get_shard_iterator(
        StreamName="journal", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        for shard in kinesis.list_shards(StreamName="journal")["Shards"]}
    # A block's records may land in both shards: after the last summary, one more round that
    # finds nothing new in either shard.
    quiet_round = False
    while summaries < expected_summaries or not quiet_round:
        assert time.monotonic() < deadline, "the journal stream did not deliver every block"
        quiet_round = summaries >= expected_summaries
        for shard_id, iterator in list(iterators.items()):
            page = kinesis.get_records(ShardIterator=iterator)
            iterators[shard_id] = page["NextShardIterator"]
            if page["Records"]:
                quiet_round = False
            for record in page["Records"]:
                records.append((record["PartitionKey"], record["Data"]))
                for user in iter_deaggregate_records([record], data_format="Boto3"):
                    value = simpleion.loads(base64.b64decode(user["kinesis"]["data"]))
                    if value["recordType"] == "BLOCK_SUMMARY":
                        summaries += 1
        time.sleep(0.05)
    qldb_control.cancel_journal_kinesis_stream(LedgerName="shop", StreamId=stream_id)
    shuffled = records + records
    random.Random(7).shuffle(shuffled)
    for start in range(0, len(shuffled), 100):
        answer = kinesis.put_records(StreamName="shuffled", Records=[
            {"PartitionKey": key, "Data": data} for key, data in shuffled[start:start + 100]])
        assert answer["FailedRecordCount"] == 0
    replica = declare_replica(sluice, "shop-copy", {"SourceLedgerName": "shop",
                                                    "KinesisStreamName": "shuffled",
                                                    "SettlingWindowMs": 60_000})
    assert replica["SettlingWindowMs"] == 60_000
    wait_until_equal(qldb, driver(sluice, "shop-copy"))
    # Another source for the same target is refused in the AWS error shape.
    try:
        declare_replica(sluice, "shop-copy", {"SourceLedgerName": "other"})
        raise AssertionError("a second source was accepted")
    except urllib.error.HTTPError as error:
        assert error.code == 409
        assert json.load(error)["__type"].endswith("ResourceInUseException")
