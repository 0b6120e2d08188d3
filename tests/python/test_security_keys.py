"""The rest of issue 12's identities with the real clients: Elasticsearch API keys through
elasticsearch-py (valid, expired, invalidated, across a restart), SigV4 presigned URLs from
boto3's `generate_presigned_url` and botocore's `SigV4QueryAuth`, a declared payload hash and an
`aws-chunked` body signed chunk by chunk, SigV4 on the search port (service `es`, signed by
botocore's `SigV4Auth`), and `sluice up` refusing to listen beyond loopback unprotected."""

import datetime
import hashlib
import hmac
import json
import subprocess

import botocore.auth
import pytest
import requests
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from elasticsearch import (
    AuthenticationException,
    AuthorizationException,
    BadRequestError,
    Elasticsearch,
)

from conftest import BINARY
from test_security import signed_client

DAY_MS = 24 * 3600 * 1000


def admin_of(server):
    return Elasticsearch(server.es_url, basic_auth=("admin", server.admin_password))


def refused_401(client):
    with pytest.raises(AuthenticationException) as refused:
        client.search(index="keys")
    assert refused.value.meta.status == 401
    assert refused.value.body["error"]["type"] == "security_exception"
    assert "ApiKey" in refused.value.meta.headers["www-authenticate"]
    return refused.value.body["error"]


def test_api_keys_authenticate_expire_and_are_invalidated_across_a_restart(secure_sluice, sluice_factory, monkeypatch):
    admin = admin_of(secure_sluice)
    admin.index(index="keys", id="1", document={"n": 1}, refresh=True)

    forever = admin.security.create_api_key(name="ingest", metadata={"team": "data"})
    assert set(forever) >= {"id", "name", "api_key", "encoded"} and "expiration" not in forever
    daily = admin.security.create_api_key(name="daily", expiration="1d")
    assert daily["expiration"] > 0
    doomed = admin.security.create_api_key(name="doomed")

    # Both forms of the client's api_key: (id, key) and the encoded string.
    by_pair = Elasticsearch(secure_sluice.es_url, api_key=(forever["id"], forever["api_key"]))
    by_encoded = Elasticsearch(secure_sluice.es_url, api_key=daily["encoded"])
    by_pair.index(index="keys", id="2", document={"n": 2}, refresh=True)
    assert by_encoded.count(index="keys")["count"] == 2
    me = by_pair.security.authenticate()
    assert me["username"] == "admin"
    assert me["authentication_type"] == "api_key"
    assert me["api_key"] == {"id": forever["id"], "name": "ingest"}
    assert me["authentication_realm"]["type"] == "_es_api_key"

    listed = admin.security.get_api_key(id=forever["id"])["api_keys"]
    assert [(key["name"], key["invalidated"], key["username"]) for key in listed] == [("ingest", False, "admin")]
    assert listed[0]["metadata"] == {"team": "data"}
    assert "api_key" not in listed[0]
    assert {key["name"] for key in admin.security.get_api_key(name="*")["api_keys"]} == {"ingest", "daily", "doomed"}

    answer = admin.security.invalidate_api_key(ids=[doomed["id"]])
    assert answer["invalidated_api_keys"] == [doomed["id"]] and answer["error_count"] == 0
    assert admin.security.invalidate_api_key(name="doomed")["previously_invalidated_api_keys"] == [doomed["id"]]
    error = refused_401(Elasticsearch(secure_sluice.es_url, api_key=(doomed["id"], doomed["api_key"])))
    assert "invalidated" in error["additional_unsuccessful_credentials"]
    refused_401(Elasticsearch(secure_sluice.es_url, api_key=(forever["id"], doomed["api_key"])))
    refused_401(Elasticsearch(secure_sluice.es_url, api_key=("no-such-key", "whatever")))

    # The store never holds a key itself.
    stored = (secure_sluice.data_dir / "security" / "api_keys.json").read_text()
    for key in (forever, daily, doomed):
        assert key["api_key"] not in stored

    # Restarted two days later (the node's clock shifted): the daily key has expired, the
    # others are as they were.
    secure_sluice.stop()
    monkeypatch.setenv("SLUICE_CLOCK_OFFSET_MS", str(2 * DAY_MS))
    later = sluice_factory(secure_sluice.data_dir, ["--security"])
    assert Elasticsearch(later.es_url, api_key=(forever["id"], forever["api_key"])).count(index="keys")["count"] == 2
    error = refused_401(Elasticsearch(later.es_url, api_key=daily["encoded"]))
    assert error["additional_unsuccessful_credentials"] == "API key: api key is expired"
    refused_401(Elasticsearch(later.es_url, api_key=(doomed["id"], doomed["api_key"])))
    admin_later = Elasticsearch(later.es_url, basic_auth=("admin", secure_sluice.admin_password))
    names = {key["name"] for key in admin_later.security.get_api_key(active_only=True)["api_keys"]}
    assert names == {"ingest"}


