"""Roles under `sluice up --security`, managed with opensearch-py's security client through
`_plugins/_security/api` and used with elasticsearch-py: a role limited to `stockdata*` with crud,
create_index and manage writes there and nowhere else; a wildcard search sees only the indices a
user may read; document-level security hides other users' documents from search, count, get,
mget and aggregations; field-level security hides fields from sources, queries, sorts,
aggregations, field caps and mappings; static roles are read-only; the roles survive a restart; and boto3 calls
are allowed or refused by a role's AWS actions."""

import json
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from elasticsearch import AuthorizationException, Elasticsearch, NotFoundError
from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from conftest import admin_password, create_access_key

STOCK_WRITER = {
    "cluster_permissions": ["cluster_composite_ops", "cluster_monitor"],
    "index_permissions": [
        {"index_patterns": ["stockdata*"], "allowed_actions": ["crud", "create_index", "manage"]}
    ],
}


def admin_clients(server):
    auth = ("admin", server.admin_password)
    return Elasticsearch(server.es_url, basic_auth=auth), OpenSearch(server.es_url, http_auth=auth)


def add_user(security, name, roles=(), backend_roles=()):
    answer = security.security.create_user(
        username=name,
        body={
            "password": f"{name}-password",
            "opendistro_security_roles": list(roles),
            "backend_roles": list(backend_roles),
        },
    )
    assert answer["status"] == "CREATED", answer


def user_client(server, name):
    return Elasticsearch(server.es_url, basic_auth=(name, f"{name}-password"))


def test_a_role_limited_to_stockdata_writes_there_and_nowhere_else(secure_sluice):
    admin, security = admin_clients(secure_sluice)
    admin.index(index="secrets", id="1", document={"pin": 1234}, refresh=True)
    assert security.security.create_role(role="stock_writer", body=STOCK_WRITER)["status"] == "CREATED"
    # Mapped by backend role, as an IAM role ARN would be.
    mapping = {"backend_roles": ["arn:aws:iam::000000000000:role/firehose_delivery_role"]}
    assert security.security.create_role_mapping(role="stock_writer", body=mapping)["status"] == "CREATED"
    add_user(security, "firehose", backend_roles=["arn:aws:iam::000000000000:role/firehose_delivery_role"])
    writer = user_client(secure_sluice, "firehose")

    # Bulk creates the index and writes; the item for another index is refused alone.
    answer = writer.bulk(
        operations=[
            {"index": {"_index": "stockdata", "_id": "a"}},
            {"ticker_symbol": "AMZN", "price": 12.5},
            {"index": {"_index": "secrets", "_id": "2"}},
            {"pin": 1},
            {"create": {"_index": "stockdata-2026-12-02", "_id": "b"}},
            {"ticker_symbol": "QXZ", "price": 3.0},
        ],
        refresh=True,
    )
    assert answer["errors"] is True
    statuses = [next(iter(item.values()))["status"] for item in answer["items"]]
    assert statuses == [201, 403, 201]
    refused = next(iter(answer["items"][1].values()))["error"]
    assert refused["type"] == "security_exception"
    assert "indices:data/write/index" in refused["reason"] and "secrets" in refused["reason"]

    # Its own indices: read, mapping, delete. Anything else: 403.
    assert writer.count(index="stockdata*")["count"] == 2
    assert writer.indices.get_mapping(index="stockdata")["stockdata"]["mappings"]["properties"]
    for call in (
        lambda: writer.index(index="secrets", id="3", document={"pin": 0}),
        lambda: writer.search(index="secrets"),
        lambda: writer.get(index="secrets", id="1"),
        lambda: writer.indices.create(index="elsewhere"),
        lambda: writer.indices.delete(index="secrets"),
    ):
        with pytest.raises(AuthorizationException) as denied:
            call()
        assert denied.value.meta.status == 403
        assert denied.value.body["error"]["type"] == "security_exception"
    # A wildcard reaches only what the role may read; `_all` too.
    hits = writer.search(index="*", size=10)["hits"]["hits"]
    assert sorted(hit["_index"] for hit in hits) == ["stockdata", "stockdata-2026-12-02"]
    assert writer.search()["hits"]["total"]["value"] == 2
    assert writer.cluster.health()["status"] in ("green", "yellow")
    # The secrets are untouched, and security is not the writer's to manage.
    assert admin.get(index="secrets", id="1")["_source"] == {"pin": 1234}
    with pytest.raises(AuthorizationException):
        writer.perform_request("GET", "/_plugins/_security/api/roles")
    writer.indices.delete(index="stockdata-2026-12-02")
    assert not admin.indices.exists(index="stockdata-2026-12-02")


