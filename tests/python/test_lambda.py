"""Lambda compatibility: boto3's lambda client against the real `sluice` binary. Functions
created through the API run Python handlers under awslambdaric from a directory of the local s3
store; event-source mappings feed them Kinesis streams (scenario 1's consumer), with partial
batch failures, bisecting, an OnFailure stream, filters, and a kill -9 that loses nothing."""

import base64
import json
import shutil
import sys
import urllib.request
from pathlib import Path

import botocore.exceptions
import pytest

from conftest import aws_client, wait_until

HANDLERS = Path(__file__).resolve().parent / "handlers"
ROLE = "arn:aws:iam::000000000000:role/lambda"


def start(sluice_factory, extra_args=()):
    return sluice_factory(extra_args=["--lambda-python", sys.executable, *extra_args])


def deploy(sluice, name, module, environment=None, **options):
    """Puts the handler module into the s3 store and creates the function from it."""
    directory = sluice.data_dir / "s3" / "code" / name
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(HANDLERS / f"{module}.py", directory / f"{module}.py")
    return aws_client(sluice, "lambda").create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=ROLE,
        Handler=f"{module}.handler",
        Code={"S3Bucket": "code", "S3Key": name},
        Environment={"Variables": environment or {}},
        **options,
    )


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


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def error_code(raised):
    return raised.value.response["Error"]["Code"]


