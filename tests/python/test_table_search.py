"""Table → search, built in, against the real binary: boto3 puts, updates and deletes items of a
table named in `table_indexing`, and the elasticsearch client finds them with `_version` equal to
the stream record's sequence number and numbers as numbers, also after kill -9."""

import json
import time
import urllib.request

from elasticsearch import Elasticsearch, NotFoundError

from conftest import aws_client

# Generous bound for the indexer to make a write searchable; a healthy run takes well under a
# second.
SEARCHABLE_BOUND_S = 60


def wait_until(what, done):
    deadline = time.monotonic() + SEARCHABLE_BOUND_S
    while not done():
        assert time.monotonic() < deadline, f"waited too long for {what}"
        time.sleep(0.05)


def start(sluice_factory, tmp_path):
    config = tmp_path / "sluice.json"
    config.write_text(json.dumps({"table_indexing": {"tables": {"Transactions": {"index": "transactions"}}}}))
    return sluice_factory(extra_args=["--config", str(config)])


def sequence_numbers(server):
    streams = aws_client(server, "dynamodbstreams")
    arn = streams.list_streams(TableName="Transactions")["Streams"][0]["StreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    return [(r["eventName"], int(r["dynamodb"]["SequenceNumber"])) for r in records]


def test_items_are_searchable_with_sequence_numbers_as_versions(sluice_factory, tmp_path):
    server = start(sluice_factory, tmp_path)
    dynamodb = aws_client(server, "dynamodb")
    dynamodb.create_table(
        TableName="Transactions",
        KeySchema=[{"AttributeName": "userId", "KeyType": "HASH"},
                   {"AttributeName": "transactionId", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "userId", "AttributeType": "N"},
                              {"AttributeName": "transactionId", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    dynamodb.put_item(TableName="Transactions", Item={
        "userId": {"N": "3"}, "transactionId": {"N": "51"}, "amount": {"N": "12.5"},
        "exact": {"N": "0.12345678901234567890123"}, "tags": {"SS": ["card", "food"]},
        "shop": {"M": {"name": {"S": "Corner"}, "open": {"BOOL": True}}}})
    dynamodb.put_item(TableName="Transactions", Item={"userId": {"N": "4"}, "transactionId": {"N": "1"}, "amount": {"N": "3"}})
    dynamodb.update_item(TableName="Transactions", Key={"userId": {"N": "3"}, "transactionId": {"N": "51"}},
                         UpdateExpression="SET amount = :a", ExpressionAttributeValues={":a": {"N": "20"}})
    dynamodb.delete_item(TableName="Transactions", Key={"userId": {"N": "4"}, "transactionId": {"N": "1"}})
    records = sequence_numbers(server)
    assert [name for name, _ in records] == ["INSERT", "INSERT", "MODIFY", "REMOVE"]

    es = Elasticsearch(server.es_url)

    def updated():
        try:
            return es.get(index="transactions", id="3|51")["_version"] == records[2][1]
        except NotFoundError:
            return False

    wait_until("the update searchable", updated)
    document = es.get(index="transactions", id="3|51")
    assert document["_source"] == {"userId": 3, "transactionId": 51, "amount": 20, "exact": 0.12345678901234567890123,
                                   "tags": ["card", "food"], "shop": {"name": "Corner", "open": True}}
    # `_source` keeps every digit of a number a double cannot hold.
    with urllib.request.urlopen(f"{server.es_url}/transactions/_source/3%7C51") as response:
        assert b'"exact":0.12345678901234567890123' in response.read()
    wait_until("the delete", lambda: not es.exists(index="transactions", id="4|1"))
    es.indices.refresh(index="transactions")
    hits = es.search(index="transactions", query={"range": {"amount": {"gte": 15}}})["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["3|51"]
    assert 'sluice_table_index_lag_records{table="Transactions"} 0' in metrics(server)

    # kill -9, one more write, restart: the index converges on the table.
    server.kill()
    server = start(sluice_factory, tmp_path)
    dynamodb = aws_client(server, "dynamodb")
    dynamodb.put_item(TableName="Transactions", Item={"userId": {"N": "5"}, "transactionId": {"N": "2"}})
    es = Elasticsearch(server.es_url)
    wait_until("the write after the restart", lambda: es.exists(index="transactions", id="5|2"))
    assert es.get(index="transactions", id="5|2")["_version"] == 5
    assert es.get(index="transactions", id="3|51")["_version"] == records[2][1]
    assert not es.exists(index="transactions", id="4|1")


def metrics(server):
    with urllib.request.urlopen(f"{server.aws_url}/metrics") as response:
        return response.read().decode()


def test_a_table_without_new_images_is_skipped_and_reported(sluice_factory, tmp_path):
    server = start(sluice_factory, tmp_path)
    aws_client(server, "dynamodb").create_table(
        TableName="Transactions",
        KeySchema=[{"AttributeName": "userId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "userId", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
    )
    wait_until("the refusal in /metrics", lambda: 'sluice_table_index_refused{table="Transactions"} 1' in metrics(server))


def test_a_table_tagged_for_search_is_indexed_without_any_configuration(sluice):
    dynamodb = aws_client(sluice, "dynamodb")
    table = dynamodb.create_table(
        TableName="Orders",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
        Tags=[{"Key": "sluice:search-index", "Value": "orders-index"}, {"Key": "team", "Value": "a"}],
    )["TableDescription"]
    dynamodb.put_item(TableName="Orders", Item={"id": {"S": "o1"}, "total": {"N": "12"}})
    es = Elasticsearch(sluice.es_url)
    wait_until("o1 in orders-index", lambda: es.options(ignore_status=404).get(
        index="orders-index", id="o1").get("found"))
    assert es.get(index="orders-index", id="o1")["_source"]["total"] == 12
    tags = dynamodb.list_tags_of_resource(ResourceArn=table["TableArn"])["Tags"]
    assert {"Key": "team", "Value": "a"} in tags

    # Another table, tagged after it was created, with the default index name.
    created = dynamodb.create_table(
        TableName="Refunds",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]
    dynamodb.put_item(TableName="Refunds", Item={"id": {"S": "r1"}})
    dynamodb.tag_resource(ResourceArn=created["TableArn"],
                          Tags=[{"Key": "sluice:search-index", "Value": "true"}])
    wait_until("r1 in refunds", lambda: es.options(ignore_status=404).get(
        index="refunds", id="r1").get("found"))
    dynamodb.untag_resource(ResourceArn=created["TableArn"], TagKeys=["sluice:search-index"])
    assert dynamodb.list_tags_of_resource(ResourceArn=created["TableArn"])["Tags"] == []

    # The tag needs a stream with new images, and a valid index name.
    try:
        dynamodb.create_table(
            TableName="NoStream",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=[{"Key": "sluice:search-index", "Value": "x"}],
        )
        raise AssertionError("a tagged table without a stream was created")
    except dynamodb.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == "ValidationException"
        assert "needs a stream" in error.response["Error"]["Message"]
    try:
        dynamodb.tag_resource(ResourceArn=table["TableArn"],
                              Tags=[{"Key": "sluice:search-index", "Value": "Bad*Name"}])
        raise AssertionError("a bad index name was accepted")
    except dynamodb.exceptions.ClientError as error:
        assert error.response["Error"]["Code"] == "ValidationException"