def test_a_user_without_any_index_sees_an_empty_wildcard_search(secure_sluice):
    admin, security = admin_clients(secure_sluice)
    admin.index(index="logs", document={"n": 1}, refresh=True)
    security.security.create_role(role="monitor_only", body={"cluster_permissions": ["cluster_monitor"]})
    add_user(security, "watcher", roles=["monitor_only"])
    watcher = user_client(secure_sluice, "watcher")
    assert watcher.search(index="*")["hits"]["total"]["value"] == 0
    with pytest.raises(NotFoundError):
        watcher.search(index="*", allow_no_indices=False)
    with pytest.raises(AuthorizationException):
        watcher.search(index="logs")
    assert watcher.cluster.health()["status"]


def test_document_level_security_in_search_get_mget_and_aggregations(secure_sluice):
    admin, security = admin_clients(secure_sluice)
    operations = []
    for n, owner in enumerate(["alice", "alice", "bob", "carol", "bob"]):
        operations += [{"index": {"_index": "orders", "_id": str(n)}}, {"owner": owner, "amount": 10 * (n + 1)}]
    admin.bulk(operations=operations, refresh=True)
    own_orders = {
        "index_permissions": [
            {
                "index_patterns": ["orders"],
                "dls": json.dumps({"term": {"owner.keyword": "${user.name}"}}),
                "allowed_actions": ["read"],
            }
        ]
    }
    security.security.create_role(role="own_orders", body=own_orders)
    security.security.create_role_mapping(role="own_orders", body={"users": ["alice", "bob"]})
    add_user(security, "alice")
    add_user(security, "bob")
    alice, bob = user_client(secure_sluice, "alice"), user_client(secure_sluice, "bob")

    hits = alice.search(index="orders", query={"match_all": {}})["hits"]["hits"]
    assert sorted(hit["_id"] for hit in hits) == ["0", "1"]
    assert bob.count(index="orders")["count"] == 2
    assert alice.count(index="orders", query={"term": {"owner.keyword": "bob"}})["count"] == 0
    total = alice.search(index="orders", size=0, aggs={"sum": {"sum": {"field": "amount"}}, "owners": {"terms": {"field": "owner.keyword"}}})
    assert total["aggregations"]["sum"]["value"] == 30
    assert [bucket["key"] for bucket in total["aggregations"]["owners"]["buckets"]] == ["alice"]
    assert alice.get(index="orders", id="0")["found"] is True
    with pytest.raises(NotFoundError):
        alice.get(index="orders", id="2")
    docs = alice.mget(index="orders", ids=["0", "2", "3"])["docs"]
    assert [doc["found"] for doc in docs] == [True, False, False]
    # msearch narrows each search the same way, and refuses an index the user may not read.
    answers = bob.msearch(searches=[{"index": "orders"}, {"query": {"match_all": {}}}, {"index": "secret-x"}, {}])["responses"]
    assert answers[0]["hits"]["total"]["value"] == 2
    assert answers[1]["status"] == 403
    # The admin, with all_access, still sees everything.
    assert admin.count(index="orders")["count"] == 5


