"""`sluice up --security` with the real clients: elasticsearch-py with basic auth (the bootstrap
`admin`, a `readall` user), boto3 signing with an access key made by `sluice security` for
Kinesis, Firehose, QLDBSession and the QLDB control plane; a wrong secret, an unknown key, a
timestamp 20 minutes old and a tampered body are each refused with AWS's exception."""

import datetime
import subprocess

import boto3
import botocore.auth
import pytest
import requests
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from elasticsearch import AuthenticationException, AuthorizationException, Elasticsearch

from conftest import BINARY


def signed_client(server, service, key_id, secret):
    return boto3.client(
        service,
        endpoint_url=server.aws_url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_the_bootstrap_admin_and_basic_auth(secure_sluice):
    assert secure_sluice.admin_password, "".join(secure_sluice.output)
    admin = Elasticsearch(secure_sluice.es_url, basic_auth=("admin", secure_sluice.admin_password))
    admin.index(index="private", id="1", document={"n": 1}, refresh=True)
    assert admin.count(index="private")["count"] == 1

    for client in (
        Elasticsearch(secure_sluice.es_url),
        Elasticsearch(secure_sluice.es_url, basic_auth=("admin", "wrong-password")),
        Elasticsearch(secure_sluice.es_url, basic_auth=("nobody", "whatever-pass")),
    ):
        with pytest.raises(AuthenticationException) as refused:
            client.search(index="private")
        assert refused.value.meta.status == 401
        assert refused.value.body["error"]["type"] == "security_exception"
        assert refused.value.meta.headers["www-authenticate"].startswith('Basic realm="security" charset="UTF-8"')


def test_a_readall_user_can_search_but_not_write(tmp_path, sluice_factory):
    data_dir = tmp_path / "readall"
    subprocess.run(
        [str(BINARY), "security", "--data-dir", str(data_dir), "user", "add", "reader", "--role", "readall", "--password-stdin"],
        input="reader-password\n", text=True, check=True, capture_output=True,
    )
    server = sluice_factory(data_dir, ["--security"])
    reader = Elasticsearch(server.es_url, basic_auth=("reader", "reader-password"))
    # The store had a user: no admin was created.
    assert not any("created user admin" in line for line in server.output)
    assert reader.search(index="*", allow_no_indices=True)["hits"]["total"]["value"] == 0
    with pytest.raises(AuthorizationException) as refused:
        reader.index(index="logs", document={"n": 1})
    assert refused.value.meta.status == 403
    assert refused.value.body["error"]["type"] == "security_exception"


def test_boto3_signs_with_a_known_key_for_each_service(secure_sluice):
    key_id, secret = secure_sluice.access_key
    kinesis = signed_client(secure_sluice, "kinesis", key_id, secret)
    kinesis.create_stream(StreamName="signed", ShardCount=1)
    assert "signed" in kinesis.list_streams()["StreamNames"]
    assert signed_client(secure_sluice, "firehose", key_id, secret).list_delivery_streams()["DeliveryStreamNames"] == []
    qldb = signed_client(secure_sluice, "qldb", key_id, secret)
    qldb.create_ledger(Name="signed", PermissionsMode="ALLOW_ALL", DeletionProtection=False)
    assert [ledger["Name"] for ledger in qldb.list_ledgers()["Ledgers"]] == ["signed"]
    session = signed_client(secure_sluice, "qldb-session", key_id, secret)
    started = session.send_command(StartSession={"LedgerName": "signed"})
    assert started["StartSession"]["SessionToken"]


def error_of(call):
    with pytest.raises(ClientError) as refused:
        call()
    return refused.value.response["Error"]["Code"], refused.value.response["Error"]["Message"]


def test_wrong_secret_unknown_key_and_no_signature_are_refused(secure_sluice):
    key_id, secret = secure_sluice.access_key
    for service, call in [
        ("kinesis", lambda c: c.list_streams()),
        ("firehose", lambda c: c.list_delivery_streams()),
        ("qldb-session", lambda c: c.send_command(StartSession={"LedgerName": "x"})),
    ]:
        wrong = signed_client(secure_sluice, service, key_id, secret + "x")
        assert error_of(lambda: call(wrong))[0] == "InvalidSignatureException"
        unknown = signed_client(secure_sluice, service, "AKIAUNKNOWNUNKNOWN00", secret)
        assert error_of(lambda: call(unknown))[0] == "UnrecognizedClientException"
    qldb = signed_client(secure_sluice, "qldb", key_id, secret + "x")
    assert error_of(qldb.list_ledgers)[0] == "InvalidSignatureException"

    answer = requests.post(
        secure_sluice.aws_url,
        headers={"X-Amz-Target": "Kinesis_20131202.ListStreams", "Content-Type": "application/x-amz-json-1.1"},
        data="{}",
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["__type"] == "MissingAuthenticationTokenException"


def signed_by_hand(server, key_id, secret, body, when):
    """A Kinesis ListStreams signed by botocore's SigV4Auth at the time `when`."""
    request = AWSRequest(
        method="POST",
        url=server.aws_url + "/",
        headers={"X-Amz-Target": "Kinesis_20131202.ListStreams", "Content-Type": "application/x-amz-json-1.1"},
        data=body,
    )
    signer = botocore.auth.SigV4Auth(Credentials(key_id, secret), "kinesis", "us-east-1")
    real_datetime = datetime.datetime

    class Clock(real_datetime):
        @classmethod
        def utcnow(cls):
            return when.replace(tzinfo=None)

        @classmethod
        def now(cls, tz=None):
            return when if tz else when.replace(tzinfo=None)

    original = botocore.auth.datetime.datetime
    botocore.auth.datetime.datetime = Clock
    try:
        signer.add_auth(request)
    finally:
        botocore.auth.datetime.datetime = original
    return request


def test_a_stale_timestamp_and_a_tampered_body_are_refused(secure_sluice):
    key_id, secret = secure_sluice.access_key
    now = datetime.datetime.now(datetime.timezone.utc)

    fresh = signed_by_hand(secure_sluice, key_id, secret, b"{}", now)
    answer = requests.post(fresh.url, headers=dict(fresh.headers), data=fresh.body, timeout=10)
    assert answer.status_code == 200, answer.text

    stale = signed_by_hand(secure_sluice, key_id, secret, b"{}", now - datetime.timedelta(minutes=20))
    answer = requests.post(stale.url, headers=dict(stale.headers), data=stale.body, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["__type"] == "InvalidSignatureException"
    assert answer.json()["message"].startswith("Signature expired: ")

    tampered = signed_by_hand(secure_sluice, key_id, secret, b'{"Limit": 1}', now)
    answer = requests.post(tampered.url, headers=dict(tampered.headers), data=b'{"Limit": 2}', timeout=10)
    assert answer.status_code == 400
    assert answer.json()["__type"] == "InvalidSignatureException"


def test_pyqldb_with_an_access_key(secure_sluice):
    from pyqldb.driver.qldb_driver import QldbDriver

    key_id, secret = secure_sluice.access_key
    signed_client(secure_sluice, "qldb", key_id, secret).create_ledger(
        Name="cars", PermissionsMode="ALLOW_ALL", DeletionProtection=False
    )
    options = dict(
        endpoint_url=secure_sluice.aws_url,
        region_name="us-east-1",
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )
    driver = QldbDriver("cars", **options)
    driver.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Car"))
    driver.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Car ?", {"VIN": "1"}))
    rows = driver.execute_lambda(lambda txn: list(txn.execute_statement("SELECT VIN FROM Car")))
    assert [row["VIN"] for row in rows] == ["1"]
    driver.close()

    wrong = QldbDriver("cars", **{**options, "aws_secret_access_key": secret + "x"}, retry_config=None)
    with pytest.raises(ClientError) as refused:
        wrong.execute_lambda(lambda txn: txn.execute_statement("SELECT VIN FROM Car"))
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    wrong.close()