def test_functions_are_created_described_listed_invoked_and_deleted(sluice_factory):
    sluice = start(sluice_factory)
    client = aws_client(sluice, "lambda")
    created = deploy(sluice, "echo", "echo", Timeout=30, Description="echoes")
    assert created["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:echo"
    assert created["Runtime"] == "python3.12"
    assert created["Handler"] == "echo.handler"
    assert created["Timeout"] == 30
    assert created["State"] == "Active"

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        deploy(sluice, "echo", "echo")
    assert error_code(raised) == "ResourceConflictException"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.create_function(FunctionName="nocode", Runtime="python3.12", Role=ROLE,
                               Handler="x.handler", Code={"S3Bucket": "code", "S3Key": "missing"})
    assert error_code(raised) == "InvalidParameterValueException"

    described = client.get_function(FunctionName="echo")
    assert described["Configuration"]["Description"] == "echoes"
    assert described["Code"]["Location"] == "s3://code/echo"

    answer = client.invoke(FunctionName="echo", Payload=json.dumps({"n": 1}))
    assert answer["StatusCode"] == 200
    assert "FunctionError" not in answer
    assert json.loads(answer["Payload"].read()) == {"echo": {"n": 1}}

    failed = client.invoke(FunctionName="echo", Payload=json.dumps({"fail": True}))
    assert failed["StatusCode"] == 200
    assert failed["FunctionError"] == "Unhandled"
    error = json.loads(failed["Payload"].read())
    assert error["errorType"] == "PaymentDeclined"
    assert error["errorMessage"] == "card declined"

    # LogType Tail: the invocation's own output between Lambda's START, END and REPORT lines.
    tailed = client.invoke(FunctionName="echo", Payload=json.dumps({"n": 2}), LogType="Tail")
    log = base64.b64decode(tailed["LogResult"]).decode()
    assert log.startswith("START RequestId: "), log
    assert "echo handler saw {'n': 2}" in log, log
    assert "\nEND RequestId: " in log and "\nREPORT RequestId: " in log, log
    assert "echo handler saw {'n': 1}" not in log, log

    assert client.invoke(FunctionName="echo", InvocationType="DryRun")["StatusCode"] == 204
    assert client.invoke(FunctionName="echo", InvocationType="Event", Payload=b"{}")["StatusCode"] == 202

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.invoke(FunctionName="missing", Payload=b"{}")
    assert error_code(raised) == "ResourceNotFoundException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    for n in range(3):
        deploy(sluice, f"more-{n}", "echo")
    first = client.list_functions(MaxItems=2)
    assert [f["FunctionName"] for f in first["Functions"]] == ["echo", "more-0"]
    rest = client.list_functions(Marker=first["NextMarker"], MaxItems=10)
    assert [f["FunctionName"] for f in rest["Functions"]] == ["more-1", "more-2"]
    assert "NextMarker" not in rest

    # Created functions survive a restart.
    sluice.stop()
    sluice = start(sluice_factory)
    client = aws_client(sluice, "lambda")
    assert json.loads(client.invoke(FunctionName="echo", Payload=b"[1]")["Payload"].read()) == {"echo": [1]}
    client.delete_function(FunctionName="echo")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.get_function(FunctionName="echo")
    assert error_code(raised) == "ResourceNotFoundException"


def revision(licence_id, version, data=None):
    """A QLDB journal stream REVISION_DETAILS record of BicycleLicence."""
    body = {"metadata": {"id": licence_id, "version": version}}
    if data is not None:
        body["data"] = data
    return json.dumps({
        "qldbStreamArn": "arn:aws:qldb:us-east-1:000000000000:stream/licences/x",
        "recordType": "REVISION_DETAILS",
        "payload": {"tableInfo": {"tableName": "BicycleLicence", "tableId": "t"}, "revision": body},
    }).encode()


def test_scenario_1_consumer_as_a_lambda_mapped_to_a_kinesis_stream(sluice_factory):
    sluice = start(sluice_factory)
    kinesis = aws_client(sluice, "kinesis")
    client = aws_client(sluice, "lambda")
    kinesis.create_stream(StreamName="licences", ShardCount=2)
    deploy(sluice, "licence-consumer", "licence_consumer", {"ES_URL": sluice.es_url})
    mapping = client.create_event_source_mapping(
        EventSourceArn="arn:aws:kinesis:us-east-1:000000000000:stream/licences",
        FunctionName="licence-consumer",
        StartingPosition="TRIM_HORIZON",
        BatchSize=10,
    )
    assert mapping["State"] == "Creating"
    assert client.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled"

    licence = lambda points, postcode="AB1": {"Name": "Ann", "LicenceId": "L1", "Postcode": postcode,
                                              "PenaltyPoints": str(points)}
    # Duplicated and out of order, as journal streams deliver them; the delete comes last.
    records = [
        revision("doc-1", 1, licence(2)),
        revision("doc-1", 0, licence(0)),
        revision("doc-2", 0, {**licence(5, "CD2"), "LicenceId": "L2"}),
        revision("doc-1", 1, licence(2)),
        revision("doc-3", 0, {**licence(1), "LicenceId": "L3"}),
        json.dumps({"recordType": "CONTROL"}).encode(),
        revision("doc-3", 1),
    ]
    for data in records:
        kinesis.put_record(StreamName="licences", Data=data, PartitionKey="doc")

    def indexed():
        es(sluice, "POST", "/licence/_refresh")
        status, body = es(sluice, "POST", "/licence/_search", {"version": True, "query": {"match_all": {}}})
        if status != 200:
            return None
        hits = {hit["_id"]: hit for hit in body["hits"]["hits"]}
        return hits if set(hits) == {"doc-1", "doc-2"} and hits["doc-1"]["_version"] == 1 else None

    hits = wait_until(indexed, what="the consumer to index the revisions")
    assert hits["doc-1"]["_source"]["PenaltyPoints"] == 2
    status, body = es(sluice, "POST", "/licence/_search", {
        "size": 0, "aggs": {"most": {"max": {"field": "PenaltyPoints"}}}})
    assert body["aggregations"]["most"]["value"] == 5

    listed = client.list_event_source_mappings(FunctionName="licence-consumer")["EventSourceMappings"]
    assert [m["UUID"] for m in listed] == [mapping["UUID"]]
    deleted = client.delete_event_source_mapping(UUID=mapping["UUID"])
    assert deleted["State"] == "Deleting"
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.get_event_source_mapping(UUID=mapping["UUID"])
    assert error_code(raised) == "ResourceNotFoundException"


def test_partial_batch_failures_bisect_and_send_the_poison_record_to_the_failure_stream(
    sluice_factory, tmp_path
):
    sluice = start(sluice_factory)
    kinesis = aws_client(sluice, "kinesis")
    client = aws_client(sluice, "lambda")
    kinesis.create_stream(StreamName="payments", ShardCount=1)
    kinesis.create_stream(StreamName="payments-failed", ShardCount=1)
    seen = tmp_path / "seen.txt"
    deploy(sluice, "payments", "partial_failure", {"SEEN_FILE": str(seen)})
    n_records, poison = 30, 17
    sequence_numbers = {}
    for n in range(n_records):
        data = json.dumps({"n": n, "poison": n == poison})
        put = kinesis.put_record(StreamName="payments", Data=data.encode(), PartitionKey="p")
        sequence_numbers[n] = put["SequenceNumber"]
    mapping = client.create_event_source_mapping(
        EventSourceArn="arn:aws:kinesis:us-east-1:000000000000:stream/payments",
        FunctionName="payments",
        StartingPosition="TRIM_HORIZON",
        BatchSize=8,
        MaximumRetryAttempts=2,
        BisectBatchOnFunctionError=True,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        DestinationConfig={"OnFailure": {
            "Destination": "arn:aws:kinesis:us-east-1:000000000000:stream/payments-failed"}},
    )
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["MaximumRetryAttempts"] == 2
    assert mapping["BisectBatchOnFunctionError"] is True

    def failure_records():
        shard = kinesis.list_shards(StreamName="payments-failed")["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(StreamName="payments-failed", ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        return kinesis.get_records(ShardIterator=iterator)["Records"]

    failed = wait_until(failure_records, what="the poison record on the failure stream")
    delivered = wait_until(lambda: len(set(lines(seen))) == n_records - 1 and lines(seen),
                           what="every other record to be delivered")
    assert len(failed) == 1
    failure = json.loads(failed[0]["Data"])
    info = failure["KinesisBatchInfo"]
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == sequence_numbers[poison]
    assert info["batchSize"] == 1
    assert info["streamArn"] == "arn:aws:kinesis:us-east-1:000000000000:stream/payments"
    assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert failure["requestContext"]["functionArn"].endswith(":function:payments")
    # Exactly once in effect: every record but the poison one, each delivered once.
    numbers = sorted(json.loads(line)["n"] for line in delivered)
    assert numbers == [n for n in range(n_records) if n != poison]


def test_filter_criteria_keep_only_matching_records(sluice_factory, tmp_path):
    sluice = start(sluice_factory)
    kinesis = aws_client(sluice, "kinesis")
    client = aws_client(sluice, "lambda")
    kinesis.create_stream(StreamName="orders", ShardCount=1)
    seen = tmp_path / "seen.txt"
    deploy(sluice, "paid-orders", "seen_writer", {"SEEN_FILE": str(seen)})
    client.create_event_source_mapping(
        EventSourceArn="arn:aws:kinesis:us-east-1:000000000000:stream/orders",
        FunctionName="paid-orders",
        StartingPosition="LATEST",
        FilterCriteria={"Filters": [
            {"Pattern": json.dumps({"data": {"status": ["paid"], "amount": [{"numeric": [">", 10]}]}})}]},
    )
    orders = [("paid", 50), ("open", 70), ("paid", 5), ("paid", 11)]
    for n, (status, amount) in enumerate(orders):
        kinesis.put_record(StreamName="orders", PartitionKey="o",
                           Data=json.dumps({"n": n, "status": status, "amount": amount}).encode())
    kinesis.put_record(StreamName="orders", PartitionKey="o", Data=b"not json")
    wait_until(lambda: any(json.loads(line)["n"] == 3 for line in lines(seen)), what="order 3")
    assert [json.loads(line)["n"] for line in lines(seen)] == [0, 3]

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.create_event_source_mapping(
            EventSourceArn="arn:aws:kinesis:us-east-1:000000000000:stream/orders",
            FunctionName="paid-orders", StartingPosition="LATEST",
            FilterCriteria={"Filters": [{"Pattern": "[1]"}]})
    assert error_code(raised) in ("InvalidParameterValueException", "ResourceConflictException")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.create_event_source_mapping(
            EventSourceArn="arn:aws:kinesis:us-east-1:000000000000:stream/none",
            FunctionName="paid-orders", StartingPosition="LATEST")
    assert error_code(raised) == "InvalidParameterValueException"


def test_kill_9_skips_and_loses_no_record(sluice_factory, tmp_path):
    sluice = start(sluice_factory)
    kinesis = aws_client(sluice, "kinesis")
    client = aws_client(sluice, "lambda")
    kinesis.create_stream(StreamName="load", ShardCount=2)
    seen = tmp_path / "seen.txt"
    deploy(sluice, "writer", "seen_writer", {"SEEN_FILE": str(seen)})
    client.create_event_source_mapping(
        EventSourceArn="arn:aws:kinesis:us-east-1:000000000000:stream/load",
        FunctionName="writer", StartingPosition="TRIM_HORIZON", BatchSize=5)
    n_records = 400
    for start_n in range(0, n_records, 100):
        kinesis.put_records(StreamName="load", Records=[
            {"Data": str(n).encode(), "PartitionKey": str(n)} for n in range(start_n, start_n + 100)])
    # Kill while the mapping is part-way through.
    wait_until(lambda: len(lines(seen)) >= 20, what="some records to be processed")
    sluice.kill()
    sluice = start(sluice_factory)
    wait_until(lambda: {int(line) for line in lines(seen)} >= set(range(n_records)),
               what="every record to be processed after the restart")
    processed = [int(line) for line in lines(seen)]
    # Redelivery after the crash is allowed (at least once); skipping is not.
    assert set(processed) == set(range(n_records))
    assert len(processed) < 2 * n_records


def test_acknowledged_event_invocations_survive_kill_9(sluice_factory, tmp_path):
    sluice = start(sluice_factory)
    client = aws_client(sluice, "lambda")
    seen, gate = tmp_path / "seen.txt", tmp_path / "gate"
    deploy(sluice, "gated", "gated_writer", {"SEEN_FILE": str(seen), "GATE_FILE": str(gate)})
    n_events = 20
    for n in range(n_events):
        answer = client.invoke(FunctionName="gated", InvocationType="Event",
                               Payload=json.dumps({"n": n}).encode())
        assert answer["StatusCode"] == 202
    # Every invocation is acknowledged and none can have finished: the gate is closed.
    sluice.kill()
    assert not lines(seen)
    sluice = start(sluice_factory)
    gate.touch()
    wait_until(lambda: {int(line) for line in lines(seen)} >= set(range(n_events)),
               what="every acknowledged Event invocation to run after the restart")
    # At least once: one that was running at the crash may run again, nothing is lost.
    assert len(lines(seen)) <= n_events + 2


def create_transactions_table(sluice):
    dynamodb = aws_client(sluice, "dynamodb")
    key = lambda name: {"AttributeName": name, "AttributeType": "N"}
    return dynamodb.create_table(
        TableName="UsersTransactions",
        KeySchema=[{"AttributeName": "userId", "KeyType": "HASH"},
                   {"AttributeName": "transactionId", "KeyType": "RANGE"}],
        AttributeDefinitions=[key("userId"), key("transactionId")],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )["TableDescription"]["LatestStreamArn"]


def test_scenario_4_table_stream_to_search_through_a_mapping_of_the_config_file(
    sluice_factory, tmp_path
):
    sluice = start(sluice_factory)
    stream_arn = create_transactions_table(sluice)
    sluice.stop()
    # The function and its mapping come from the config file; the API sees them as its own.
    config = tmp_path / "sluice.json"
    config.write_text(json.dumps({
        "functions": [{
            "name": "index-transactions",
            "kind": "runtime-api",
            "command": [sys.executable, "-m", "awslambdaric", "transactions_indexer.handler"],
            "task_root": str(HANDLERS),
            # The search endpoint's port is known only once the server is up: the test writes
            # it into this file, which the handler reads.
            "environment": {"ES_URL_FILE": str(tmp_path / "es_url")},
        }],
        "event_source_mappings": [{
            "EventSourceArn": stream_arn,
            "FunctionName": "index-transactions",
            "StartingPosition": "LATEST",
            "BatchSize": 10,
        }],
    }))
    sluice = start(sluice_factory, ["--config", str(config)])
    (tmp_path / "es_url").write_text(sluice.es_url)
    client = aws_client(sluice, "lambda")
    mappings = client.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"]
    assert len(mappings) == 1 and mappings[0]["State"] == "Enabled"
    assert mappings[0]["FunctionArn"].endswith(":function:index-transactions")
    assert client.get_function(FunctionName="index-transactions")["Configuration"]["Runtime"] == "provided"

    dynamodb = aws_client(sluice, "dynamodb")
    for n in range(3):
        dynamodb.put_item(TableName="UsersTransactions", Item={
            "userId": {"N": "3"}, "transactionId": {"N": str(50 + n)}, "accountId": {"S": f"a-{n}"},
            "amount": {"N": "12.50"}, "shortDescription": {"S": "coffee"}})
    # A MODIFY is not indexed again: the handler takes INSERTs only.
    dynamodb.put_item(TableName="UsersTransactions", Item={
        "userId": {"N": "3"}, "transactionId": {"N": "50"}, "accountId": {"S": "changed"},
        "amount": {"N": "1"}, "shortDescription": {"S": "tea"}})

    def documents():
        es(sluice, "POST", "/transactions/_refresh")
        status, body = es(sluice, "POST", "/transactions/_search", {"query": {"match_all": {}}})
        return body["hits"]["hits"] if status == 200 and body["hits"]["total"]["value"] == 3 else None

    hits = {hit["_id"]: hit["_source"] for hit in wait_until(documents, what="three transactions")}
    assert hits["3-51"] == {"accountId": "a-1", "shortDescription": "coffee", "amount": 12.5,
                            "userId": 3, "transactionId": 51}
    assert hits["3-50"]["accountId"] == "a-0"

    # The same config again keeps the mapping (and its checkpoint): nothing is indexed twice.
    sluice.stop()
    sluice = start(sluice_factory, ["--config", str(config)])
    listed = aws_client(sluice, "lambda").list_event_source_mappings()["EventSourceMappings"]
    assert [m["UUID"] for m in listed] == [mappings[0]["UUID"]]


NODE_RIC = Path(__file__).resolve().parents[1] / "node" / "node_modules" / ".bin" / "aws-lambda-ric"


def test_scenario_4_with_a_nodejs_handler_under_aws_lambda_ric(sluice_factory, tmp_path):
    assert NODE_RIC.exists(), "npm's aws-lambda-ric is missing: npm install --ignore-scripts --prefix tests/node"
    sluice = start(sluice_factory, ["--lambda-nodejs-ric", str(NODE_RIC)])
    (tmp_path / "es_url").write_text(sluice.es_url)
    stream_arn = create_transactions_table(sluice)
    directory = sluice.data_dir / "s3" / "code" / "node-indexer"
    directory.mkdir(parents=True)
    shutil.copy(HANDLERS / "transactions_indexer.js", directory / "transactions_indexer.js")
    client = aws_client(sluice, "lambda")
    created = client.create_function(
        FunctionName="node-indexer", Runtime="nodejs20.x", Role=ROLE,
        Handler="transactions_indexer.handler", Code={"S3Bucket": "code", "S3Key": "node-indexer"},
        Environment={"Variables": {"ES_URL_FILE": str(tmp_path / "es_url")}})
    assert created["Runtime"] == "nodejs20.x"
    client.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName="node-indexer",
                                       StartingPosition="TRIM_HORIZON")
    aws_client(sluice, "dynamodb").put_item(TableName="UsersTransactions", Item={
        "userId": {"N": "3"}, "transactionId": {"N": "51"}, "accountId": {"S": "a-1"},
        "amount": {"N": "12.50"}, "shortDescription": {"S": "coffee"}})

    def document():
        status, body = es(sluice, "GET", "/transactions/_doc/3-51")
        return body["_source"] if status == 200 else None

    assert wait_until(document, what="the Node.js handler to index the INSERT") == {
        "accountId": "a-1", "shortDescription": "coffee", "amount": 12.5, "userId": 3, "transactionId": 51}
    # The same function answers Invoke, its error as Lambda's payload.
    failed = client.invoke(FunctionName="node-indexer", Payload=b'{"Records": [{"eventName": "INSERT"}]}')
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "TypeError"


def test_code_given_as_a_zip_file_is_unpacked_and_runs(sluice_factory):
    import io
    import zipfile

    sluice = start(sluice_factory)
    client = aws_client(sluice, "lambda")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(HANDLERS / "echo.py", "echo.py")
    created = client.create_function(FunctionName="zipped", Runtime="python3.12", Role=ROLE,
                                     Handler="echo.handler", Code={"ZipFile": archive.getvalue()})
    assert created["FunctionName"] == "zipped"
    answer = client.invoke(FunctionName="zipped", Payload=b'{"zip": true}')
    assert json.loads(answer["Payload"].read()) == {"echo": {"zip": True}}

    escaping = io.BytesIO()
    with zipfile.ZipFile(escaping, "w") as zipped:
        zipped.writestr("../outside.py", "x = 1")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.create_function(FunctionName="escaping", Runtime="python3.12", Role=ROLE,
                               Handler="outside.handler", Code={"ZipFile": escaping.getvalue()})
    assert error_code(raised) == "InvalidParameterValueException"
    assert not (sluice.data_dir / "functions" / "outside.py").exists()
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.create_function(FunctionName="broken", Runtime="python3.12", Role=ROLE,
                               Handler="x.handler", Code={"ZipFile": b"not a zip"})
    assert error_code(raised) == "InvalidParameterValueException"
