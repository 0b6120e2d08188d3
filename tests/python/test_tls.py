"""TLS on both ports (`--tls-self-signed --tls-only`): the official clients trust the server's
certificate as a custom CA (`ca_certs=`, `verify=`), plain HTTP is refused, HTTP/2 is offered
by ALPN, and SIGHUP reloads the certificate without dropping a connection."""

import hashlib
import signal
import socket
import ssl
import time
from urllib.parse import urlparse

import pytest
import requests
from elastic_transport import TlsError
from elasticsearch import Elasticsearch

from conftest import aws_client


def endpoint(url):
    parsed = urlparse(url)
    return parsed.hostname, parsed.port


def test_elasticsearch_client_with_a_custom_ca(tls_sluice):
    assert tls_sluice.es_url.startswith("https://")
    client = Elasticsearch(tls_sluice.es_url, ca_certs=tls_sluice.ca_file)
    client.index(index="secure", id="1", document={"n": 1}, refresh=True)
    assert client.get(index="secure", id="1")["_source"] == {"n": 1}
    client.close()

    # A client that does not trust the certificate is refused by its own verification.
    untrusting = Elasticsearch(tls_sluice.es_url, max_retries=0)
    with pytest.raises(TlsError) as refused:
        untrusting.info()
    assert "CERTIFICATE_VERIFY_FAILED" in repr(refused.value)


def test_boto3_with_verify_a_ca_file(tls_sluice):
    kinesis = aws_client(tls_sluice, "kinesis", verify=tls_sluice.ca_file)
    kinesis.create_stream(StreamName="secure", ShardCount=1)
    assert "secure" in kinesis.list_streams()["StreamNames"]
    firehose = aws_client(tls_sluice, "firehose", verify=tls_sluice.ca_file)
    assert firehose.list_delivery_streams()["DeliveryStreamNames"] == []
    qldb = aws_client(tls_sluice, "qldb", verify=tls_sluice.ca_file)
    assert qldb.list_ledgers()["Ledgers"] == []


def test_plain_http_is_refused_in_the_client_shape(tls_sluice):
    host, port = endpoint(tls_sluice.es_url)
    answer = requests.get(f"http://{host}:{port}/", timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "illegal_argument_exception"
    assert "https://" in answer.json()["error"]["reason"]

    host, port = endpoint(tls_sluice.aws_url)
    answer = requests.post(
        f"http://{host}:{port}/",
        headers={"X-Amz-Target": "Kinesis_20131202.ListStreams", "Content-Type": "application/x-amz-json-1.1"},
        data="{}",
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["__type"] == "InvalidRequestException"


def tls_connect(url, ca_file, alpn):
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(alpn)
    host, port = endpoint(url)
    raw = socket.create_connection((host, port), timeout=10)
    return context.wrap_socket(raw, server_hostname="localhost")


def test_alpn_offers_http2_and_http1(tls_sluice):
    with tls_connect(tls_sluice.es_url, tls_sluice.ca_file, ["h2", "http/1.1"]) as secure:
        assert secure.selected_alpn_protocol() == "h2"
    with tls_connect(tls_sluice.es_url, tls_sluice.ca_file, ["http/1.1"]) as secure:
        assert secure.selected_alpn_protocol() == "http/1.1"


def printed_fingerprint(server):
    for line in server.output:
        if line.startswith("TLS certificate SHA-256 fingerprint: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError("no fingerprint printed:\n" + "".join(server.output))


def fingerprint_of(secure):
    digest = hashlib.sha256(secure.getpeercert(binary_form=True)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def test_the_printed_fingerprint_is_the_served_certificate_and_sighup_keeps_connections(tls_sluice):
    with tls_connect(tls_sluice.es_url, tls_sluice.ca_file, ["http/1.1"]) as secure:
        assert fingerprint_of(secure) == printed_fingerprint(tls_sluice)
        tls_sluice.process.send_signal(signal.SIGHUP)
        # The reload is logged; wait for it (bounded), then use the connection made before.
        deadline = time.monotonic() + 30
        while not any("reloaded the TLS certificate" in line for line in tls_sluice.output):
            assert time.monotonic() < deadline, "".join(tls_sluice.output)
            time.sleep(0.05)
        secure.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert secure.recv(64).startswith(b"HTTP/1.1 200")
    assert tls_sluice.process.poll() is None
