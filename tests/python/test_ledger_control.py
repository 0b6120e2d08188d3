"""QLDB control plane compatibility: boto3's `qldb` client against the real `sluice` binary. Digests,
blocks and revisions are verified here with an independent implementation of QLDB's hashing,
written from the rules in the shared vectors file (Ion hashes come from the `ionhash` package)."""

import hashlib
from pathlib import Path

import boto3
import ionhash  # noqa: F401  (adds ion_hash to Ion values)
import pytest
from amazon.ion.simpleion import loads
from botocore.exceptions import ClientError
from pyqldb.driver.qldb_driver import QldbDriver

LEDGER = "audit"


def aws_kwargs(sluice):
    return dict(endpoint_url=sluice.aws_url, region_name="us-east-1",
                aws_access_key_id="sluice", aws_secret_access_key="sluice")


# ----- QLDB hashing, independently -----

def signed_bytes_from_last(digest):
    return [b - 256 if b > 127 else b for b in reversed(digest)]


def dot(a, b):
    """dot(a, b): empty hashes vanish; otherwise SHA-256 of smaller ‖ larger, comparing the hashes
    as signed bytes from the last byte towards the first."""
    if not a:
        return b
    if not b:
        return a
    smaller, larger = sorted([a, b], key=signed_bytes_from_last)
    return hashlib.sha256(smaller + larger).digest()


def fold(leaf, proof):
    result = leaf
    for node in proof:
        result = dot(result, node)
    return result


