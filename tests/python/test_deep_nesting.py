"""Values nested beyond the readers' limits, sent with the real clients: each gets the error its
client expects (Elasticsearch's parse exceptions, QLDB's BadRequestException and
InvalidParameterException), and the server keeps answering. The Rust test
`crates/sluice/tests/deep_nesting.rs` sends such values to every endpoint."""

import boto3
import pytest
from botocore.exceptions import ClientError
from elasticsearch import BadRequestError, Elasticsearch

# The limits (`sluice_api::json::JSON_DEPTH_MAX`, `sluice_ledger::ion_read::ION_DEPTH_MAX`).
JSON_DEPTH_MAX = 100
ION_DEPTH_MAX = 2000


def aws_kwargs(sluice):
    return dict(endpoint_url=sluice.aws_url, region_name="us-east-1",
                aws_access_key_id="sluice", aws_secret_access_key="sluice")


def deep_ion_binary(depth):
    """Ion binary of `depth` nested lists around the int 1, built from the inside out."""
    value = b"\x21\x01"
    for _ in range(depth):
        length, groups = len(value), []
        while True:
            groups.append(length & 0x7F)
            length >>= 7
            if length == 0:
                break
        groups.reverse()
        groups[-1] |= 0x80
        value = b"\xbe" + bytes(groups) + value
    return b"\xe0\x01\x00\xea" + value


def test_elasticsearch_client_gets_parse_exceptions_for_deep_bodies(sluice):
    es = Elasticsearch(sluice.es_url)
    es.indices.create(index="deep")
    deep = '{"a":' * (10 * JSON_DEPTH_MAX) + "1" + "}" * (10 * JSON_DEPTH_MAX)
    within = '{"a":' * 15 + "1" + "}" * 15
    assert es.index(index="deep", id="ok", document=within)["result"] == "created"
    calls = [
        (lambda: es.index(index="deep", id="1", document=deep), "document_parsing_exception"),
        (lambda: es.search(index="deep", body=deep), "parsing_exception"),
        (lambda: es.update(index="deep", id="ok", body='{"doc":' + deep + "}"), "x_content_parse_exception"),
        (lambda: es.indices.put_mapping(index="deep", body=deep), "x_content_parse_exception"),
    ]
    for call, error_type in calls:
        with pytest.raises(BadRequestError) as error:
            call()
        assert error.value.meta.status == 400
        assert error.value.error == error_type, error.value.body
        assert "nesting depth (101) exceeds the maximum allowed (100)" in str(error.value.body)
    assert es.info()["tagline"] == "You Know, for Search"


def test_qldb_clients_get_bad_request_and_invalid_parameter_for_deep_ion(sluice):
    qldb = boto3.client("qldb", **aws_kwargs(sluice))
    qldb.create_ledger(Name="deep", PermissionsMode="STANDARD")
    deep_text = "{a:" * (10 * ION_DEPTH_MAX) + "1" + "}" * (10 * ION_DEPTH_MAX)

    session = boto3.client("qldb-session", **aws_kwargs(sluice))
    token = session.send_command(StartSession={"LedgerName": "deep"})["StartSession"]["SessionToken"]
    txn = session.send_command(SessionToken=token, StartTransaction={})["StartTransaction"]["TransactionId"]
    session.send_command(SessionToken=token, ExecuteStatement={
        "TransactionId": txn, "Statement": "CREATE TABLE T"})
    for holder in ({"IonText": deep_text}, {"IonBinary": deep_ion_binary(10 * ION_DEPTH_MAX)}):
        with pytest.raises(ClientError) as error:
            session.send_command(SessionToken=token, ExecuteStatement={
                "TransactionId": txn, "Statement": "INSERT INTO T ?", "Parameters": [holder]})
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert error.value.response["Error"]["Code"] == "BadRequestException"
        assert f"nested deeper than {ION_DEPTH_MAX} levels" in error.value.response["Error"]["Message"]

    # A value at the limit is accepted and read back.
    at_limit = "{a:" * (ION_DEPTH_MAX - 1) + "{b: 1}" + "}" * (ION_DEPTH_MAX - 1)
    session.send_command(SessionToken=token, ExecuteStatement={
        "TransactionId": txn, "Statement": "INSERT INTO T ?", "Parameters": [{"IonText": at_limit}]})
    page = session.send_command(SessionToken=token, ExecuteStatement={
        "TransactionId": txn, "Statement": "SELECT * FROM T"})["ExecuteStatement"]["FirstPage"]
    assert len(page["Values"]) == 1 and page["Values"][0]["IonBinary"]

    # The control plane's IonText block addresses, for a ledger that exists or not.
    for name in ("deep", "missing"):
        with pytest.raises(ClientError) as error:
            qldb.get_block(Name=name, BlockAddress={"IonText": deep_text})
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert error.value.response["Error"]["Code"] == "InvalidParameterException"
        with pytest.raises(ClientError) as error:
            qldb.get_revision(Name=name, BlockAddress={"IonText": "{strandId:\"x\",sequenceNo:0}"},
                              DocumentId="x" * 22, DigestTipAddress={"IonText": "[" * 50_000})
        assert error.value.response["Error"]["Code"] == "InvalidParameterException"
    assert qldb.list_ledgers()["Ledgers"]
