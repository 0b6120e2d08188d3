"""S3 as the home of backups, S3 destinations and journal exports, against moto's S3 server on
127.0.0.1 (started here): one Sluice writes into moto (its `--config` lists the buckets), a second
Sluice with the local default gets the same input, and what boto3 reads back from moto is compared
byte for byte with the second's `data_dir/s3` — keys and bytes, with only the times Firehose puts
in key names (and in failed-document lines) set aside, since two servers deliver at different
instants. Journal exports are compared within one Sluice (an S3 bucket and a local one, the same
ledger and time range), since two ledgers never hold the same blocks."""

import base64
import json
import re
import socket
import subprocess
import sys
import time

import boto3
import pytest
from botocore.config import Config
from pyqldb.driver.qldb_driver import QldbDriver

from conftest import aws_client

MOTO_START_TIMEOUT_S = 60
DELIVERY_TIMEOUT_S = 120
KEY = dict(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def moto():
    """moto's S3 server on an ephemeral port of 127.0.0.1; yields (endpoint URL, boto3 client)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=url, config=Config(retries={"max_attempts": 1}), **KEY)
    deadline = time.monotonic() + MOTO_START_TIMEOUT_S
    while True:
        try:
            s3.list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto's server did not start")
            time.sleep(0.2)
    yield url, s3
    process.terminate()
    process.wait(30)


def wait_until(condition, what, timeout=DELIVERY_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def s3_objects(s3, bucket):
    """{key: bytes} of every object of an S3 bucket."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def local_objects(server, bucket):
    root = server.data_dir / "s3" / bucket
    if not root.is_dir():
        return {}
    return {path.relative_to(root).as_posix(): path.read_bytes()
            for path in root.rglob("*") if path.is_file() and not path.name.endswith(".tmp")}


# `<prefix>YYYY/MM/DD/HH/<stream>-1-YYYY-MM-DD-HH-MM-SS-<uuid>`: the times are the delivery's.
FIREHOSE_TIMES = re.compile(r"\d{4}/\d{2}/\d{2}/\d{2}/(.*)-1-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-")


def without_times(objects):
    return {FIREHOSE_TIMES.sub(r"T/\1-1-T-", key): data for key, data in objects.items()}


RECORD_BYTES = 1024
ARCHIVE_RECORDS = 6 * 1024  # 6 MiB: one object, past the multipart threshold of the config
INDEXED_RECORDS = [{"n": n} for n in range(20)] + [{"n": "not a number"}]


def feed(server):
    """The same input for every server: an S3 destination of 6 MiB and a search destination
    whose every document is backed up, one of them refused by the index."""
    firehose = aws_client(server, "firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName="archive",
        ExtendedS3DestinationConfiguration={
            "BucketARN": "arn:aws:s3:::archive", "Prefix": "orders/",
            "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            # The buffer flushes when full: 6 MiB, exactly the records below.
            "BufferingHints": {"SizeInMBs": 6, "IntervalInSeconds": 900},
        })
    records = [{"Data": (b"%06d" % n).ljust(RECORD_BYTES - 1, b"x") + b"\n"} for n in range(ARCHIVE_RECORDS)]
    for start in range(0, len(records), 500):
        answer = firehose.put_record_batch(DeliveryStreamName="archive", Records=records[start:start + 500])
        assert answer["FailedPutCount"] == 0

    es = server.es_url
    import urllib.request
    request = urllib.request.Request(f"{es}/strict", method="PUT",
                                     data=json.dumps({"mappings": {"properties": {"n": {"type": "integer"}}}}).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()
    firehose.create_delivery_stream(
        DeliveryStreamName="indexed",
        ElasticsearchDestinationConfiguration={
            "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            "DomainARN": "arn:aws:es:us-east-1:000000000000:domain/sluice",
            "IndexName": "strict", "IndexRotationPeriod": "NoRotation",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
            "RetryOptions": {"DurationInSeconds": 0},
            "S3BackupMode": "AllDocuments",
            "S3Configuration": {"RoleARN": "arn:aws:iam::000000000000:role/firehose",
                                "BucketARN": "arn:aws:s3:::backups", "Prefix": "all/"},
        })
    # One call: its records are one batch on both servers.
    answer = firehose.put_record_batch(
        DeliveryStreamName="indexed",
        Records=[{"Data": json.dumps(document).encode()} for document in INDEXED_RECORDS])
    assert answer["FailedPutCount"] == 0


def normalized_failed_lines(data):
    lines = [json.loads(line) for line in data.decode().splitlines()]
    for line in lines:
        line.pop("arrivalTimestamp")
        line.pop("attemptEndingTimestamp")
    return lines


def config_file(tmp_path, moto_url):
    path = tmp_path / "s3-config.json"
    path.write_text(json.dumps({"object_store": {
        "s3": {"endpoint_url": moto_url, "region": "us-east-1",
               "access_key_id": "testing", "secret_access_key": "testing",
               # Small enough that the 6 MiB archive object goes up in two parts.
               "multipart_threshold_bytes": 5 * 1024 * 1024, "part_bytes": 5 * 1024 * 1024},
        "buckets": {"archive": {"server_side_encryption": "AES256"}, "backups": {}, "exports": {}},
    }}))
    return path


def test_backups_and_s3_destinations_in_s3_match_the_local_directory(moto, sluice_factory, tmp_path):
    moto_url, s3 = moto
    for bucket in ("archive", "backups"):
        s3.create_bucket(Bucket=bucket)
    in_s3 = sluice_factory(tmp_path / "in-s3", ["--config", str(config_file(tmp_path, moto_url))])
    local = sluice_factory(tmp_path / "local")
    for server in (in_s3, local):
        feed(server)

    def delivered(objects_of):
        archive, backups = objects_of("archive"), objects_of("backups")
        failed = [key for key in backups if "elasticsearch_failed/" in key]
        everything = [key for key in backups if "elasticsearch_failed/" not in key]
        return (archive, backups) if archive and failed and everything else None

    local_archive, local_backups = wait_until(lambda: delivered(lambda b: local_objects(local, b)),
                                              "the local server's objects")
    moto_archive, moto_backups = wait_until(lambda: delivered(lambda b: s3_objects(s3, b)), "objects in moto")

    # Nothing went into the S3 server's own directory.
    assert local_objects(in_s3, "archive") == {} and local_objects(in_s3, "backups") == {}

    # The S3 destination: one 6 MiB object (uploaded in parts), the same key and bytes.
    assert without_times(moto_archive) == without_times(local_archive)
    [(key, data)] = moto_archive.items()
    assert len(data) == ARCHIVE_RECORDS * RECORD_BYTES and key.startswith("orders/")
    head = s3.head_object(Bucket="archive", Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ETag"].strip('"').endswith("-2"), "a multipart upload of two parts"

    # Backups: every document byte for byte; the failed one with the same line but its times.
    moto_all = {k: v for k, v in without_times(moto_backups).items() if "failed" not in k}
    local_all = {k: v for k, v in without_times(local_backups).items() if "failed" not in k}
    assert moto_all == local_all
    assert b"".join(moto_all.values()) == b"".join(json.dumps(d).encode() for d in INDEXED_RECORDS)
    moto_failed = {k: normalized_failed_lines(v) for k, v in without_times(moto_backups).items() if "failed" in k}
    local_failed = {k: normalized_failed_lines(v) for k, v in without_times(local_backups).items() if "failed" in k}
    assert moto_failed == local_failed
    [[line]] = moto_failed.values()
    assert base64.b64decode(line["rawData"]) == b'{"n": "not a number"}'


def describe_raw(server, name):
    """DescribeDeliveryStream as JSON, with the Sluice members boto3's parser drops."""
    import urllib.request
    request = urllib.request.Request(
        server.aws_url, method="POST", data=json.dumps({"DeliveryStreamName": name}).encode(),
        headers={"X-Amz-Target": "Firehose_20150804.DescribeDeliveryStream",
                 "Content-Type": "application/x-amz-json-1.1"})
    return json.load(urllib.request.urlopen(request))["DeliveryStreamDescription"]


def test_a_stream_s_own_endpoint_keeps_its_records_until_the_bucket_exists(moto, sluice_factory, tmp_path):
    """The Sluice extension `SluiceS3` names a stream's own S3 endpoint (boto3 validates
    requests against Firehose's model, so a hook adds it to the body). The bucket does not
    exist yet: the stream says why in DescribeDeliveryStream and its metrics, keeps the
    acknowledged records, and delivers them once the bucket is there."""
    moto_url, s3 = moto
    # Credentials only (no bucket listed): the stream's own endpoint names the service.
    config = tmp_path / "credentials.json"
    config.write_text(json.dumps({"object_store": {"s3": {
        "access_key_id": "testing", "secret_access_key": "testing"}}}))
    sluice = sluice_factory(tmp_path / "data", ["--config", str(config)])
    firehose = aws_client(sluice, "firehose")

    def add_extension(request, **_):
        body = json.loads(request.body)
        body["ExtendedS3DestinationConfiguration"]["SluiceS3"] = {
            "EndpointURL": moto_url, "Region": "us-east-1"}
        request.data = json.dumps(body).encode()
        if "Content-Length" in request.headers:
            request.headers.replace_header("Content-Length", str(len(request.data)))

    firehose.meta.events.register("before-sign.firehose.CreateDeliveryStream", add_extension)
    firehose.create_delivery_stream(
        DeliveryStreamName="late",
        ExtendedS3DestinationConfiguration={
            "BucketARN": "arn:aws:s3:::late-bucket", "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
        })
    description = describe_raw(sluice, "late")
    extension = description["Destinations"][0]["ExtendedS3DestinationDescription"]["SluiceS3"]
    assert extension["EndpointURL"] == moto_url
    answer = firehose.put_record_batch(DeliveryStreamName="late",
                                       Records=[{"Data": b"one\n"}, {"Data": b"two\n"}])
    assert answer["FailedPutCount"] == 0

    def failing():
        description = describe_raw(sluice, "late")
        failure = description.get("FailureDescription")
        return description if failure and "delivery failed" in failure["Details"] else None

    description = wait_until(failing, "the failure to be described")
    assert "late-bucket" in description["FailureDescription"]["Details"]
    assert description["SluiceMetrics"]["DeliveryFailures"] >= 1
    assert local_objects(sluice, "late-bucket") == {}

    s3.create_bucket(Bucket="late-bucket")
    objects = wait_until(lambda: s3_objects(s3, "late-bucket"), "the kept records in moto", timeout=120)
    assert b"".join(objects.values()) == b"one\ntwo\n"
    description = wait_until(
        lambda: (d := describe_raw(sluice, "late")) and "FailureDescription" not in d and d,
        "the failure to clear")
    assert description["SluiceMetrics"]["DeliveryToElasticsearch.Records"] == 2


def test_a_journal_export_to_s3_matches_the_local_export(moto, sluice_factory, tmp_path):
    moto_url, s3 = moto
    s3.create_bucket(Bucket="exports")
    server = sluice_factory(tmp_path / "data", ["--config", str(config_file(tmp_path, moto_url))])
    kwargs = dict(endpoint_url=server.aws_url, region_name="us-east-1",
                  aws_access_key_id="sluice", aws_secret_access_key="sluice")
    qldb = boto3.client("qldb", **kwargs)
    qldb.create_ledger(Name="audit", PermissionsMode="STANDARD")
    driver = QldbDriver("audit", **kwargs)
    driver.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Orders"))
    for n in range(5):
        driver.execute_lambda(lambda txn, n=n: txn.execute_statement("INSERT INTO Orders ?", {"OrderId": str(n)}))
    driver.close()

    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)
    exports = {}
    for bucket in ("exports", "local-exports"):
        answer = qldb.export_journal_to_s3(
            Name="audit", InclusiveStartTime=now - datetime.timedelta(days=1),
            ExclusiveEndTime=now + datetime.timedelta(days=1),
            S3ExportConfiguration={"Bucket": bucket, "Prefix": "journal/",
                                   "EncryptionConfiguration": {"ObjectEncryptionType": "SSE_S3"}},
            RoleArn="arn:aws:iam::000000000000:role/export", OutputFormat="ION_TEXT")
        exports[bucket] = answer["ExportId"]

    in_s3 = s3_objects(s3, "exports")
    local = local_objects(server, "local-exports")
    assert local_objects(server, "exports") == {}
    assert len(in_s3) >= 3

    def same_id(objects, export_id):
        return {key.replace(export_id, "ID"): data.replace(export_id.encode(), b"ID")
                for key, data in objects.items()}

    assert same_id(in_s3, exports["exports"]) == same_id(local, exports["local-exports"])
    manifest = f"journal/audit/{exports['exports']}/{exports['exports']}.completed.manifest"
    assert manifest in in_s3
    assert s3.head_object(Bucket="exports", Key=manifest)["ServerSideEncryption"] == "AES256"