def test_field_level_security_hides_fields_from_every_read(secure_sluice):
    admin, security = admin_clients(secure_sluice)
    admin.indices.create(index="staff", mappings={"properties": {"team": {"type": "nested"}}})
    people = [
        {"name": "Ada", "dept": "eng", "salary": 200, "contact": {"email": "ada@x", "phone": "1"}, "team": [{"role": "lead", "bonus": 9}]},
        {"name": "Bob", "dept": "ops", "salary": 100, "contact": {"email": "bob@x", "phone": "2"}, "team": [{"role": "dev", "bonus": 3}]},
    ]
    operations = []
    for n, person in enumerate(people):
        operations += [{"index": {"_index": "staff", "_id": str(n)}}, person]
    admin.bulk(operations=operations, refresh=True)
    # One role hides fields (and everything beneath them), another shows only some.
    security.security.create_role(role="no_pay", body={"index_permissions": [
        {"index_patterns": ["staff"], "fls": ["~salary", "~contact.phone", "~team.bonus"], "allowed_actions": ["read", "get", "indices:admin/mappings/get"]}]})
    security.security.create_role(role="names_only", body={"index_permissions": [
        {"index_patterns": ["staff"], "fls": ["name", "dept*"], "allowed_actions": ["read"]}]})
    add_user(security, "hr", roles=["no_pay"])
    add_user(security, "lobby", roles=["names_only"])
    hr, lobby = user_client(secure_sluice, "hr"), user_client(secure_sluice, "lobby")

    # Sources of search hits, inner hits, top_hits, get, mget and _source lose the hidden fields.
    hit = hr.search(index="staff", query={"term": {"name.keyword": "Ada"}})["hits"]["hits"][0]
    assert hit["_source"] == {"name": "Ada", "dept": "eng", "contact": {"email": "ada@x"}, "team": [{"role": "lead"}]}
    assert lobby.get(index="staff", id="1")["_source"] == {"name": "Bob", "dept": "ops"}
    assert hr.get_source(index="staff", id="1").body == {"name": "Bob", "dept": "ops", "contact": {"email": "bob@x"}, "team": [{"role": "dev"}]}
    docs = lobby.mget(index="staff", ids=["0", "1"])["docs"]
    assert [doc["_source"] for doc in docs] == [{"name": "Ada", "dept": "eng"}, {"name": "Bob", "dept": "ops"}]
    nested = hr.search(index="staff", query={"nested": {"path": "team", "query": {"match_all": {}}, "inner_hits": {}}})
    inner = nested["hits"]["hits"][0]["inner_hits"]["team"]["hits"]["hits"][0]["_source"]
    assert "bonus" not in inner and inner["role"] in ("lead", "dev")
    tops = hr.search(index="staff", size=0, aggs={"t": {"top_hits": {"size": 2}}})["aggregations"]["t"]["hits"]["hits"]
    assert all("salary" not in top["_source"] for top in tops)
    fields = hr.search(index="staff", fields=["*"], query={"match_all": {}})["hits"]["hits"][0]["fields"]
    assert "salary" not in fields and "contact.phone" not in fields and "name" in fields

    # A hidden field matches nothing, sorts and aggregates as unmapped, and is not listed.
    for query in (
        {"range": {"salary": {"gte": 0}}},
        {"exists": {"field": "contact.phone"}},
        {"query_string": {"query": "200"}},
        {"multi_match": {"query": "1", "fields": ["contact.*"]}},
        {"nested": {"path": "team", "query": {"range": {"team.bonus": {"gt": 0}}}}},
    ):
        assert hr.count(index="staff", query=query)["count"] == 0, query
        assert admin.count(index="staff", query=query)["count"] > 0, query
    assert lobby.count(index="staff", query={"match": {"dept": "eng"}})["count"] == 1
    named = hr.search(index="staff", query={"bool": {"should": [{"match_all": {}}, {"range": {"salary": {"gt": 150, "_name": "rich"}}}]}})
    assert all("matched_queries" not in hit for hit in named["hits"]["hits"])
    stats = hr.search(index="staff", size=0, aggs={"pay": {"sum": {"field": "salary"}}, "n": {"value_count": {"field": "name.keyword"}}})
    assert stats["aggregations"]["pay"]["value"] == 0 and stats["aggregations"]["n"]["value"] == 2
    caps = hr.field_caps(index="staff", fields="*")["fields"]
    assert "salary" not in caps and "contact.phone" not in caps and "contact.email" in caps
    assert "salary" not in hr.indices.get_mapping(index="staff")["staff"]["mappings"]["properties"]
    assert set(lobby.field_caps(index="staff", fields="*")["fields"]) >= {"name", "dept"}
    assert "contact" not in lobby.field_caps(index="staff", fields="*")["fields"]
    # The admin sees every field.
    assert admin.get(index="staff", id="0")["_source"]["salary"] == 200


