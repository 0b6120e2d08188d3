"""A delivery stream into an external cluster, created with boto3's `firehose` client: a second
Sluice is the cluster (its API is Elasticsearch's). The delivering Sluice reaches it through the
`--config` file's `search_clusters` (auth, index templates) and the stream names it by
ClusterEndpoint or DomainARN; the cluster runs with `--security`, so each way of authenticating
(basic auth, an API key, SigV4 with service `es` and credentials from the environment) is
checked by the cluster itself. The fault-injecting proxy test is in Rust
(`crates/sluice/tests/external_search.rs`)."""

import base64
import json
import urllib.error
import urllib.request

import pytest

from conftest import Sluice, aws_client
from test_s3 import wait_until

ROLE = "arn:aws:iam::123456789012:role/firehose"
DOCUMENTS = [{"n": n, "message": f"hello {n}"} for n in range(30)] + [{"n": "not a number"}]


def es_call(server, method, path, body=None, auth=None):
    request = urllib.request.Request(
        server.es_url + path, method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"})
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read() or b"null")


def failed_lines(server):
    root = server.data_dir / "s3" / "backup"
    return [json.loads(line) for path in root.rglob("*")
            if path.is_file() and "elasticsearch_failed" in path.as_posix()
            for line in path.read_text().splitlines()]


def deliver(sluice, cluster_auth, **destination):
    """Creates the stream with boto3, puts DOCUMENTS, waits until the cluster holds all but the
    one its mapping refuses, which must be in the failed backup; returns the record ids."""
    firehose = aws_client(sluice, "firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName="external",
        DeliveryStreamType="DirectPut",
        AmazonopensearchserviceDestinationConfiguration={
            "RoleARN": ROLE,
            "IndexName": "external",
            "IndexRotationPeriod": "NoRotation",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
            "RetryOptions": {"DurationInSeconds": 60},
            "S3BackupMode": "FailedDocumentsOnly",
            "S3Configuration": {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::backup"},
            **destination,
        })
    described = firehose.describe_delivery_stream(DeliveryStreamName="external")["DeliveryStreamDescription"]
    assert described["DeliveryStreamStatus"] == "ACTIVE"
    answer = firehose.put_record_batch(
        DeliveryStreamName="external",
        Records=[{"Data": json.dumps(document).encode()} for document in DOCUMENTS])
    assert answer["FailedPutCount"] == 0
    ids = [response["RecordId"] for response in answer["RequestResponses"]]

    def delivered():
        try:
            es_call(cluster_auth[0], "POST", "/external/_refresh", auth=cluster_auth[1])
            hits = es_call(cluster_auth[0], "POST", "/external/_search",
                           {"size": 100, "_source": False}, auth=cluster_auth[1])["hits"]["hits"]
        except urllib.error.HTTPError as error:
            if error.code != 404:  # the index is created by the first delivery
                raise
            hits = []
        failed = failed_lines(sluice)
        return (hits, failed) if len(hits) + len(failed) == len(DOCUMENTS) else None

    hits, failed = wait_until(delivered, "every document in the cluster or the backup")
    assert sorted(hit["_id"] for hit in hits) == sorted(ids[:-1]), "the same ids as the local index"
    [line] = failed
    assert line["esDocumentId"] == ids[-1] and line["errorCode"] == "400"
    assert base64.b64decode(line["rawData"]) == b'{"n": "not a number"}'
    return described


@pytest.fixture
def plain_cluster(sluice_factory, tmp_path):
    return sluice_factory(tmp_path / "cluster")


def test_a_stream_created_with_boto3_delivers_into_the_cluster_with_its_template(plain_cluster, sluice_factory, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"search_clusters": [{
        "endpoint": plain_cluster.es_url,
        "index_templates": {"external": {
            "index_patterns": ["external*"],
            "template": {"mappings": {"properties": {"n": {"type": "long"}}}}}},
    }]}))
    sluice = sluice_factory(tmp_path / "data", ["--config", str(config)])
    described = deliver(sluice, (plain_cluster, None), ClusterEndpoint=plain_cluster.es_url)
    description = described["Destinations"][0]["AmazonopensearchserviceDestinationDescription"]
    assert description["ClusterEndpoint"] == plain_cluster.es_url.rstrip("/")
    assert "DomainARN" not in description
    mapping = es_call(plain_cluster, "GET", "/external/_mapping")
    assert mapping["external"]["mappings"]["properties"]["n"]["type"] == "long"
    # Nothing went into the delivering Sluice's own index.
    with pytest.raises(urllib.error.HTTPError):
        es_call(sluice, "GET", "/external/_count")


def test_a_domain_arn_resolves_through_the_configuration_or_is_refused(plain_cluster, sluice_factory, tmp_path):
    config = tmp_path / "config.json"
    domain = "arn:aws:es:eu-west-1:123456789012:domain/logs"
    config.write_text(json.dumps({"search_clusters": [{"endpoint": plain_cluster.es_url, "domain_arn": domain}]}))
    sluice = sluice_factory(tmp_path / "data", ["--config", str(config)])
    es_call(plain_cluster, "PUT", "/external", {"mappings": {"properties": {"n": {"type": "long"}}}})
    deliver(sluice, (plain_cluster, None), DomainARN=domain)

    firehose = aws_client(sluice, "firehose")
    with pytest.raises(firehose.exceptions.InvalidArgumentException) as refused:
        firehose.create_delivery_stream(
            DeliveryStreamName="elsewhere",
            ElasticsearchDestinationConfiguration={
                "RoleARN": ROLE, "IndexName": "x",
                "DomainARN": "arn:aws:es:eu-west-1:123456789012:domain/unknown",
                "S3Configuration": {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::backup"}})
    assert "search_clusters" in str(refused.value)
    with pytest.raises(firehose.exceptions.InvalidArgumentException):
        firehose.create_delivery_stream(
            DeliveryStreamName="both",
            ElasticsearchDestinationConfiguration={
                "RoleARN": ROLE, "IndexName": "x", "DomainARN": domain,
                "ClusterEndpoint": plain_cluster.es_url,
                "S3Configuration": {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::backup"}})


@pytest.mark.parametrize("method", ["basic", "api_key", "sigv4"])
def test_each_way_of_authenticating_is_accepted_by_a_secured_cluster(method, secure_sluice, sluice_factory, tmp_path, monkeypatch):
    admin = ("admin", secure_sluice.admin_password)
    if method == "basic":
        auth = {"type": "basic", "username": admin[0], "password": admin[1]}
    elif method == "api_key":
        created = es_call(secure_sluice, "POST", "/_security/api_key", {"name": "firehose"}, auth=admin)
        auth = {"type": "api_key", "encoded": created["encoded"]}
    else:
        key_id, secret = secure_sluice.access_key
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        auth = {"type": "sigv4", "service": "es", "region": "us-east-1"}
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"search_clusters": [{"endpoint": secure_sluice.es_url, "auth": auth}]}))
    es_call(secure_sluice, "PUT", "/external", {"mappings": {"properties": {"n": {"type": "long"}}}}, auth=admin)
    sluice = sluice_factory(tmp_path / "delivering", ["--config", str(config)])
    deliver(sluice, (secure_sluice, admin), ClusterEndpoint=secure_sluice.es_url)
    assert "not valid" not in "".join(sluice.output)
