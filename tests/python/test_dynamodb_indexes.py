"""Secondary indexes through the real boto3 client against the real `sluice` binary: local and
global indexes created with the table and described back, Query and Scan of an index in its
order with paging, sparse indexes, projections (a local index reads what its projection lacks
from the table, a global one refuses ALL_ATTRIBUTES), writes refused for a badly typed index
key, a global index added to a full table and deleted with UpdateTable, and all of it across a
restart."""

from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from conftest import aws_client


def error_of(call, **kwargs):
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]["Code"], raised.value.response["Error"]["Message"]


def create_orders(dynamodb, with_indexes=True):
    definitions = [
        {"AttributeName": "customer", "AttributeType": "S"},
        {"AttributeName": "at", "AttributeType": "N"},
    ]
    extra = {}
    if with_indexes:
        definitions += [
            {"AttributeName": "status", "AttributeType": "S"},
            {"AttributeName": "total", "AttributeType": "N"},
        ]
        extra = {
            "GlobalSecondaryIndexes": [{
                "IndexName": "by_status",
                "KeySchema": [
                    {"AttributeName": "status", "KeyType": "HASH"},
                    {"AttributeName": "total", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["note"]},
            }],
            "LocalSecondaryIndexes": [{
                "IndexName": "by_total",
                "KeySchema": [
                    {"AttributeName": "customer", "KeyType": "HASH"},
                    {"AttributeName": "total", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }],
        }
    return dynamodb.create_table(
        TableName="Orders",
        KeySchema=[
            {"AttributeName": "customer", "KeyType": "HASH"},
            {"AttributeName": "at", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=definitions,
        BillingMode="PAY_PER_REQUEST",
        **extra,
    )["TableDescription"]


def order(customer, at, total, status=None):
    item = {
        "customer": {"S": customer},
        "at": {"N": str(at)},
        "total": {"N": str(total)},
        "note": {"S": f"order {customer}/{at}"},
        "secret": {"S": "not projected"},
    }
    if status is not None:
        item["status"] = {"S": status}
    return item


def names(items):
    return [f'{item["customer"]["S"]}/{item["at"]["N"]}' for item in items]


def all_pages(dynamodb, **request):
    items, pages = [], 0
    while True:
        page = dynamodb.query(**request)
        items += page["Items"]
        pages += 1
        if "LastEvaluatedKey" not in page:
            return items, pages
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_indexes_are_created_described_queried_and_paged(sluice):
    dynamodb = aws_client(sluice, "dynamodb")
    created = create_orders(dynamodb)
    assert [index["IndexName"] for index in created["GlobalSecondaryIndexes"]] == ["by_status"]
    assert created["GlobalSecondaryIndexes"][0]["IndexStatus"] == "ACTIVE"
    assert created["LocalSecondaryIndexes"][0]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert created["LocalSecondaryIndexes"][0]["IndexArn"].endswith("table/Orders/index/by_total")
    for customer, at, total, status in [
        ("ana", 1, 30, "OPEN"), ("ana", 2, 10, "OPEN"), ("bo", 1, 20, "OPEN"),
        ("bo", 2, 5, "SHIPPED"), ("cy", 1, 7, None),
    ]:
        dynamodb.put_item(TableName="Orders", Item=order(customer, at, total, status))

    # The global index: OPEN orders by total across customers, one item per page.
    items, pages = all_pages(
        dynamodb, TableName="Orders", IndexName="by_status", Limit=1,
        KeyConditionExpression="#s = :s AND total > :t",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "OPEN"}, ":t": {"N": "9"}},
    )
    assert names(items) == ["ana/2", "bo/1", "ana/1"]
    assert pages >= 3
    assert all("note" in item and "secret" not in item for item in items)
    backwards = dynamodb.query(
        TableName="Orders", IndexName="by_status", ScanIndexForward=False,
        KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "OPEN"}},
    )
    assert names(backwards["Items"]) == ["ana/1", "bo/1", "ana/2"]

    # The local index: keys only, unless all attributes are asked for.
    keys_only = dynamodb.query(
        TableName="Orders", IndexName="by_total",
        KeyConditionExpression="customer = :c", ExpressionAttributeValues={":c": {"S": "ana"}},
    )["Items"]
    assert names(keys_only) == ["ana/2", "ana/1"]
    assert sorted(keys_only[0]) == ["at", "customer", "total"]
    whole = dynamodb.query(
        TableName="Orders", IndexName="by_total", Select="ALL_ATTRIBUTES",
        KeyConditionExpression="customer = :c", ExpressionAttributeValues={":c": {"S": "ana"}},
    )["Items"]
    assert whole[0]["secret"] == {"S": "not projected"}

    # Scans of an index see only the items that have its keys.
    scanned = dynamodb.scan(TableName="Orders", IndexName="by_status")
    assert scanned["Count"] == 4
    counted = dynamodb.scan(TableName="Orders", IndexName="by_total", Select="COUNT")
    assert counted["Count"] == 5

    described = dynamodb.describe_table(TableName="Orders")["Table"]
    assert described["GlobalSecondaryIndexes"][0]["ItemCount"] == 4
    assert described["LocalSecondaryIndexes"][0]["ItemCount"] == 5
    assert described["GlobalSecondaryIndexes"][0]["IndexSizeBytes"] > 0


def test_index_errors_are_dynamodbs(sluice):
    dynamodb = aws_client(sluice, "dynamodb")
    create_orders(dynamodb)
    code, message = error_of(
        dynamodb.put_item, TableName="Orders",
        Item={**order("ana", 1, 3), "status": {"N": "1"}},
    )
    assert code == "ValidationException"
    assert message == ("One or more parameter values were invalid: Type mismatch for Index Key "
                       "status Expected: S Actual: N IndexName: by_status")
    assert "Item" not in dynamodb.get_item(
        TableName="Orders", Key={"customer": {"S": "ana"}, "at": {"N": "1"}})
    code, message = error_of(
        dynamodb.query, TableName="Orders", IndexName="by_colour",
        KeyConditionExpression="customer = :c", ExpressionAttributeValues={":c": {"S": "a"}},
    )
    assert (code, message) == (
        "ValidationException", "The table does not have the specified index: by_colour")
    code, message = error_of(
        dynamodb.query, TableName="Orders", IndexName="by_status", ConsistentRead=True,
        KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "OPEN"}},
    )
    assert code == "ValidationException" and "Consistent reads are not supported" in message
    code, message = error_of(
        dynamodb.query, TableName="Orders", IndexName="by_status", Select="ALL_ATTRIBUTES",
        KeyConditionExpression="#s = :s", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "OPEN"}},
    )
    assert code == "ValidationException" and "projection type is not ALL" in message
    # The key condition names the index's keys, not the table's.
    code, _ = error_of(
        dynamodb.query, TableName="Orders", IndexName="by_status",
        KeyConditionExpression="customer = :c", ExpressionAttributeValues={":c": {"S": "a"}},
    )
    assert code == "ValidationException"
    code, message = error_of(
        dynamodb.create_table, TableName="Bad",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                              {"AttributeName": "x", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        LocalSecondaryIndexes=[{
            "IndexName": "local",
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"},
                          {"AttributeName": "x", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    )
    assert code == "ValidationException"
    assert "Table KeySchema does not have a range key" in message


def test_a_global_index_added_to_a_full_table_survives_a_restart_and_is_deleted(
        sluice_factory, tmp_path):
    server = sluice_factory(data_dir=tmp_path / "data")
    dynamodb = aws_client(server, "dynamodb")
    create_orders(dynamodb, with_indexes=False)
    with dynamodb_batch(dynamodb) as put:
        for at in range(60):
            put(order("ana", at, 100 - at, "OPEN" if at % 3 == 0 else None))
    updated = dynamodb.update_table(
        TableName="Orders",
        AttributeDefinitions=[{"AttributeName": "status", "AttributeType": "S"},
                              {"AttributeName": "total", "AttributeType": "N"}],
        GlobalSecondaryIndexUpdates=[{"Create": {
            "IndexName": "by_status",
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                          {"AttributeName": "total", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }}],
    )["TableDescription"]
    assert updated["GlobalSecondaryIndexes"][0]["ItemCount"] == 20
    query = dict(TableName="Orders", IndexName="by_status", KeyConditionExpression="#s = :s",
                 ExpressionAttributeNames={"#s": "status"},
                 ExpressionAttributeValues={":s": {"S": "OPEN"}})
    items, _ = all_pages(dynamodb, Limit=7, **query)
    assert [item["total"]["N"] for item in items][:3] == ["43", "46", "49"]
    assert items[0]["secret"] == {"S": "not projected"}

    server.kill()
    server = sluice_factory(data_dir=tmp_path / "data")
    dynamodb = aws_client(server, "dynamodb")
    dynamodb.put_item(TableName="Orders", Item=order("bo", 1, 1, "OPEN"))
    items, _ = all_pages(dynamodb, **query)
    assert len(items) == 21 and items[0]["customer"] == {"S": "bo"}

    deleted = dynamodb.update_table(
        TableName="Orders", GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by_status"}}],
    )["TableDescription"]
    assert "GlobalSecondaryIndexes" not in deleted
    code, _ = error_of(dynamodb.query, **query)
    assert code == "ValidationException"


class dynamodb_batch:
    """Puts items through BatchWriteItem, 25 at a time."""

    def __init__(self, dynamodb):
        self.dynamodb, self.pending = dynamodb, []

    def __enter__(self):
        return self.pending.append

    def __exit__(self, *exc):
        while self.pending:
            chunk, self.pending = self.pending[:25], self.pending[25:]
            self.dynamodb.batch_write_item(
                RequestItems={"Orders": [{"PutRequest": {"Item": item}} for item in chunk]})
        return False