def test_the_security_api_and_the_roles_survive_a_restart(tmp_path, secure_sluice, sluice_factory):
    admin, security = admin_clients(secure_sluice)
    # Static resources are listed and read-only.
    roles = security.security.get_roles()
    assert roles["all_access"]["reserved"] is True and roles["readall"]["static"] is True
    with pytest.raises(TransportError) as read_only:
        security.security.create_role(role="all_access", body={"cluster_permissions": []})
    assert read_only.value.status_code == 403
    groups = security.security.get_action_groups()
    assert "crud" in groups and groups["crud"]["reserved"] is True
    # A custom action group used by a role; a mapping of an unknown role is refused.
    assert security.security.create_action_group(action_group="stock_read", body={"allowed_actions": ["indices:data/read/search*", "indices:data/read/get*"]})["status"] == "CREATED"
    security.security.create_role(role="reader_of_stock", body={"index_permissions": [{"index_patterns": ["stock*"], "allowed_actions": ["stock_read"]}]})
    with pytest.raises(TransportError) as unknown:
        security.security.create_role_mapping(role="no_such_role", body={"users": ["x"]})
    assert unknown.value.status_code == 400
    # Refused rather than ignored: masking, FLS mixing shown and hidden fields, a DLS query that
    # does not parse.
    for body in (
        {"index_permissions": [{"index_patterns": ["x"], "masked_fields": ["salary"], "allowed_actions": ["read"]}]},
        {"index_permissions": [{"index_patterns": ["x"], "fls": ["~salary", "name"], "allowed_actions": ["read"]}]},
        {"index_permissions": [{"index_patterns": ["x"], "dls": "{\"nope\": {}}", "allowed_actions": ["read"]}]},
        {"index_permissions": [{"index_patterns": ["x"], "allowed_actions": ["read"], "surprise": 1}]},
    ):
        with pytest.raises(TransportError) as refused:
            security.security.create_role(role="bad", body=body)
        assert refused.value.status_code == 400
    # PATCH applies a JSON Patch to one resource, as the plugin does; a failing one changes nothing.
    patched = security.security.patch_role(role="reader_of_stock", body=[
        {"op": "add", "path": "/index_permissions/0/index_patterns/-", "value": "quotes*"}])
    assert patched["status"] == "OK", patched
    assert security.security.get_role(role="reader_of_stock")["reader_of_stock"]["index_permissions"][0]["index_patterns"] == ["stock*", "quotes*"]
    with pytest.raises(TransportError) as failed:
        security.security.patch_role(role="reader_of_stock", body=[
            {"op": "replace", "path": "/index_permissions/0/index_patterns/0", "value": "x*"},
            {"op": "remove", "path": "/no_such_field"}])
    assert failed.value.status_code == 400
    assert security.security.get_role(role="reader_of_stock")["reader_of_stock"]["index_permissions"][0]["index_patterns"] == ["stock*", "quotes*"]
    # PATCH of a whole collection: several resources at once, all checked before any is stored.
    done = security.security.patch_roles(body=[
        {"op": "add", "path": "/quotes_reader", "value": {"index_permissions": [
            {"index_patterns": ["quotes*"], "allowed_actions": ["read"]}]}},
        {"op": "add", "path": "/scratch", "value": {"cluster_permissions": ["cluster_monitor"]}},
    ])
    assert done["status"] == "OK", done
    assert {"quotes_reader", "scratch"} <= set(security.security.get_roles())
    for failing in (
        [{"op": "remove", "path": "/scratch"}, {"op": "add", "path": "/bad", "value": {"index_permissions": [
            {"index_patterns": ["x"], "allowed_actions": ["read"], "fls": ["a", "~b"]}]}}],
        [{"op": "remove", "path": "/scratch"}, {"op": "add", "path": "/all_access", "value": {}}],
    ):
        with pytest.raises(TransportError) as refused:
            security.security.patch_roles(body=failing)
        assert refused.value.status_code in (400, 403)
        assert "scratch" in security.security.get_roles()
    security.security.patch_roles(body=[{"op": "remove", "path": "/scratch"}])
    assert "scratch" not in security.security.get_roles()
    done = security.security.patch_users(body=[
        {"op": "add", "path": "/patched-a", "value": {"password": "patched-a-password", "opendistro_security_roles": ["readall"]}},
        {"op": "add", "path": "/patched-b", "value": {"password": "patched-b-password"}},
    ])
    assert done["status"] == "OK", done
    assert Elasticsearch(secure_sluice.es_url, basic_auth=("patched-a", "patched-a-password")).count(index="*")["count"] >= 0
    security.security.patch_users(body=[{"op": "remove", "path": "/patched-b"}])
    assert "patched-b" not in security.security.get_users()
    add_user(security, "stocky", roles=["reader_of_stock"])
    admin.index(index="stock", id="1", document={"p": 1}, refresh=True)
    stocky = user_client(secure_sluice, "stocky")
    assert stocky.get(index="stock", id="1")["found"] is True
    with pytest.raises(AuthorizationException):
        stocky.index(index="stock", document={"p": 2})
    # Users are listed without their hashes; account shows the caller; a password changes.
    users = security.security.get_users()
    assert users["stocky"]["hash"] == "" and users["stocky"]["opendistro_security_roles"] == ["reader_of_stock"]
    account = stocky.perform_request("GET", "/_plugins/_security/api/account").body
    assert account["user_name"] == "stocky" and account["roles"] == ["reader_of_stock"]
    stocky.perform_request(
        "PUT", "/_plugins/_security/api/account",
        body={"current_password": "stocky-password", "password": "a-new-password"},
        headers={"content-type": "application/json"},
    )

    secure_sluice.stop()
    restarted = sluice_factory(secure_sluice.data_dir, ["--security"])
    stocky = Elasticsearch(restarted.es_url, basic_auth=("stocky", "a-new-password"))
    assert stocky.get(index="stock", id="1")["found"] is True
    admin = OpenSearch(restarted.es_url, http_auth=("admin", secure_sluice.admin_password))
    assert "reader_of_stock" in admin.security.get_roles()
    assert admin.security.delete_user(username="stocky")["status"] == "OK"
    assert admin.security.delete_role(role="reader_of_stock")["status"] == "OK"
    with pytest.raises(TransportError) as gone:
        admin.security.get_role(role="reader_of_stock")
    assert gone.value.status_code == 404


