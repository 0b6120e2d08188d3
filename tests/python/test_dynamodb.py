"""The DynamoDB API with the real boto3 client against the real `sluice` binary: table
lifecycle, every attribute type through PutItem/GetItem/DeleteItem (numbers exact to 38 digits),
DynamoDB's error types and texts, ListTables paging, and durability: items survive a restart,
and every acknowledged PutItem survives kill -9 under load from concurrent clients."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import aws_client

CRASH_CLIENTS = 8
MIN_ACKED_BEFORE_KILL = 200
DEADLINE_S = 60


def client(server, kind="client"):
    return aws_client(server, "dynamodb", resource=kind != "client")


@pytest.fixture
def dynamodb(sluice):
    return client(sluice)


def create_transactions(dynamodb, name="transactions", **extra):
    return dynamodb.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "userId", "KeyType": "HASH"},
            {"AttributeName": "transactionId", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "userId", "AttributeType": "N"},
            {"AttributeName": "transactionId", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )["TableDescription"]


def error_of(call, *args, **kwargs):
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def test_table_lifecycle(dynamodb):
    created = create_transactions(
        dynamodb, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    )
    assert created["TableStatus"] == "ACTIVE"
    assert created["TableArn"] == "arn:aws:dynamodb:us-east-1:000000000000:table/transactions"
    assert created["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert created["LatestStreamArn"].startswith(created["TableArn"] + "/stream/")
    dynamodb.get_waiter("table_exists").wait(TableName="transactions")
    table = dynamodb.describe_table(TableName="transactions")["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "userId", "KeyType": "HASH"},
        {"AttributeName": "transactionId", "KeyType": "RANGE"},
    ]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["ItemCount"] == 0
    assert error_of(create_transactions, dynamodb) == (
        "ResourceInUseException",
        "Table already exists: transactions",
    )
    deleted = dynamodb.delete_table(TableName="transactions")["TableDescription"]
    assert deleted["TableStatus"] == "DELETING"
    dynamodb.get_waiter("table_not_exists").wait(TableName="transactions")
    code, message = error_of(dynamodb.describe_table, TableName="transactions")
    assert code == "ResourceNotFoundException"
    assert message == "Requested resource not found: Table: transactions not found"


def test_list_tables_pages(dynamodb):
    for name in ["ccc", "aaa", "bbb"]:
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        )
    first = dynamodb.list_tables(Limit=2)
    assert first["TableNames"] == ["aaa", "bbb"]
    assert first["LastEvaluatedTableName"] == "bbb"
    second = dynamodb.list_tables(Limit=2, ExclusiveStartTableName="bbb")
    assert second["TableNames"] == ["ccc"] and "LastEvaluatedTableName" not in second
    names = [name for page in dynamodb.get_paginator("list_tables").paginate() for name in page["TableNames"]]
    assert names == ["aaa", "bbb", "ccc"]


def test_every_attribute_type_round_trips(sluice, dynamodb):
    create_transactions(dynamodb)
    item = {
        "userId": {"N": "3"},
        "transactionId": {"N": "51"},
        "exact": {"N": "12345678901234567890123456789012345678"},
        "tiny": {"N": "-0.000000000000000000000000000000000000000001"},
        "amount": {"N": "12.50"},
        "note": {"S": "café ☕"},
        "raw": {"B": b"\x00\x01\xff"},
        "flag": {"BOOL": False},
        "nothing": {"NULL": True},
        "tags": {"SS": ["b", "a"]},
        "scores": {"NS": ["10", "2.5"]},
        "blobs": {"BS": [b"\x01", b"\x02"]},
        "nested": {"M": {"list": {"L": [{"N": "1"}, {"S": "two"}, {"M": {}}]}}},
    }
    answer = dynamodb.put_item(TableName="transactions", Item=item)
    assert "Attributes" not in answer
    got = dynamodb.get_item(
        TableName="transactions", Key={"userId": {"N": "3"}, "transactionId": {"N": "51"}}, ConsistentRead=True
    )["Item"]
    assert got["exact"] == {"N": "12345678901234567890123456789012345678"}
    assert got["tiny"] == {"N": "-0.000000000000000000000000000000000000000001"}
    assert got["amount"] == {"N": "12.5"}
    assert got["note"] == {"S": "café ☕"}
    assert got["raw"] == {"B": b"\x00\x01\xff"}
    assert sorted(got["tags"]["SS"]) == ["a", "b"]
    assert sorted(got["scores"]["NS"], key=Decimal) == ["2.5", "10"]
    assert sorted(got["blobs"]["BS"]) == [b"\x01", b"\x02"]
    assert got["nested"] == item["nested"]
    assert got["nothing"] == {"NULL": True} and got["flag"] == {"BOOL": False}
    projected = dynamodb.get_item(
        TableName="transactions",
        Key={"userId": {"N": "3"}, "transactionId": {"N": "51"}},
        ProjectionExpression="#n, amount",
        ExpressionAttributeNames={"#n": "note"},
    )["Item"]
    assert projected == {"note": {"S": "café ☕"}, "amount": {"N": "12.5"}}
    assert dynamodb.describe_table(TableName="transactions")["Table"]["ItemCount"] == 1

    # The resource API, with Python's Decimal, sees the same exact numbers.
    table = client(sluice, "resource").Table("transactions")
    row = table.get_item(Key={"userId": 3, "transactionId": 51})["Item"]
    assert row["exact"] == Decimal("12345678901234567890123456789012345678")

    old = dynamodb.put_item(
        TableName="transactions",
        Item={"userId": {"N": "3"}, "transactionId": {"N": "51"}, "amount": {"N": "1"}},
        ReturnValues="ALL_OLD",
    )["Attributes"]
    assert old["amount"] == {"N": "12.5"}
    deleted = dynamodb.delete_item(
        TableName="transactions",
        Key={"userId": {"N": "3"}, "transactionId": {"N": "51"}},
        ReturnValues="ALL_OLD",
    )["Attributes"]
    assert deleted == {"userId": {"N": "3"}, "transactionId": {"N": "51"}, "amount": {"N": "1"}}
    assert "Item" not in dynamodb.get_item(
        TableName="transactions", Key={"userId": {"N": "3"}, "transactionId": {"N": "51"}}
    )


def test_errors_are_dynamodbs(dynamodb):
    create_transactions(dynamodb)
    cases = [
        (
            dict(Item={"userId": {"N": "1"}}),
            "One or more parameter values were invalid: Missing the key transactionId in the item",
        ),
        (
            dict(Item={"userId": {"S": "1"}, "transactionId": {"N": "1"}}),
            "One or more parameter values were invalid: Type mismatch for key userId expected: N actual: S",
        ),
        (
            dict(Item={"userId": {"N": "1"}, "transactionId": {"N": "1"}, "x": {"N": "1" * 39}}),
            "Attempting to store more than 38 significant digits in a Number",
        ),
        (
            dict(Item={"userId": {"N": "1"}, "transactionId": {"N": "1"}, "x": {"N": "1E126"}}),
            "Number overflow. Attempting to store a number with magnitude larger than supported range",
        ),
        (
            dict(Item={"userId": {"N": "1"}, "transactionId": {"N": "1"}, "x": {"SS": ["a", "a"]}}),
            "One or more parameter values were invalid: Input collection [a, a] contains duplicates.",
        ),
        (
            dict(Item={"userId": {"N": "1"}, "transactionId": {"N": "1"}, "x": {"S": "x" * 400 * 1024}}),
            "Item size has exceeded the maximum allowed size",
        ),
    ]
    for arguments, message in cases:
        assert error_of(dynamodb.put_item, TableName="transactions", **arguments) == ("ValidationException", message)
    assert error_of(
        dynamodb.get_item, TableName="transactions", Key={"userId": {"N": "1"}}
    ) == ("ValidationException", "The provided key element does not match the schema")
    assert error_of(
        dynamodb.put_item, TableName="nosuchtable", Item={"a": {"S": "b"}}
    ) == ("ResourceNotFoundException", "Requested resource not found")
    code, message = error_of(
        dynamodb.create_table,
        TableName="bad",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "other", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert code == "ValidationException"
    assert message.startswith("One or more parameter values were invalid: Some index key attributes are not defined")


def aws_cli(server, *args):
    """Runs the AWS CLI installed beside this Python (tests/python/requirements.txt has it)."""
    beside = Path(sys.executable).parent / "aws"
    command = str(beside) if beside.exists() else shutil.which("aws")
    assert command, "the AWS CLI is not installed: pip install -r tests/python/requirements.txt"
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
    done = subprocess.run(
        [command, "--endpoint-url", server.aws_url, "--output", "json", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_scenario_4_put_item_through_the_aws_cli(sluice, dynamodb):
    dynamodb.create_table(
        TableName="UsersTransactions",
        KeySchema=[
            {"AttributeName": "userId", "KeyType": "HASH"},
            {"AttributeName": "transactionId", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "userId", "AttributeType": "N"},
            {"AttributeName": "transactionId", "AttributeType": "N"},
        ],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    aws_cli(
        sluice, "dynamodb", "put-item", "--table-name", "UsersTransactions",
        "--item", "userId={N=3},transactionId={N=51},accountId={S=a-1},amount={N=12.50},shortDescription={S=coffee}",
    )
    key = '{"userId": {"N": "3"}, "transactionId": {"N": "51"}}'
    got = aws_cli(sluice, "dynamodb", "get-item", "--table-name", "UsersTransactions", "--key", key)
    assert got["Item"] == {
        "userId": {"N": "3"}, "transactionId": {"N": "51"}, "accountId": {"S": "a-1"},
        "amount": {"N": "12.5"}, "shortDescription": {"S": "coffee"},
    }
    tables = aws_cli(sluice, "dynamodb", "list-tables")
    assert tables["TableNames"] == ["UsersTransactions"]
    old = aws_cli(
        sluice, "dynamodb", "delete-item", "--table-name", "UsersTransactions", "--key", key,
        "--return-values", "ALL_OLD",
    )
    assert old["Attributes"]["shortDescription"] == {"S": "coffee"}
    assert "Item" not in aws_cli(sluice, "dynamodb", "get-item", "--table-name", "UsersTransactions", "--key", key)


def test_items_survive_a_restart(sluice_factory, tmp_path):
    server = sluice_factory(tmp_path / "data")
    dynamodb = client(server)
    create_transactions(dynamodb)
    for index in range(20):
        dynamodb.put_item(
            TableName="transactions",
            Item={"userId": {"N": "1"}, "transactionId": {"N": str(index)}, "v": {"S": f"v{index}"}},
        )
    server.stop()
    server = sluice_factory(tmp_path / "data")
    dynamodb = client(server)
    for index in range(20):
        got = dynamodb.get_item(
            TableName="transactions", Key={"userId": {"N": "1"}, "transactionId": {"N": str(index)}}
        )
        assert got["Item"]["v"] == {"S": f"v{index}"}
    assert dynamodb.describe_table(TableName="transactions")["Table"]["ItemCount"] == 20


def put_until_killed(server, min_acked, extra_attributes=None):
    """Puts items from CRASH_CLIENTS concurrent clients (client `writer` puts keys (writer, 0),
    (writer, 1), ...) until `min_acked` are acknowledged, then kills the server with SIGKILL;
    answers the acknowledged keys."""
    acked = set()
    lock = threading.Lock()
    stop = threading.Event()

    def load(writer):
        dynamodb = client(server)
        index = 0
        while not stop.is_set():
            try:
                dynamodb.put_item(
                    TableName="transactions",
                    Item={
                        "userId": {"N": str(writer)},
                        "transactionId": {"N": str(index)},
                        **(extra_attributes or {}),
                    },
                )
            except Exception:  # the server was killed: this put may or may not have landed
                return
            with lock:
                acked.add((writer, index))
            index += 1

    threads = [threading.Thread(target=load, args=(writer,)) for writer in range(CRASH_CLIENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + DEADLINE_S
    while len(acked) < min_acked and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join()
    assert len(acked) >= min_acked
    return acked


def check_survivors(server, arn, acked, extra_attributes=None):
    """After a kill -9 and a restart: every acknowledged put is there whole, nothing beyond
    what was sent, and the stream holds exactly one INSERT per item present."""
    dynamodb = client(server)
    missing = []
    for key in sorted(acked):
        got = dynamodb.get_item(
            TableName="transactions",
            Key={"userId": {"N": str(key[0])}, "transactionId": {"N": str(key[1])}},
        )
        if "Item" not in got or any(got["Item"].get(name) != value for name, value in (extra_attributes or {}).items()):
            missing.append(key)
    assert missing == []
    # Nothing beyond what was sent: each writer's items are a prefix of its indices, at most one
    # past what it saw acknowledged (the put that was in flight at the kill).
    count = dynamodb.describe_table(TableName="transactions")["Table"]["ItemCount"]
    assert len(acked) <= count <= len(acked) + CRASH_CLIENTS
    # The stream holds exactly one INSERT per item present: every acknowledged put once, and
    # a put in flight at the kill either with its item or not at all.
    records = read_all(streams_client(server), arn)
    keys = [
        (int(record["dynamodb"]["Keys"]["userId"]["N"]), int(record["dynamodb"]["Keys"]["transactionId"]["N"]))
        for record in records
    ]
    assert all(record["eventName"] == "INSERT" for record in records)
    assert len(keys) == len(set(keys)) == count
    assert acked <= set(keys)
    return records


def test_acknowledged_puts_survive_kill_9(sluice_factory, tmp_path):
    server = sluice_factory(tmp_path / "data")
    arn = create_transactions(
        client(server), StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    )["LatestStreamArn"]
    acked = put_until_killed(server, MIN_ACKED_BEFORE_KILL)
    server = sluice_factory(tmp_path / "data")
    check_survivors(server, arn, acked)


def test_acknowledged_puts_survive_kill_9_while_the_log_checkpoints(sluice_factory, tmp_path):
    """Items of ~100 KB with their new images in the stream: about 200 KB of write-ahead log per
    put, so 300 puts fill the log's first 16-MiB file and move on into the second one (with a
    checkpoint running behind the writes) before the kill."""
    server = sluice_factory(tmp_path / "data")
    arn = create_transactions(
        client(server), StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    )["LatestStreamArn"]
    padding = {"padding": {"S": "x" * 100_000}}
    acked = put_until_killed(server, 300, padding)
    # The log moved to its second file: a record begins at its front.
    second = (tmp_path / "data" / "tables" / "tables.wal2").read_bytes()[:16]
    assert second != bytes(16)
    server = sluice_factory(tmp_path / "data")
    records = check_survivors(server, arn, acked, padding)
    assert all(record["dynamodb"]["NewImage"]["padding"] == padding["padding"] for record in records)


def streams_client(server):
    return aws_client(server, "dynamodbstreams")


def read_all(streams, stream_arn, iterator_type="TRIM_HORIZON", **extra):
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard, ShardIteratorType=iterator_type, **extra
    )["ShardIterator"]
    records = []
    while iterator:
        page = streams.get_records(ShardIterator=iterator, Limit=100)
        records.extend(page["Records"])
        if not page["Records"]:
            break
        iterator = page.get("NextShardIterator")
    return records


def test_stream_records_per_view_type(sluice, dynamodb):
    arn = create_transactions(
        dynamodb, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    )["LatestStreamArn"]
    key = {"userId": {"N": "3"}, "transactionId": {"N": "51"}}
    dynamodb.put_item(TableName="transactions", Item={**key, "amount": {"N": "1"}})
    dynamodb.put_item(TableName="transactions", Item={**key, "amount": {"N": "1"}})  # no change: no record
    dynamodb.put_item(TableName="transactions", Item={**key, "amount": {"N": "2"}})
    dynamodb.delete_item(TableName="transactions", Key=key)
    streams = streams_client(sluice)
    assert streams.list_streams(TableName="transactions")["Streams"] == [
        {"StreamArn": arn, "TableName": "transactions", "StreamLabel": arn.rsplit("/", 1)[1]}
    ]
    description = streams.describe_stream(StreamArn=arn)["StreamDescription"]
    assert description["StreamStatus"] == "ENABLED"
    assert description["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert description["KeySchema"][0] == {"AttributeName": "userId", "KeyType": "HASH"}
    records = read_all(streams, arn)
    assert [record["eventName"] for record in records] == ["INSERT", "MODIFY", "REMOVE"]
    assert all(record["dynamodb"]["Keys"] == key for record in records)
    assert records[0]["dynamodb"]["NewImage"]["amount"] == {"N": "1"} and "OldImage" not in records[0]["dynamodb"]
    assert records[1]["dynamodb"]["OldImage"]["amount"] == {"N": "1"}
    assert records[1]["dynamodb"]["NewImage"]["amount"] == {"N": "2"}
    assert records[2]["dynamodb"]["OldImage"]["amount"] == {"N": "2"} and "NewImage" not in records[2]["dynamodb"]
    sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in records]
    assert sequence_numbers == sorted(sequence_numbers) and len(set(sequence_numbers)) == 3
    assert all(record["eventSource"] == "aws:dynamodb" and record["dynamodb"]["SizeBytes"] > 0 for record in records)
    # AFTER_SEQUENCE_NUMBER and AT_SEQUENCE_NUMBER start where they say; LATEST sees only what follows.
    after = read_all(streams, arn, "AFTER_SEQUENCE_NUMBER", SequenceNumber=sequence_numbers[0])
    assert [record["dynamodb"]["SequenceNumber"] for record in after] == sequence_numbers[1:]
    at = read_all(streams, arn, "AT_SEQUENCE_NUMBER", SequenceNumber=sequence_numbers[2])
    assert [record["dynamodb"]["SequenceNumber"] for record in at] == sequence_numbers[2:]
    shard = description["Shards"][0]["ShardId"]
    latest = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")["ShardIterator"]
    assert streams.get_records(ShardIterator=latest)["Records"] == []
    dynamodb.put_item(TableName="transactions", Item={**key, "amount": {"N": "3"}})
    assert [r["eventName"] for r in streams.get_records(ShardIterator=latest)["Records"]] == ["INSERT"]

    # The AWS CLI reads the same records.
    iterator = aws_cli(
        sluice, "dynamodbstreams", "get-shard-iterator", "--stream-arn", arn, "--shard-id", shard,
        "--shard-iterator-type", "TRIM_HORIZON",
    )["ShardIterator"]
    cli_records = aws_cli(sluice, "dynamodbstreams", "get-records", "--shard-iterator", iterator)["Records"]
    assert [record["eventName"] for record in cli_records] == ["INSERT", "MODIFY", "REMOVE", "INSERT"]

    # A deleted table's stream stays readable, and says it is disabled.
    dynamodb.delete_table(TableName="transactions")
    assert streams.describe_stream(StreamArn=arn)["StreamDescription"]["StreamStatus"] == "DISABLED"
    assert len(read_all(streams, arn)) == 4
    code, _ = error_of(streams.describe_stream, StreamArn=arn + "x")
    assert code == "ResourceNotFoundException"


def test_scan_pages_segments_and_count(sluice, dynamodb):
    create_transactions(dynamodb)
    keys = {(user, transaction) for user in range(6) for transaction in range(5)}
    for user, transaction in keys:
        dynamodb.put_item(
            TableName="transactions",
            Item={"userId": {"N": str(user)}, "transactionId": {"N": str(transaction)}, "pad": {"S": "x" * 10}},
        )

    def key_of(item):
        return int(item["userId"]["N"]), int(item["transactionId"]["N"])

    pages = list(
        dynamodb.get_paginator("scan").paginate(TableName="transactions", PaginationConfig={"PageSize": 7})
    )
    assert all(page["Count"] <= 7 for page in pages) and len(pages) >= 5
    scanned = [key_of(item) for page in pages for item in page["Items"]]
    assert sorted(scanned) == sorted(keys)
    by_segment = []
    for segment in range(3):
        page = dynamodb.scan(TableName="transactions", Segment=segment, TotalSegments=3)
        assert "LastEvaluatedKey" not in page
        by_segment.extend(key_of(item) for item in page["Items"])
    assert sorted(by_segment) == sorted(keys)
    counted = dynamodb.scan(TableName="transactions", Select="COUNT")
    assert counted["Count"] == 30 and "Items" not in counted
    projected = dynamodb.scan(TableName="transactions", ProjectionExpression="userId", Limit=1)["Items"]
    assert list(projected[0]) == ["userId"]
    assert error_of(dynamodb.scan, TableName="transactions", Segment=3, TotalSegments=2) == (
        "ValidationException",
        "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: 3 is not less than TotalSegments: 2",
    )
    code, message = error_of(dynamodb.scan, TableName="transactions", FilterExpression="userId = ",
                             ExpressionAttributeValues={":u": {"N": "1"}})
    assert code == "ValidationException" and message.startswith("Invalid FilterExpression: Syntax error")
    # The AWS CLI pages through Scan on its own.
    assert aws_cli(sluice, "dynamodb", "scan", "--table-name", "transactions", "--page-size", "4")["Count"] == 30


def test_condition_expressions_on_put_and_delete(sluice, dynamodb):
    create_transactions(dynamodb)
    key = {"userId": {"N": "1"}, "transactionId": {"N": "1"}}
    create_only = dict(ConditionExpression="attribute_not_exists(#u)", ExpressionAttributeNames={"#u": "userId"})
    dynamodb.put_item(TableName="transactions", Item={**key, "amount": {"N": "5"}}, **create_only)
    assert error_of(dynamodb.put_item, TableName="transactions", Item={**key, "amount": {"N": "6"}}, **create_only) == (
        "ConditionalCheckFailedException",
        "The conditional request failed",
    )
    dynamodb.put_item(
        TableName="transactions",
        Item={**key, "amount": {"N": "6"}},
        ConditionExpression="amount BETWEEN :low AND :high AND NOT contains(note, :x)",
        ExpressionAttributeValues={":low": {"N": "1"}, ":high": {"N": "5"}, ":x": {"S": "x"}},
    )
    code, _ = error_of(
        dynamodb.delete_item, TableName="transactions", Key=key,
        ConditionExpression="amount < :limit", ExpressionAttributeValues={":limit": {"N": "6"}},
    )
    assert code == "ConditionalCheckFailedException"
    assert dynamodb.get_item(TableName="transactions", Key=key)["Item"]["amount"] == {"N": "6"}
    dynamodb.delete_item(
        TableName="transactions", Key=key,
        ConditionExpression="amount IN (:a, :b)", ExpressionAttributeValues={":a": {"N": "6"}, ":b": {"N": "7"}},
    )
    assert "Item" not in dynamodb.get_item(TableName="transactions", Key=key)
    assert error_of(
        dynamodb.put_item, TableName="transactions", Item=key,
        ConditionExpression="attribute_exists(userId)", ExpressionAttributeValues={":unused": {"N": "1"}},
    ) == ("ValidationException", "Value provided in ExpressionAttributeValues unused in expressions: keys: {:unused}")
    code, message = error_of(dynamodb.put_item, TableName="transactions", Item=key, ConditionExpression="userId = ")
    assert code == "ValidationException" and message.startswith("Invalid ConditionExpression: Syntax error")


def test_query_key_conditions_order_paging_and_filters(sluice, dynamodb):
    create_transactions(dynamodb)
    for user in range(3):
        for transaction in [-5, 0, 3, 10, 12, 25]:
            dynamodb.put_item(
                TableName="transactions",
                Item={"userId": {"N": str(user)}, "transactionId": {"N": str(transaction)},
                      "amount": {"N": str(transaction * 2)}},
            )

    def query(**extra):
        page = dynamodb.query(TableName="transactions", **extra)
        return [int(item["transactionId"]["N"]) for item in page["Items"]], page

    everything, _ = query(KeyConditionExpression="userId = :u", ExpressionAttributeValues={":u": {"N": "1"}})
    assert everything == [-5, 0, 3, 10, 12, 25]
    between, _ = query(
        KeyConditionExpression="#u = :u AND transactionId BETWEEN :low AND :high",
        ExpressionAttributeNames={"#u": "userId"},
        ExpressionAttributeValues={":u": {"N": "1"}, ":low": {"N": "0"}, ":high": {"N": "12"}},
    )
    assert between == [0, 3, 10, 12]
    backward, _ = query(
        KeyConditionExpression="userId = :u AND transactionId > :t",
        ExpressionAttributeValues={":u": {"N": "2"}, ":t": {"N": "3"}},
        ScanIndexForward=False,
    )
    assert backward == [25, 12, 10]
    filtered, page = query(
        KeyConditionExpression="userId = :u",
        FilterExpression="amount >= :a",
        ExpressionAttributeValues={":u": {"N": "0"}, ":a": {"N": "20"}},
    )
    assert filtered == [10, 12, 25] and page["ScannedCount"] == 6 and page["Count"] == 3
    paged = [
        int(item["transactionId"]["N"])
        for page in dynamodb.get_paginator("query").paginate(
            TableName="transactions", KeyConditionExpression="userId = :u",
            ExpressionAttributeValues={":u": {"N": "1"}}, ScanIndexForward=False,
            PaginationConfig={"PageSize": 4},
        )
        for item in page["Items"]
    ]
    assert paged == [25, 12, 10, 3, 0, -5]
    scanned = dynamodb.scan(
        TableName="transactions", FilterExpression="transactionId = :t", ExpressionAttributeValues={":t": {"N": "25"}}
    )
    assert scanned["Count"] == 3 and scanned["ScannedCount"] == 18
    assert error_of(
        dynamodb.query, TableName="transactions", KeyConditionExpression="transactionId = :t",
        ExpressionAttributeValues={":t": {"N": "1"}},
    ) == ("ValidationException", "Query condition missed key schema element: userId")
    # The AWS CLI's query, as scenario 4's reader would run it.
    cli = aws_cli(
        sluice, "dynamodb", "query", "--table-name", "transactions",
        "--key-condition-expression", "userId = :u", "--expression-attribute-values", '{":u": {"N": "2"}}',
    )
    assert cli["Count"] == 6


def test_update_item_expressions_and_return_values(sluice, dynamodb):
    create_transactions(
        dynamodb, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    )
    key = {"userId": {"N": "7"}, "transactionId": {"N": "1"}}
    created = dynamodb.update_item(
        TableName="transactions", Key=key,
        UpdateExpression="SET amount = :a, tags = :t, visits = if_not_exists(visits, :zero) + :one",
        ExpressionAttributeValues={":a": {"N": "10.25"}, ":t": {"L": [{"S": "x"}]}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    assert created == {**key, "amount": {"N": "10.25"}, "tags": {"L": [{"S": "x"}]}, "visits": {"N": "1"}}
    updated = dynamodb.update_item(
        TableName="transactions", Key=key,
        UpdateExpression="SET amount = amount - :d, tags = list_append(tags, :more) ADD visits :one, labels :l REMOVE missing",
        ConditionExpression="visits = :one",
        ExpressionAttributeValues={":d": {"N": "0.25"}, ":more": {"L": [{"S": "y"}]}, ":one": {"N": "1"},
                                   ":l": {"SS": ["a", "b"]}},
        ReturnValues="UPDATED_NEW",
    )["Attributes"]
    assert updated["amount"] == {"N": "10"} and updated["visits"] == {"N": "2"}
    assert updated["tags"] == {"L": [{"S": "x"}, {"S": "y"}]} and sorted(updated["labels"]["SS"]) == ["a", "b"]
    assert "userId" not in updated
    old = dynamodb.update_item(
        TableName="transactions", Key=key, UpdateExpression="DELETE labels :a REMOVE tags",
        ExpressionAttributeValues={":a": {"SS": ["a"]}}, ReturnValues="UPDATED_OLD",
    )["Attributes"]
    assert sorted(old["labels"]["SS"]) == ["a", "b"] and "tags" in old
    item = dynamodb.get_item(TableName="transactions", Key=key)["Item"]
    assert item["labels"] == {"SS": ["b"]} and "tags" not in item
    assert error_of(
        dynamodb.update_item, TableName="transactions", Key=key, UpdateExpression="SET visits = :one",
        ConditionExpression="visits = :one", ExpressionAttributeValues={":one": {"N": "1"}},
    )[0] == "ConditionalCheckFailedException"
    assert error_of(
        dynamodb.update_item, TableName="transactions", Key=key, UpdateExpression="SET userId = :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    ) == ("ValidationException",
          "One or more parameter values were invalid: Cannot update attribute userId. This attribute is part of the key")
    assert error_of(
        dynamodb.update_item, TableName="transactions", Key=key, UpdateExpression="SET amount = amount + :s",
        ExpressionAttributeValues={":s": {"S": "x"}},
    ) == ("ValidationException", "An operand in the update expression has an incorrect data type")
    # The AWS CLI's update-item, and the stream saw INSERT then MODIFYs.
    aws_cli(
        sluice, "dynamodb", "update-item", "--table-name", "transactions",
        "--key", '{"userId": {"N": "7"}, "transactionId": {"N": "1"}}',
        "--update-expression", "SET note = :n", "--expression-attribute-values", '{":n": {"S": "cli"}}',
    )
    arn = dynamodb.describe_table(TableName="transactions")["Table"]["LatestStreamArn"]
    events = [record["eventName"] for record in read_all(streams_client(sluice), arn)]
    assert events == ["INSERT", "MODIFY", "MODIFY", "MODIFY"]


def test_batch_write_and_get(sluice, dynamodb):
    create_transactions(dynamodb)

    def key(index):
        return {"userId": {"N": "9"}, "transactionId": {"N": str(index)}}

    answer = dynamodb.batch_write_item(RequestItems={"transactions": [
        {"PutRequest": {"Item": {**key(index), "v": {"N": str(index)}}}} for index in range(25)
    ]})
    assert answer["UnprocessedItems"] == {}
    dynamodb.batch_write_item(RequestItems={"transactions": [
        {"DeleteRequest": {"Key": key(0)}}, {"PutRequest": {"Item": {**key(30), "v": {"N": "30"}}}},
    ]})
    got = dynamodb.batch_get_item(RequestItems={"transactions": {
        "Keys": [key(index) for index in [0, 1, 2, 30, 99]], "ProjectionExpression": "v",
    }})
    assert got["UnprocessedKeys"] == {}
    assert sorted(int(item["v"]["N"]) for item in got["Responses"]["transactions"]) == [1, 2, 30]
    assert error_of(dynamodb.batch_write_item, RequestItems={"transactions": [
        {"PutRequest": {"Item": {**key(index)}}} for index in range(26)
    ]}) == ("ValidationException", "Too many items requested for the BatchWriteItem call")
    assert error_of(dynamodb.batch_write_item, RequestItems={"transactions": [
        {"PutRequest": {"Item": key(1)}}, {"DeleteRequest": {"Key": key(1)}},
    ]}) == ("ValidationException", "Provided list of item keys contains duplicates")
    assert error_of(dynamodb.batch_get_item, RequestItems={"transactions": {
        "Keys": [key(index) for index in range(101)],
    }}) == ("ValidationException", "Too many items requested for the BatchGetItem call")
    # A malformed member fails the whole batch before anything is written.
    code, _ = error_of(dynamodb.batch_write_item, RequestItems={"transactions": [
        {"PutRequest": {"Item": key(40)}}, {"PutRequest": {"Item": {"userId": {"N": "9"}}}},
    ]})
    assert code == "ValidationException"
    assert "Item" not in dynamodb.get_item(TableName="transactions", Key=key(40))


def test_transactions_all_or_nothing(sluice, dynamodb):
    create_transactions(dynamodb)

    def key(index):
        return {"userId": {"N": "5"}, "transactionId": {"N": str(index)}}

    dynamodb.put_item(TableName="transactions", Item={**key(1), "balance": {"N": "10"}})
    dynamodb.put_item(TableName="transactions", Item={**key(4), "balance": {"N": "0"}})
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "transactions", "Item": {**key(2), "balance": {"N": "5"}}}},
            {"Update": {"TableName": "transactions", "Key": key(1), "UpdateExpression": "SET balance = balance - :five",
                        "ConditionExpression": "balance >= :twenty",
                        "ExpressionAttributeValues": {":five": {"N": "5"}, ":twenty": {"N": "20"}}}},
        ])
    error = raised.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    assert [reason["Code"] for reason in error["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    assert "Item" not in dynamodb.get_item(TableName="transactions", Key=key(2))
    dynamodb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "transactions", "Item": {**key(2), "balance": {"N": "5"}},
                 "ConditionExpression": "attribute_not_exists(userId)"}},
        {"Update": {"TableName": "transactions", "Key": key(1), "UpdateExpression": "SET balance = balance - :five",
                    "ConditionExpression": "balance >= :five", "ExpressionAttributeValues": {":five": {"N": "5"}}}},
        {"ConditionCheck": {"TableName": "transactions", "Key": key(4), "ConditionExpression": "attribute_exists(balance)"}},
        {"Delete": {"TableName": "transactions", "Key": key(3)}},
    ])
    got = dynamodb.transact_get_items(TransactItems=[
        {"Get": {"TableName": "transactions", "Key": key(1)}},
        {"Get": {"TableName": "transactions", "Key": key(2), "ProjectionExpression": "balance"}},
        {"Get": {"TableName": "transactions", "Key": key(3)}},
    ])["Responses"]
    assert got[0]["Item"]["balance"] == {"N": "5"} and got[1]["Item"] == {"balance": {"N": "5"}} and "Item" not in got[2]
    assert error_of(dynamodb.transact_write_items, TransactItems=[
        {"Put": {"TableName": "transactions", "Item": key(7)}}, {"Delete": {"TableName": "transactions", "Key": key(7)}},
    ]) == ("ValidationException", "Transaction request cannot include multiple operations on one item")


def test_update_table_turns_the_stream_off_and_on(sluice, dynamodb):
    first = create_transactions(
        dynamodb, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    )["LatestStreamArn"]
    key = {"userId": {"N": "1"}, "transactionId": {"N": "1"}}
    dynamodb.put_item(TableName="transactions", Item=key)
    off = dynamodb.update_table(TableName="transactions", StreamSpecification={"StreamEnabled": False})
    assert "StreamSpecification" not in off["TableDescription"]
    dynamodb.put_item(TableName="transactions", Item={**key, "v": {"N": "1"}})  # no stream: no record
    on = dynamodb.update_table(
        TableName="transactions", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    )["TableDescription"]
    second = on["LatestStreamArn"]
    assert on["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    dynamodb.delete_item(TableName="transactions", Key=key)
    streams = streams_client(sluice)
    assert streams.describe_stream(StreamArn=first)["StreamDescription"]["StreamStatus"] == "DISABLED"
    assert [r["eventName"] for r in read_all(streams, first)] == ["INSERT"]
    if second != first:  # labels have millisecond resolution
        assert [r["eventName"] for r in read_all(streams, second)] == ["REMOVE"]
    assert {s["StreamArn"] for s in streams.list_streams(TableName="transactions")["Streams"]} == {first, second}
    code, message = error_of(
        dynamodb.update_table, TableName="transactions",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
    )
    assert code == "ValidationException" and message.startswith("Table already has an enabled stream")


def test_time_to_live_settings_are_validated_and_survive_a_restart(sluice_factory, tmp_path):
    # Expiry itself runs on the node's maintenance tick and is proven by the Rust tests with a
    # manual clock; this checks the API's shapes, DynamoDB's refusals and durability.
    server = sluice_factory(tmp_path / "data")
    dynamodb = client(server)
    create_transactions(dynamodb)

    def describe():
        return dynamodb.describe_time_to_live(TableName="transactions")["TimeToLiveDescription"]

    assert describe() == {"TimeToLiveStatus": "DISABLED"}
    assert error_of(
        dynamodb.update_time_to_live, TableName="transactions",
        TimeToLiveSpecification={"AttributeName": "expires", "Enabled": False},
    ) == ("ValidationException", "TimeToLive is already disabled")
    enabled = dynamodb.update_time_to_live(
        TableName="transactions", TimeToLiveSpecification={"AttributeName": "expires", "Enabled": True}
    )["TimeToLiveSpecification"]
    assert enabled == {"AttributeName": "expires", "Enabled": True}
    assert describe() == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    assert error_of(
        dynamodb.update_time_to_live, TableName="transactions",
        TimeToLiveSpecification={"AttributeName": "expires", "Enabled": True},
    ) == ("ValidationException", "TimeToLive is already enabled")
    assert error_of(
        dynamodb.update_time_to_live, TableName="transactions",
        TimeToLiveSpecification={"AttributeName": "other", "Enabled": False},
    ) == (
        "ValidationException",
        "TimeToLive is active on a different AttributeName: current AttributeName is expires",
    )
    assert error_of(dynamodb.describe_time_to_live, TableName="missing")[0] == "ResourceNotFoundException"
    server.stop()
    server = sluice_factory(tmp_path / "data")
    dynamodb = client(server)
    assert describe() == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    dynamodb.update_time_to_live(
        TableName="transactions", TimeToLiveSpecification={"AttributeName": "expires", "Enabled": False}
    )
    assert describe() == {"TimeToLiveStatus": "DISABLED"}


def test_nested_paths_in_updates_and_projections(sluice, dynamodb):
    create_transactions(dynamodb)
    key = {"userId": {"N": "1"}, "transactionId": {"N": "1"}}
    dynamodb.put_item(TableName="transactions", Item={
        **key,
        "address": {"M": {"city": {"S": "Leeds"}, "zip": {"S": "LS1"}}},
        "tags": {"L": [{"S": "a"}, {"S": "b"}, {"S": "c"}]},
        "counts": {"M": {"views": {"N": "1"}}},
    })
    updated = dynamodb.update_item(
        TableName="transactions", Key=key,
        UpdateExpression="SET address.#c = :city, tags[1] = :b, tags[9] = :d "
                         "ADD counts.views :one REMOVE address.zip",
        ExpressionAttributeNames={"#c": "city"},
        ExpressionAttributeValues={":city": {"S": "York"}, ":b": {"S": "B"}, ":d": {"S": "d"},
                                   ":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    assert updated["address"] == {"M": {"city": {"S": "York"}}}
    assert updated["tags"] == {"L": [{"S": "a"}, {"S": "B"}, {"S": "c"}, {"S": "d"}]}
    assert updated["counts"] == {"M": {"views": {"N": "2"}}}
    removed = dynamodb.update_item(
        TableName="transactions", Key=key, UpdateExpression="REMOVE tags[0], tags[2]",
        ReturnValues="UPDATED_NEW",
    )["Attributes"]
    assert removed["tags"] == {"L": [{"S": "B"}, {"S": "d"}]}

    got = dynamodb.get_item(TableName="transactions", Key=key,
                            ProjectionExpression="address.city, tags[1], userId")["Item"]
    assert got == {"address": {"M": {"city": {"S": "York"}}}, "tags": {"L": [{"S": "d"}]},
                   "userId": {"N": "1"}}
    scanned = dynamodb.scan(TableName="transactions", ProjectionExpression="counts.views")
    assert scanned["Items"] == [{"counts": {"M": {"views": {"N": "2"}}}}]

    code, message = error_of(
        dynamodb.update_item, TableName="transactions", Key=key,
        UpdateExpression="SET missing.x = :v", ExpressionAttributeValues={":v": {"N": "1"}},
    )
    assert code == "ValidationException"
    assert message == "The document path provided in the update expression is invalid for update"
    code, message = error_of(
        dynamodb.update_item, TableName="transactions", Key=key,
        UpdateExpression="SET address.city = :v REMOVE address",
        ExpressionAttributeValues={":v": {"S": "x"}},
    )
    assert code == "ValidationException" and "Two document paths overlap" in message
    # Nothing of a refused update was applied.
    assert dynamodb.get_item(TableName="transactions", Key=key)["Item"]["address"] == {
        "M": {"city": {"S": "York"}}}