def merkle_root(hashes):
    level = list(hashes)
    while len(level) > 1:
        paired = [dot(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def ion_hash(value):
    return bytes(value.ion_hash("SHA256"))


def test_the_independent_hashing_matches_the_shared_vectors():
    one, two = hashlib.sha256(b"1").digest(), hashlib.sha256(b"2").digest()
    assert dot(one, two).hex() == "940ed9abddfb5ef28004408546bc5043cda391232b6afe07267f9f8ed2b500c9"
    assert ion_hash(loads("{e:5}")).hex() == "51db1ae986743b6143a837436799b09e73f10b2ba8299de28c1937736fbb63b8"
    metadata = loads('{id: "3Ax1in3Mt7L0YvVb6XhYyn", version: 0, txTime: 2020-07-05T18:22:14.019Z, '
                     'txId: "84MQSpihZfxFzpQ4fGyXtX"}')
    data = loads('{OrderId: "12345", Item: "ABC12345", Quantity: 1}')
    import base64
    assert base64.b64encode(dot(ion_hash(metadata), ion_hash(data))) == b"hrhsCwsNPzLjCsOBHRtSkMCh2JGrB6q0eOGFswyQBPU="


# ----- the control plane -----

def test_create_describe_list_update_delete(sluice):
    qldb = boto3.client("qldb", **aws_kwargs(sluice))
    created = qldb.create_ledger(Name=LEDGER, PermissionsMode="STANDARD")
    assert created["Name"] == LEDGER and created["State"] == "ACTIVE" and created["DeletionProtection"] is True
    qldb.create_ledger(Name="second", PermissionsMode="STANDARD", DeletionProtection=False)

    described = qldb.describe_ledger(Name=LEDGER)
    assert described["Arn"].endswith(":ledger/" + LEDGER)
    assert described["DeletionProtection"] is True
    assert sorted(ledger["Name"] for ledger in qldb.list_ledgers()["Ledgers"]) == [LEDGER, "second"]
    page = qldb.list_ledgers(MaxResults=1)
    assert len(page["Ledgers"]) == 1 and "NextToken" in page
    assert len(qldb.list_ledgers(MaxResults=1, NextToken=page["NextToken"])["Ledgers"]) == 1

    with pytest.raises(ClientError) as error:
        qldb.create_ledger(Name=LEDGER, PermissionsMode="STANDARD")
    assert error.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as error:
        qldb.delete_ledger(Name=LEDGER)
    assert error.value.response["Error"]["Code"] == "ResourcePreconditionNotMetException"

    assert qldb.update_ledger(Name=LEDGER, DeletionProtection=False)["DeletionProtection"] is False
    qldb.delete_ledger(Name=LEDGER)
    with pytest.raises(ClientError) as error:
        qldb.describe_ledger(Name=LEDGER)
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as error:
        qldb.create_ledger(Name="not a valid name!", PermissionsMode="STANDARD")
    assert error.value.response["Error"]["Code"] == "InvalidParameterException"


def test_a_transaction_open_across_delete_ledger_is_not_acknowledged(sluice):
    qldb = boto3.client("qldb", **aws_kwargs(sluice))
    qldb.create_ledger(Name="gone", PermissionsMode="ALLOW_ALL", DeletionProtection=False)
    driver = QldbDriver("gone", **aws_kwargs(sluice))
    driver.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE T"))

    def insert_then_delete(txn):
        txn.execute_statement("INSERT INTO T ?", {"a": 1})
        qldb.delete_ledger(Name="gone")

    with pytest.raises(ClientError) as error:
        driver.execute_lambda(insert_then_delete)
    assert error.value.response["Error"]["Code"] == "BadRequestException"
    assert "gone" in error.value.response["Error"]["Message"]
    driver.close()
    qldb.create_ledger(Name="gone", PermissionsMode="ALLOW_ALL", DeletionProtection=False)
    again = QldbDriver("gone", **aws_kwargs(sluice))
    with pytest.raises(ClientError):
        again.execute_lambda(lambda txn: list(txn.execute_statement("SELECT * FROM T")))
    again.close()


@pytest.fixture
def filled(sluice):
    qldb = boto3.client("qldb", **aws_kwargs(sluice))
    qldb.create_ledger(Name=LEDGER, PermissionsMode="STANDARD")
    driver = QldbDriver(LEDGER, **aws_kwargs(sluice))
    driver.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Orders"))
    for n in range(5):
        driver.execute_lambda(lambda txn, n=n: [
            txn.execute_statement("INSERT INTO Orders ?", {"OrderId": f"{n}-{i}", "Quantity": i}) for i in range(3)])
    driver.execute_lambda(lambda txn: txn.execute_statement("UPDATE Orders SET Quantity = 99 WHERE OrderId = '2-1'"))
    committed = driver.execute_lambda(lambda txn: list(txn.execute_statement(
        "SELECT * FROM _ql_committed_Orders WHERE data.OrderId = '2-1'")))
    driver.close()
    return qldb, committed[0]


def test_digest_block_and_revision_proofs_verify_independently(filled):
    qldb, committed = filled
    digest_answer = qldb.get_digest(Name=LEDGER)
    digest = digest_answer["Digest"]
    tip = digest_answer["DigestTipAddress"]
    assert len(digest) == 32
    tip_sequence = loads(tip["IonText"])["sequenceNo"]

    # Every block, from its content: entriesHash, blockHash, the chain, and its proof.
    strand = loads(tip["IonText"])["strandId"]
    previous = None
    block_hashes = []
    for sequence in range(tip_sequence + 1):
        address = {"IonText": '{strandId:"%s",sequenceNo:%d}' % (strand, sequence)}
        answer = qldb.get_block(Name=LEDGER, BlockAddress=address, DigestTipAddress=tip)
        block = loads(answer["Block"]["IonText"])
        entries = [bytes(entry) for entry in block["entriesHashList"]]
        assert ion_hash(block["transactionInfo"]) in entries
        if "revisions" in block:
            revision_hashes = []
            for revision in block["revisions"]:
                recomputed = dot(ion_hash(revision["metadata"]), ion_hash(revision["data"])) \
                    if "data" in revision else ion_hash(revision["metadata"])
                assert recomputed == bytes(revision["hash"])
                revision_hashes.append(recomputed)
            assert merkle_root(revision_hashes) in entries
        entries_hash = merkle_root(entries)
        assert entries_hash == bytes(block["entriesHash"])
        stored_previous = bytes(block["previousBlockHash"]) if "previousBlockHash" in block else b""
        assert stored_previous == (previous or b"")
        block_hash = dot(entries_hash, stored_previous)
        assert block_hash == bytes(block["blockHash"])
        proof = [bytes(node) for node in loads(answer["Proof"]["IonText"])]
        assert fold(block_hash, proof) == digest, f"block {sequence} proof"
        block_hashes.append(block_hash)
        previous = block_hash
    assert merkle_root(block_hashes) == digest

    # A revision, from its data and metadata up to the digest.
    document_id = committed["metadata"]["id"]
    block_address = committed["blockAddress"]
    answer = qldb.get_revision(
        Name=LEDGER, DocumentId=document_id, DigestTipAddress=tip,
        BlockAddress={"IonText": '{strandId:"%s",sequenceNo:%d}' % (
            block_address["strandId"], block_address["sequenceNo"])})
    revision = loads(answer["Revision"]["IonText"])
    assert revision["data"]["Quantity"] == 99
    revision_hash = dot(ion_hash(revision["metadata"]), ion_hash(revision["data"]))
    assert revision_hash == bytes(revision["hash"]) == bytes(committed["hash"])
    proof = [bytes(node) for node in loads(answer["Proof"]["IonText"])]
    assert fold(revision_hash, proof) == digest

    # A tampered proof does not verify.
    assert fold(revision_hash, proof[:-1]) != digest
    # Without a tip there is no proof.
    assert "Proof" not in qldb.get_block(Name=LEDGER, BlockAddress=tip)

    with pytest.raises(ClientError) as error:
        qldb.get_block(Name=LEDGER, BlockAddress={"IonText": '{strandId:"%s",sequenceNo:999}' % strand})
    assert error.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as error:
        qldb.get_block(Name=LEDGER, BlockAddress={"IonText": "{not ion"})
    assert error.value.response["Error"]["Code"] == "InvalidParameterException"


def test_export_journal_to_s3_writes_under_the_data_dir(filled, sluice):
    qldb, _ = filled
    import datetime
    now = datetime.datetime.now(datetime.timezone.utc)
    answer = qldb.export_journal_to_s3(
        Name=LEDGER,
        InclusiveStartTime=now - datetime.timedelta(days=1),
        ExclusiveEndTime=now + datetime.timedelta(days=1),
        S3ExportConfiguration={"Bucket": "exports", "Prefix": "audit/",
                               "EncryptionConfiguration": {"ObjectEncryptionType": "NO_ENCRYPTION"}},
        RoleArn="arn:aws:iam::000000000000:role/export",
        OutputFormat="ION_TEXT")
    export_id = answer["ExportId"]
    directory = Path(sluice.data_dir) / "s3" / "exports" / "audit" / LEDGER / export_id
    assert (directory / f"{export_id}.completed.manifest").is_file()
    blocks = []
    for data_object in sorted(directory.rglob("*.ion")):
        blocks.extend(loads(data_object.read_text(), single_value=False))
    tip_sequence = loads(qldb.get_digest(Name=LEDGER)["DigestTipAddress"]["IonText"])["sequenceNo"]
    assert [block["blockAddress"]["sequenceNo"] for block in blocks] == list(range(tip_sequence + 1))
    description = qldb.describe_journal_s3_export(Name=LEDGER, ExportId=export_id)["ExportDescription"]
    assert description["Status"] == "COMPLETED"

    with pytest.raises(ClientError) as error:
        qldb.export_journal_to_s3(
            Name=LEDGER, InclusiveStartTime=now, ExclusiveEndTime=now,
            S3ExportConfiguration={"Bucket": "exports", "Prefix": "../../escape",
                                   "EncryptionConfiguration": {"ObjectEncryptionType": "NO_ENCRYPTION"}},
            RoleArn="arn:aws:iam::000000000000:role/export")
    assert error.value.response["Error"]["Code"] == "InvalidParameterException"