def test_aws_operations_follow_the_roles_aws_actions(tmp_path, sluice_factory):
    data_dir = tmp_path / "data"
    # Keys are made offline; the role they name is defined later, through the API.
    key_id, secret = create_access_key(data_dir, "stream_reader")
    admin_id, admin_secret = create_access_key(data_dir)
    server = sluice_factory(data_dir, ["--security"])
    password = admin_password(server)
    security = OpenSearch(server.es_url, http_auth=("admin", password))
    kinesis = boto3.client(
        "kinesis", endpoint_url=server.aws_url, region_name="us-east-1",
        aws_access_key_id=key_id, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    # Before the role exists the key may do nothing.
    with pytest.raises(ClientError) as denied:
        kinesis.list_streams()
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    security.security.create_role(
        role="stream_reader",
        body={"cluster_permissions": ["kinesis:List*", "kinesis:Describe*", "kinesis:Get*"]},
    )
    assert kinesis.list_streams()["StreamNames"] == []
    with pytest.raises(ClientError) as denied:
        kinesis.create_stream(StreamName="ticks", ShardCount=1)
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "kinesis:CreateStream" in denied.value.response["Error"]["Message"]

    # IAM statements scope actions to resources; a Deny wins over any Allow.
    admin_key = boto3.client(
        "kinesis", endpoint_url=server.aws_url, region_name="us-east-1",
        aws_access_key_id=admin_id, aws_secret_access_key=admin_secret,
    )
    for name in ("orders", "orders-secret", "payments"):
        admin_key.create_stream(StreamName=name, ShardCount=1)
    security.security.create_role(
        role="stream_reader",
        body={
            "cluster_permissions": ["kinesis:List*", "kinesis:Describe*"],
            "aws_permissions": [
                {"Effect": "Allow", "Action": ["kinesis:PutRecord*", "kinesis:Get*"],
                 "Resource": "arn:aws:kinesis:*:*:stream/orders*"},
                {"Effect": "Deny", "Action": "kinesis:*", "Resource": "arn:aws:kinesis:*:*:stream/orders-secret"},
            ],
        },
    )
    kinesis.put_record(StreamName="orders", Data=b"{}", PartitionKey="k")
    for call in (
        lambda: kinesis.put_record(StreamName="payments", Data=b"{}", PartitionKey="k"),
        lambda: kinesis.put_record(StreamName="orders-secret", Data=b"{}", PartitionKey="k"),
        lambda: kinesis.describe_stream(StreamName="orders-secret"),
    ):
        with pytest.raises(ClientError) as denied:
            call()
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert kinesis.describe_stream(StreamName="payments")["StreamDescription"]["StreamName"] == "payments"
    with pytest.raises(TransportError) as refused:
        security.security.create_role(role="bad", body={"aws_permissions": [{"Effect": "Maybe", "Action": "x"}]})
    assert refused.value.status_code == 400


def wait_for(condition, what, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_delivery_stream_with_the_stock_role_writes_there_and_nowhere_else(secure_sluice):
    admin, security = admin_clients(secure_sluice)
    role_arn = "arn:aws:iam::000000000000:role/firehose_delivery_role"
    security.security.create_role(role="stock_writer", body=STOCK_WRITER)
    security.security.create_role_mapping(role="stock_writer", body={"backend_roles": [role_arn]})
    key_id, secret = secure_sluice.access_key
    firehose = boto3.client(
        "firehose", endpoint_url=secure_sluice.aws_url, region_name="us-east-1",
        aws_access_key_id=key_id, aws_secret_access_key=secret,
    )

    def create(name, index):
        firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ElasticsearchDestinationConfiguration={
                "RoleARN": role_arn,
                "IndexName": index,
                "IndexRotationPeriod": "NoRotation",
                "BufferingHints": {"IntervalInSeconds": 0, "SizeInMBs": 1},
                "RetryOptions": {"DurationInSeconds": 0},
                "S3BackupMode": "FailedDocumentsOnly",
                "S3Configuration": {"RoleARN": role_arn, "BucketARN": "arn:aws:s3:::backup"},
            },
        )

    create("stocks", "stockdata")
    create("leaks", "secrets")
    records = [{"Data": json.dumps({"ticker_symbol": "AMZN", "price": n}).encode()} for n in range(3)]
    assert firehose.put_record_batch(DeliveryStreamName="stocks", Records=records)["FailedPutCount"] == 0
    assert firehose.put_record_batch(DeliveryStreamName="leaks", Records=records)["FailedPutCount"] == 0

    def stock_count():
        if not admin.indices.exists(index="stockdata"):
            return 0
        admin.indices.refresh(index="stockdata")
        return admin.count(index="stockdata")["count"]

    wait_for(lambda: stock_count() == 3, "3 stock documents")
    failed_dir = secure_sluice.data_dir / "s3" / "backup" / "elasticsearch_failed"
    wait_for(lambda: failed_dir.exists() and any(f.is_file() for f in failed_dir.rglob("*")), "the failed backup")
    lines = [json.loads(line) for f in failed_dir.rglob("*") if f.is_file() for line in f.read_text().splitlines()]
    assert len(lines) == 3
    assert {line["errorCode"] for line in lines} == {"403"}
    assert all("security_exception" in line["errorMessage"] for line in lines)
    assert not admin.indices.exists(index="secrets")


def test_the_audit_log_records_failures_denials_and_privileged_actions(secure_sluice):
    admin, security = admin_clients(secure_sluice)
    admin.indices.create(index="doomed")
    security.security.create_role(role="nothing", body={})
    add_user(security, "mallory", roles=["nothing"])
    with pytest.raises(Exception):
        Elasticsearch(secure_sluice.es_url, basic_auth=("mallory", "wrong-password")).search(index="doomed")
    with pytest.raises(AuthorizationException):
        user_client(secure_sluice, "mallory").indices.delete(index="doomed")
    refused = user_client(secure_sluice, "mallory").bulk(operations=[
        {"index": {"_index": "doomed"}}, {"n": 1}, {"index": {"_index": "doomed"}}, {"n": 2}])
    assert refused["errors"] is True
    admin.indices.delete(index="doomed")
    key_id, secret = secure_sluice.access_key
    kinesis = boto3.client(
        "kinesis", endpoint_url=secure_sluice.aws_url, region_name="us-east-1",
        aws_access_key_id=key_id, aws_secret_access_key=secret + "x",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    with pytest.raises(ClientError):
        kinesis.list_streams()

    log = secure_sluice.data_dir / "security" / "audit.log"

    def events():
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines()]

    def seen(category, **fields):
        return any(
            event["category"] == category and all(event.get(k) == v for k, v in fields.items())
            for event in events()
        )

    wait_for(lambda: seen("authentication_failure", port="search")
             and seen("permission_denied", principal="mallory", status=403)
             and seen("privileged_action", principal="admin", action="DELETE /doomed")
             and seen("privileged_action", action="PUT /_plugins/_security/api/internalusers/mallory")
             and seen("authentication_failure", port="aws", principal=key_id)
             and seen("permission_denied", principal="mallory", action="indices:data/write/bulk[s]", resource="doomed (2)"),
             "the audit events")
    # The log never holds a password.
    assert "mallory-password" not in log.read_text() and "wrong-password" not in log.read_text()

    metrics = requests_signed_get(secure_sluice, "/metrics", key_id, secret)
    assert 'sluice_audit_events_total{category="permission_denied"}' in metrics
    assert "sluice_audit_events_dropped_total 0" in metrics


def requests_signed_get(server, path, key_id, secret):
    import botocore.auth
    import requests
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="GET", url=server.aws_url + path)
    botocore.auth.SigV4Auth(Credentials(key_id, secret), "firehose", "us-east-1").add_auth(request)
    answer = requests.get(server.aws_url + path, headers=dict(request.headers), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_an_identity_beyond_its_rate_is_throttled_and_the_others_are_not(tmp_path, sluice_factory):
    data_dir = tmp_path / "data"
    key_id, secret = create_access_key(data_dir)
    config = tmp_path / "rates.json"
    config.write_text(json.dumps({"identity_rates": {
        "default": {"requests_per_second": 1000},
        "identities": {"slow": {"requests_per_second": 1}, key_id: {"requests_per_second": 1}},
    }}))
    server = sluice_factory(data_dir, ["--security", "--config", str(config)])
    password = admin_password(server)
    security = OpenSearch(server.es_url, http_auth=("admin", password))
    add_user(security, "slow", roles=["readall"])
    slow = Elasticsearch(server.es_url, basic_auth=("slow", "slow-password"), max_retries=0)
    # One request a second: within a second the second one is refused, with when to retry.
    statuses = []
    for _ in range(3):
        try:
            slow.cluster.health()
            statuses.append(200)
        except Exception as error:  # the client raises ApiError for 429
            statuses.append(error.meta.status)
            assert error.body["error"]["type"] == "es_rejected_execution_exception"
            assert int(error.meta.headers["retry-after"]) >= 1
    assert statuses[0] == 200 and 429 in statuses
    # The admin is not held up by the slow user.
    admin = Elasticsearch(server.es_url, basic_auth=("admin", password))
    for _ in range(20):
        admin.cluster.health()
    kinesis = boto3.client(
        "kinesis", endpoint_url=server.aws_url, region_name="us-east-1",
        aws_access_key_id=key_id, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    codes = []
    for _ in range(3):
        try:
            kinesis.list_streams()
            codes.append("ok")
        except ClientError as error:
            codes.append(error.response["Error"]["Code"])
    assert codes[0] == "ok" and "ThrottlingException" in codes


def test_ledger_statements_need_their_partiql_actions_on_their_tables(tmp_path, sluice_factory):
    from pyqldb.config.retry_config import RetryConfig
    from pyqldb.driver.qldb_driver import QldbDriver

    data_dir = tmp_path / "data"
    keys = {"admin": create_access_key(data_dir), "clerk": create_access_key(data_dir, "vehicle_clerk")}
    server = sluice_factory(data_dir, ["--security"])
    password = admin_password(server)
    OpenSearch(server.es_url, http_auth=("admin", password)).security.create_role(
        role="vehicle_clerk",
        body={"aws_permissions": [
            {"Action": "qldb:SendCommand", "Resource": "arn:aws:qldb:*:*:ledger/cars"},
            {"Action": ["qldb:PartiQLSelect", "qldb:PartiQLInsert", "qldb:PartiQLUpdate"],
             "Resource": "arn:aws:qldb:*:*:ledger/cars/table/Vehicle"},
        ]},
    )

    def driver(name):
        key_id, secret = keys[name]
        return QldbDriver("cars", endpoint_url=server.aws_url, region_name="us-east-1",
                          aws_access_key_id=key_id, aws_secret_access_key=secret,
                          retry_config=RetryConfig(retry_limit=0))

    boto3.client("qldb", endpoint_url=server.aws_url, region_name="us-east-1",
                 aws_access_key_id=keys["admin"][0], aws_secret_access_key=keys["admin"][1]
                 ).create_ledger(Name="cars", PermissionsMode="STANDARD", DeletionProtection=False)
    admin = driver("admin")
    admin.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Vehicle"))
    admin.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Secret"))
    admin.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Secret ?", {"pin": 1234}))

    clerk = driver("clerk")
    clerk.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Vehicle ?", {"VIN": "1"}))
    clerk.execute_lambda(lambda txn: txn.execute_statement("UPDATE Vehicle AS v SET v.Year = 2020 WHERE v.VIN = '1'"))
    rows = clerk.execute_lambda(lambda txn: list(txn.execute_statement("SELECT * FROM Vehicle")))
    assert [row["VIN"] for row in rows] == ["1"]
    for statement in (
        "SELECT * FROM Secret",
        "SELECT * FROM Vehicle AS v WHERE v.VIN IN (SELECT VALUE s.pin FROM Secret AS s)",
        "SELECT * FROM history(Vehicle)",
        "DELETE FROM Vehicle",
        "CREATE TABLE Other",
    ):
        with pytest.raises(ClientError) as denied:
            clerk.execute_lambda(lambda txn: txn.execute_statement(statement))
        assert denied.value.response["Error"]["Code"] == "AccessDeniedException", statement
    # In ALLOW_ALL mode, sending commands to the ledger is enough, as in QLDB; the mode is kept.
    control = boto3.client("qldb", endpoint_url=server.aws_url, region_name="us-east-1",
                           aws_access_key_id=keys["admin"][0], aws_secret_access_key=keys["admin"][1])
    assert control.describe_ledger(Name="cars")["PermissionsMode"] == "STANDARD"
    answer = control.update_ledger_permissions_mode(Name="cars", PermissionsMode="ALLOW_ALL")
    assert answer["PermissionsMode"] == "ALLOW_ALL" and answer["Name"] == "cars"
    assert control.describe_ledger(Name="cars")["PermissionsMode"] == "ALLOW_ALL"
    rows = clerk.execute_lambda(lambda txn: list(txn.execute_statement("SELECT * FROM Secret")))
    assert [row["pin"] for row in rows] == [1234]
    control.update_ledger_permissions_mode(Name="cars", PermissionsMode="STANDARD")
    with pytest.raises(ClientError) as denied:
        clerk.execute_lambda(lambda txn: txn.execute_statement("SELECT * FROM Secret"))
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as invalid:
        control.create_ledger(Name="other", PermissionsMode="SOMETIMES")
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    clerk.close()
    admin.close()
