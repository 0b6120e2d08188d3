"""Encryption at rest with the real binary: a key made by `sluice security generate-key` and
given with `--encryption-key-file`; a Kinesis record, a document's translog, a ledger's revisions
(and their index), a delivery stream's configuration and its S3 objects are written, and no file
of the stream segments, translogs, ledgers, delivery catalog or s3 store holds them in clear.
Everything reads back through the APIs, across a restart; without the key the data directory
does not start; `sluice security rotate-key` while the node runs makes the segments created
after it use the new data key, and the old ones still read; kill -9 while records, documents
and ledger transactions are written encrypted loses none that was acknowledged."""

import json
import subprocess

import pytest
from pyqldb.driver.qldb_driver import QldbDriver

from conftest import BINARY, Sluice, aws_client, kill_9_while_writing, wait_until

MARKER = "SEALEDMARKER"


def qldb_kwargs(server):
    return dict(endpoint_url=server.aws_url, region_name="us-east-1",
                aws_access_key_id="sluice", aws_secret_access_key="sluice")


def generate_key(path):
    made = subprocess.run([str(BINARY), "security", "generate-key"], capture_output=True, text=True, check=True)
    key = made.stdout.strip()
    assert len(key) == 64 and int(key, 16) >= 0
    path.write_text(key + "\n")
    return path


def files_holding(data_dir, needle, skip=("tantivy", "tables", "sluice.log")):
    """The files under data_dir whose bytes contain needle, except where encryption at rest
    says it does not reach (the search index's own files, tables)."""
    found = []
    for path in data_dir.rglob("*"):
        if path.is_file() and not any(part in skip for part in path.parts) and needle in path.read_bytes():
            found.append(str(path.relative_to(data_dir)))
    return found


def segment_key_ids(data_dir, stream):
    """The data key id in the header of each (version 2) segment of a stream's shard 0."""
    shard = data_dir / "streams" / "streams" / stream / "shard-000000"
    ids = []
    for segment in sorted(shard.glob("*.seg")):
        header = segment.read_bytes()[:56]
        assert header[8:12] == (2).to_bytes(4, "little"), segment
        ids.append(int.from_bytes(header[32:36], "little"))
    return ids


def feed(server, data_dir):
    """A record, a document, a ledger's revisions and index, a delivery stream and its object;
    returns the object's files."""
    import urllib.request
    kinesis = aws_client(server, "kinesis")
    kinesis.create_stream(StreamName="orders", ShardCount=1)
    kinesis.put_record(StreamName="orders", PartitionKey=f"{MARKER}-key", Data=f"{MARKER}-record".encode())

    request = urllib.request.Request(f"{server.es_url}/docs/_doc/1", method="PUT",
                                     data=json.dumps({"text": f"{MARKER}-document"}).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request).read()

    aws_client(server, "qldb").create_ledger(Name="cars", PermissionsMode="ALLOW_ALL")
    driver = QldbDriver("cars", **qldb_kwargs(server))
    driver.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Vehicle"))
    driver.execute_lambda(lambda txn: txn.execute_statement("CREATE INDEX ON Vehicle (VIN)"))
    driver.execute_lambda(lambda txn: txn.execute_statement(
        "INSERT INTO Vehicle ?", {"VIN": f"{MARKER}-VIN", "Owner": f"{MARKER}-owner"}))
    driver.close()

    firehose = aws_client(server, "firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName="archive",
        ExtendedS3DestinationConfiguration={
            "BucketARN": "arn:aws:s3:::archive", "Prefix": f"{MARKER}-prefix/",
            "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 0},
        })
    firehose.put_record(DeliveryStreamName="archive", Record={"Data": f"{MARKER}-archived\n".encode()})
    return wait_until(lambda: [p for p in (data_dir / "s3" / "archive").rglob("*") if p.is_file()]
                      if (data_dir / "s3" / "archive").exists() else [], what="the archived object")