def test_role_descriptors_limit_a_key_and_a_key_may_be_granted(secure_sluice):
    admin = admin_of(secure_sluice)
    admin.bulk(refresh=True, operations=[
        {"index": {"_index": "logs-a"}}, {"team": "red", "n": 1},
        {"index": {"_index": "logs-a"}}, {"team": "blue", "n": 2},
        {"index": {"_index": "secrets"}}, {"pin": 1},
    ])
    # A key limited below its (all_access) owner: read logs-*, only the red team's documents.
    narrow = admin.security.create_api_key(
        name="narrow",
        role_descriptors={"logs": {
            "cluster": ["monitor"],
            "indices": [{"names": ["logs-*"], "privileges": ["read"], "query": {"term": {"team.keyword": "red"}}}],
        }},
    )
    reader = Elasticsearch(secure_sluice.es_url, api_key=narrow["encoded"])
    assert reader.count(index="logs-*")["count"] == 1
    assert reader.search(index="*")["hits"]["total"]["value"] == 1
    assert reader.cluster.health()["status"]
    for call in (
        lambda: reader.index(index="logs-a", document={"team": "red"}),
        lambda: reader.search(index="secrets"),
        lambda: reader.security.create_api_key(name="child"),
    ):
        with pytest.raises(AuthorizationException):
            call()
    # Field-level security as Elasticsearch says it: granted fields, or all but the exceptions.
    for field_security, shown in (({"grant": ["team*"]}, {"team": "red"}), ({"grant": ["*"], "except": ["team"]}, {"n": 1})):
        key = admin.security.create_api_key(name="fls", role_descriptors={"r": {"indices": [
            {"names": ["logs-*"], "privileges": ["read"], "field_security": field_security}]}})
        fls_reader = Elasticsearch(secure_sluice.es_url, api_key=key["encoded"])
        hits = fls_reader.search(index="logs-a", query={"term": {"n": 1}})["hits"]["hits"]
        if "n" in shown:
            assert [hit["_source"] for hit in hits] == [shown]
        else:
            # The hidden field `n` matches nothing.
            assert hits == []
            assert fls_reader.search(index="logs-a", query={"term": {"team.keyword": "red"}})["hits"]["hits"][0]["_source"] == shown
    # Privileges Sluice does not know, and field security it cannot say, are refused, not ignored.
    for descriptor in (
        {"indices": [{"names": ["logs-*"], "privileges": ["read_cross_cluster"]}]},
        {"indices": [{"names": ["logs-*"], "privileges": ["read"], "field_security": {"grant": ["n"], "except": ["n.x"]}}]},
        {"run_as": ["someone"]},
    ):
        with pytest.raises(BadRequestError) as refused:
            admin.security.create_api_key(name="bad", role_descriptors={"r": descriptor})
        assert refused.value.body["error"]["type"] == "illegal_argument_exception"
    # An empty set of descriptors is the owner's rights, as in Elasticsearch.
    assert admin.security.create_api_key(name="plain", role_descriptors={})["id"]

    granted = admin.security.grant_api_key(
        grant_type="password",
        username="admin",
        password=secure_sluice.admin_password,
        api_key={"name": "granted", "expiration": "1h"},
    )
    me = Elasticsearch(secure_sluice.es_url, api_key=granted["encoded"]).security.authenticate()
    assert me["api_key"]["name"] == "granted"
    # The dashboard's API takes the key too.
    answer = requests.get(secure_sluice.ui_url + "/api/config", headers={"Authorization": "ApiKey " + granted["encoded"]}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert requests.get(secure_sluice.ui_url + "/api/config", timeout=10).status_code == 401
    with pytest.raises(AuthenticationException):
        admin.security.grant_api_key(grant_type="password", username="admin", password="wrong-password", api_key={"name": "x"})


def test_a_readall_user_s_keys_are_read_only(tmp_path, sluice_factory):
    data_dir = tmp_path / "readonly"
    subprocess.run(
        [str(BINARY), "security", "--data-dir", str(data_dir), "user", "add", "reader", "--role", "readall", "--password-stdin"],
        input="reader-password\n", text=True, check=True, capture_output=True,
    )
    server = sluice_factory(data_dir, ["--security"])
    reader = Elasticsearch(server.es_url, basic_auth=("reader", "reader-password"))
    # Creating a key is a write: a readall user may not.
    with pytest.raises(AuthorizationException):
        reader.security.create_api_key(name="mine")
    assert reader.security.authenticate()["roles"] == ["readall"]


def sign_at(request, signer_class, service, key_id, secret, when, **options):
    """Signs `request` with botocore's `signer_class` as if the time were `when`."""
    signer = signer_class(Credentials(key_id, secret), service, "us-east-1", **options)
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


def kinesis_list_streams(server, body=b""):
    return AWSRequest(
        method="POST",
        url=server.aws_url + "/",
        headers={"X-Amz-Target": "Kinesis_20131202.ListStreams", "Content-Type": "application/x-amz-json-1.1"},
        data=body,
    )


def test_presigned_urls(secure_sluice):
    key_id, secret = secure_sluice.access_key
    qldb = signed_client(secure_sluice, "qldb", key_id, secret)
    qldb.create_ledger(Name="presigned", PermissionsMode="ALLOW_ALL", DeletionProtection=False)
    url = qldb.generate_presigned_url("list_ledgers", ExpiresIn=60)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    assert [ledger["Name"] for ledger in answer.json()["Ledgers"]] == ["presigned"]
    # A URL changed after signing no longer holds.
    answer = requests.get(url + "&MaxResults=1", timeout=10)
    assert answer.status_code == 403 and answer.json()["__type"] == "InvalidSignatureException"

    now = datetime.datetime.now(datetime.timezone.utc)
    kinesis = sign_at(kinesis_list_streams(secure_sluice), botocore.auth.SigV4QueryAuth, "kinesis", key_id, secret, now, expires=60)
    answer = requests.post(kinesis.url, headers=dict(kinesis.headers), data=b"", timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["StreamNames"] == []

    for signed_key, signed_secret, when, expected in [
        (key_id, secret + "x", now, "InvalidSignatureException"),
        ("AKIAUNKNOWNUNKNOWN00", secret, now, "UnrecognizedClientException"),
        # Signed 20 minutes ago for one minute: expired.
        (key_id, secret, now - datetime.timedelta(minutes=20), "AccessDeniedException"),
    ]:
        request = sign_at(kinesis_list_streams(secure_sluice), botocore.auth.SigV4QueryAuth, "kinesis", signed_key, signed_secret, when, expires=60)
        answer = requests.post(request.url, headers=dict(request.headers), data=b"", timeout=10)
        assert answer.status_code == 400, answer.text
        assert answer.json()["__type"] == expected, answer.text


def test_a_declared_payload_hash_must_be_the_body_s(secure_sluice):
    key_id, secret = secure_sluice.access_key
    now = datetime.datetime.now(datetime.timezone.utc)
    body = b'{"Limit": 1}'
    request = kinesis_list_streams(secure_sluice, body)
    request.headers["X-Amz-Content-SHA256"] = hashlib.sha256(body).hexdigest()
    sign_at(request, botocore.auth.SigV4Auth, "kinesis", key_id, secret, now)
    answer = requests.post(request.url, headers=dict(request.headers), data=body, timeout=10)
    assert answer.status_code == 200, answer.text
    answer = requests.post(request.url, headers=dict(request.headers), data=b'{"Limit": 2}', timeout=10)
    assert answer.status_code == 400
    assert answer.json()["__type"] == "InvalidSignatureException"
    assert "x-amz-content-sha256" in answer.json()["message"]

    unsigned = kinesis_list_streams(secure_sluice, body)
    unsigned.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
    sign_at(unsigned, botocore.auth.SigV4Auth, "kinesis", key_id, secret, now)
    answer = requests.post(unsigned.url, headers=dict(unsigned.headers), data=b'{"Limit": 3}', timeout=10)
    assert answer.status_code == 200, answer.text


def hmac_sha256(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256)


def chunked(payload, seed, secret, amz_date, scope, chunk_bytes, tamper=False):
    """AWS's `aws-chunked` body: each chunk's signature chains from the previous one's."""
    date, region, service, _ = scope.split("/")
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac_sha256(key, part).digest()
    previous, body = seed, b""
    chunks = [payload[i:i + chunk_bytes] for i in range(0, len(payload), chunk_bytes)] + [b""]
    for chunk in chunks:
        to_sign = "\n".join([
            "AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous,
            hashlib.sha256(b"").hexdigest(), hashlib.sha256(chunk).hexdigest(),
        ])
        previous = hmac_sha256(key, to_sign).hexdigest()
        # Tampered: one byte of each chunk changed after it was signed.
        sent = b"X" + chunk[1:] if tamper and chunk else chunk
        body += f"{len(sent):x};chunk-signature={previous}\r\n".encode() + sent + b"\r\n"
    return body


def test_a_chunked_payload_is_checked_chunk_by_chunk(secure_sluice):
    key_id, secret = secure_sluice.access_key
    kinesis = signed_client(secure_sluice, "kinesis", key_id, secret)
    kinesis.create_stream(StreamName="chunked", ShardCount=1)
    payload = json.dumps({"StreamName": "chunked", "Data": "b25lIHR3byB0aHJlZQ==", "PartitionKey": "one"}).encode()

    def send(tamper):
        request = AWSRequest(
            method="POST",
            url=secure_sluice.aws_url + "/",
            headers={
                "X-Amz-Target": "Kinesis_20131202.PutRecord",
                "Content-Type": "application/x-amz-json-1.1",
                "Content-Encoding": "aws-chunked",
                "X-Amz-Content-SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                "X-Amz-Decoded-Content-Length": str(len(payload)),
            },
        )
        sign_at(request, botocore.auth.SigV4Auth, "kinesis", key_id, secret, datetime.datetime.now(datetime.timezone.utc))
        authorization = request.headers["Authorization"]
        seed = authorization.split("Signature=")[1]
        scope = authorization.split("Credential=")[1].split(",")[0].split("/", 1)[1]
        body = chunked(payload, seed, secret, request.headers["X-Amz-Date"], scope, 16, tamper)
        return requests.post(request.url, headers=dict(request.headers), data=body, timeout=10)

    answer = send(tamper=False)
    assert answer.status_code == 200, answer.text
    assert answer.json()["ShardId"] == "shardId-000000000000"
    answer = send(tamper=True)
    assert answer.status_code == 400
    assert answer.json()["__type"] == "InvalidSignatureException"
    iterator = kinesis.get_shard_iterator(StreamName="chunked", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON")
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert [record["Data"] for record in records] == [b"one two three"]


def test_sigv4_on_the_search_port(secure_sluice):
    key_id, secret = secure_sluice.access_key
    now = datetime.datetime.now(datetime.timezone.utc)

    def signed(method, path, body, signing_secret):
        request = AWSRequest(method=method, url=secure_sluice.es_url + path, data=body,
                             headers={"Content-Type": "application/json"} if body else {})
        return sign_at(request, botocore.auth.SigV4Auth, "es", key_id, signing_secret, now)

    request = signed("PUT", "/signed/_doc/1?refresh=true", b'{"n": 1}', secret)
    answer = requests.put(request.url, headers=dict(request.headers), data=request.body, timeout=10)
    assert answer.status_code == 201, answer.text
    request = signed("GET", "/_security/_authenticate", None, secret)
    answer = requests.get(request.url, headers=dict(request.headers), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["username"] == key_id
    assert answer.json()["authentication_realm"]["type"] == "sigv4"

    request = signed("GET", "/signed/_search", None, secret + "x")
    answer = requests.get(request.url, headers=dict(request.headers), timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "security_exception"
    assert answer.headers["www-authenticate"].startswith("Basic ")


def test_listening_beyond_loopback_needs_tls_and_authentication(tmp_path):
    for extra, missing in [([], "TLS and authentication"), (["--security"], "TLS")]:
        refused = subprocess.run(
            [str(BINARY), "up", "--data-dir", str(tmp_path / "exposed"), "--bind", "0.0.0.0",
             "--es-port", "0", "--aws-port", "0", "--ui-port", "0", *extra],
            capture_output=True, text=True, timeout=60,
        )
        assert refused.returncode != 0
        message = refused.stderr
        assert f"refusing to listen on 0.0.0.0 without {missing}:" in message, message
        assert "--insecure" in message and "--bind 127.0.0.1" in message, message