def test_what_sluice_writes_is_encrypted_and_reads_back_with_the_key(tmp_path, sluice_factory):
    key_file = generate_key(tmp_path / "key.hex")
    data_dir = tmp_path / "data"
    server = sluice_factory(data_dir, ["--encryption-key-file", str(key_file)])

    objects = feed(server, data_dir)
    assert objects[0].read_bytes().startswith(b"SLUICEEN")
    assert (data_dir / "security" / "keyring.json").exists()
    assert files_holding(data_dir, MARKER.encode()) == []
    # The same writes without a key leave them in clear in every one of those places.
    plain_dir = tmp_path / "plain"
    feed(sluice_factory(plain_dir), plain_dir)
    places = {path.split("/")[0] for path in files_holding(plain_dir, MARKER.encode())}
    assert places >= {"streams", "ledgers", "delivery", "s3"}, places

    # Across a restart with the key, everything reads back.
    server.stop()
    restarted = sluice_factory(data_dir, ["--encryption-key-file", str(key_file)])
    kinesis = aws_client(restarted, "kinesis")
    iterator = kinesis.get_shard_iterator(StreamName="orders", ShardId="shardId-000000000000",
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [r["Data"] for r in records] == [f"{MARKER}-record".encode()]
    assert records[0]["PartitionKey"] == f"{MARKER}-key"
    import urllib.request
    found = json.loads(urllib.request.urlopen(f"{restarted.es_url}/docs/_doc/1").read())
    assert found["_source"] == {"text": f"{MARKER}-document"}
    driver = QldbDriver("cars", **qldb_kwargs(restarted))
    owners = driver.execute_lambda(lambda txn: [row["Owner"] for row in txn.execute_statement(
        "SELECT Owner FROM Vehicle WHERE VIN = ?", f"{MARKER}-VIN")])
    driver.close()
    assert owners == [f"{MARKER}-owner"]
    streams = aws_client(restarted, "firehose").list_delivery_streams()["DeliveryStreamNames"]
    assert streams == ["archive"]

    # Without the key, the data directory does not start, and says why.
    restarted.stop()
    refused = subprocess.run([str(BINARY), "up", "--data-dir", str(data_dir), "--es-port", "0",
                              "--aws-port", "0", "--ui-port", "0"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "encryption-key-file" in refused.stderr and "SLUICE_ENCRYPTION_KEY" in refused.stderr
    wrong = generate_key(tmp_path / "wrong.hex")
    refused = subprocess.run([str(BINARY), "up", "--data-dir", str(data_dir), "--encryption-key-file", str(wrong),
                              "--es-port", "0", "--aws-port", "0", "--ui-port", "0"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "not the key this data directory was sealed with" in refused.stderr


def test_rotate_key_while_running_takes_effect_without_a_restart(tmp_path, sluice_factory):
    key_file = generate_key(tmp_path / "key.hex")
    data_dir = tmp_path / "data"
    server = sluice_factory(data_dir, ["--encryption-key-file", str(key_file)])
    kinesis = aws_client(server, "kinesis")
    kinesis.create_stream(StreamName="before", ShardCount=1)
    kinesis.put_record(StreamName="before", PartitionKey="k", Data=b"old")
    assert segment_key_ids(data_dir, "before") == [1]

    rotated = subprocess.run([str(BINARY), "security", "--data-dir", str(data_dir), "rotate-key",
                              "--encryption-key-file", str(key_file)],
                             capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    assert "data key 2" in rotated.stdout and "told to reload" in rotated.stdout
    wait_until(lambda: any("reloaded the encryption keyring" in line for line in server.output), what="the reload")

    kinesis.create_stream(StreamName="after", ShardCount=1)
    kinesis.put_record(StreamName="after", PartitionKey="k", Data=b"new")
    assert segment_key_ids(data_dir, "after") == [2]
    # The node kept running through it, and both keys' records read.
    for stream, data in (("before", b"old"), ("after", b"new")):
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId="shardId-000000000000",
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        assert [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]] == [data]
    keyring = json.loads((data_dir / "security" / "keyring.json").read_text())
    assert keyring["current"] == 2 and [key["id"] for key in keyring["keys"]] == [1, 2]

    # A new master key rewraps the keyring; the old one no longer opens it.
    server.stop()
    new_key = generate_key(tmp_path / "new.hex")
    rewrapped = subprocess.run([str(BINARY), "security", "--data-dir", str(data_dir), "rotate-key",
                                "--encryption-key-file", str(key_file), "--new-encryption-key-file", str(new_key)],
                               capture_output=True, text=True, timeout=60)
    assert rewrapped.returncode == 0, rewrapped.stderr
    assert "no sluice is running" in rewrapped.stdout
    with pytest.raises(RuntimeError):
        Sluice(data_dir, ["--encryption-key-file", str(key_file)]).start()
    again = sluice_factory(data_dir, ["--encryption-key-file", str(new_key)])
    kinesis = aws_client(again, "kinesis")
    iterator = kinesis.get_shard_iterator(StreamName="before", ShardId="shardId-000000000000",
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]] == [b"old"]


def test_kill_9_while_writing_encrypted_loses_nothing_acknowledged(tmp_path, sluice_factory):
    key_file = generate_key(tmp_path / "key.hex")
    data_dir = tmp_path / "data"
    args = ["--encryption-key-file", str(key_file)]
    server = sluice_factory(data_dir, args)
    kinesis = aws_client(server, "kinesis")
    kinesis.create_stream(StreamName="events", ShardCount=2)
    aws_client(server, "qldb").create_ledger(Name="audit", PermissionsMode="ALLOW_ALL")
    driver = QldbDriver("audit", **qldb_kwargs(server))
    driver.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Entries"))
    import urllib.request
    acknowledged = {"records": [], "documents": [], "entries": []}

    def write_round(n):
        batch = [{"PartitionKey": f"k{n}-{i}", "Data": f"{MARKER}-{n}-{i}".encode()} for i in range(20)]
        answer = kinesis.put_records(StreamName="events", Records=batch)
        acknowledged["records"] += [r["Data"] for r, out in zip(batch, answer["Records"]) if "SequenceNumber" in out]
        lines = "".join(json.dumps({"index": {"_index": "docs", "_id": f"{n}-{i}"}}) + "\n"
                        + json.dumps({"text": f"{MARKER}-{n}-{i}"}) + "\n" for i in range(20))
        request = urllib.request.Request(f"{server.es_url}/_bulk", method="POST", data=lines.encode(),
                                         headers={"Content-Type": "application/x-ndjson"})
        items = json.loads(urllib.request.urlopen(request).read())["items"]
        acknowledged["documents"] += [item["index"]["_id"] for item in items if item["index"]["status"] in (200, 201)]
        driver.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Entries ?", {"n": n}))
        acknowledged["entries"].append(n)

    kill_9_while_writing(server, write_round, rounds=15, timeout_s=120)
    assert len(acknowledged["entries"]) >= 15

    restarted = sluice_factory(data_dir, args)
    kinesis = aws_client(restarted, "kinesis")
    read = []
    for shard in kinesis.list_shards(StreamName="events")["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName="events", ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            read += [r["Data"] for r in answer["Records"]]
            if not answer["Records"]:
                break
            iterator = answer.get("NextShardIterator")
    assert set(acknowledged["records"]) <= set(read)
    for document in acknowledged["documents"]:
        found = json.loads(urllib.request.urlopen(f"{restarted.es_url}/docs/_doc/{document}").read())
        assert found["found"], document
    driver = QldbDriver("audit", **qldb_kwargs(restarted))
    stored = driver.execute_lambda(lambda txn: sorted(row["n"] for row in txn.execute_statement("SELECT n FROM Entries")))
    driver.close()
    assert set(acknowledged["entries"]) <= set(stored)
    assert files_holding(data_dir, MARKER.encode()) == []
