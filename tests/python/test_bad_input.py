"""Hostile and broken input on raw HTTP: bodies over the limit, malformed bulk bodies, wrong
methods and unknown URLs, non-object bodies, huge ids, deep nesting, invalid parameters, and a
bounded seeded fuzz loop. Every answer must be a well-formed HTTP response with an
Elasticsearch-shaped error (or an empty HEAD body), never a hang, a dropped connection or a 5xx,
and the server must stay up."""

import http.client
import json
import random
import socket
import threading
import urllib.parse

import pytest

TIMEOUT_S = 30
BODY_BYTES_MAX = 100 * 1024 * 1024


def call(server, method, path, body=None, headers=None):
    """One request on a fresh connection: (status, headers, raw body)."""
    url = urllib.parse.urlsplit(server.es_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT_S)
    try:
        all_headers = {"Content-Type": "application/json"}
        all_headers.update(headers or {})
        if isinstance(body, str):
            body = body.encode()
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def assert_es_error(status, raw, expected_status=400, expected_type=None):
    """Elasticsearch's error shape: `{"error": {"root_cause", "type", "reason"}, "status"}`."""
    assert status == expected_status, raw
    body = json.loads(raw)
    assert body["status"] == expected_status
    error = body["error"]
    assert isinstance(error["type"], str) and isinstance(error["reason"], str) and error["reason"]
    assert error["root_cause"] and error["root_cause"][0]["type"] == error["type"]
    if expected_type is not None:
        assert error["type"] == expected_type, error
    return body


def assert_alive(server):
    status, _, raw = call(server, "GET", "/")
    assert status == 200 and json.loads(raw)["tagline"] == "You Know, for Search"
    assert server.process.poll() is None


def ndjson(*lines):
    return "".join(json.dumps(line) + "\n" for line in lines)


def send_oversized_body(server, path, chunked):
    """Streams one byte more than the limit, reusing one 1 MiB buffer, while another thread reads
    the answer: the server may answer and close before the whole body is sent."""
    url = urllib.parse.urlsplit(server.es_url)
    sock = socket.create_connection((url.hostname, url.port), timeout=TIMEOUT_S)
    received = bytearray()

    def read_answer():
        """Reads until the connection closes or one whole response (by its Content-Length) is in."""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                received.extend(data)
                head, separator, body = bytes(received).partition(b"\r\n\r\n")
                if separator:
                    lengths = [
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ]
                    if lengths and len(body) >= lengths[0]:
                        return
        except OSError:
            return

    reader = threading.Thread(target=read_answer)
    reader.start()
    length = BODY_BYTES_MAX + 1
    chunk = b" " * (1 << 20)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    try:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()
        )
        sent = 0
        while sent < length:
            piece = chunk[: min(len(chunk), length - sent)]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # The server answered early and closed: the answer is what matters.
    reader.join(TIMEOUT_S)
    assert not reader.is_alive(), "no answer to an oversized body"
    sock.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_100_mb_is_413(shared_sluice, chunked):
    status, body = send_oversized_body(shared_sluice, "/_bulk", chunked)
    parsed = json.loads(body)
    assert status == 413 and parsed["status"] == 413
    assert parsed["error"]["type"] and parsed["error"]["reason"]
    assert_alive(shared_sluice)


def test_malformed_bulk_bodies_fail_the_request_with_a_400(shared_sluice):
    index = "bad-bulk"
    for body in (
        '{"index":{"_index":"bad-bulk"}\n{"a":1}\n',  # truncated action line
        "garbage\n{}\n",
        "[1]\n{}\n",
        '"index"\n{}\n',
        '{"explode":{"_index":"bad-bulk"}}\n{}\n',
        '{"index":{"_index":"bad-bulk"},"delete":{"_index":"bad-bulk","_id":"1"}}\n{}\n',
        '{"index":[]}\n{}\n',
        '{"index":{"_index":"bad-bulk","_id":"1","bogus":true}}\n{}\n',
        '{"index":{"_index":"bad-bulk","_id":"1","version":"abc"}}\n{}\n',
        '{"index":{"_index":"bad-bulk","_id":"1"}}\n',  # action without its source
        "\xff\xfe\n{}\n",
        "",
        "\n\n\n",
    ):
        status, _, raw = call(shared_sluice, "POST", "/_bulk", body.encode("utf-8", "surrogateescape"),
                              {"Content-Type": "application/x-ndjson"})
        assert_es_error(status, raw, 400)
    # A request that failed as a whole wrote nothing.
    call(shared_sluice, "POST", f"/{index}/_refresh")
    status, _, raw = call(shared_sluice, "GET", f"/{index}/_count")
    assert status == 404 or json.loads(raw)["count"] == 0
    assert_alive(shared_sluice)


def test_bad_bulk_items_fail_alone(shared_sluice):
    index = "bad-items"
    body = (
        ndjson({"index": {"_index": index, "_id": "ok-1"}}, {"a": 1})
        + '{"index":{"_index":"bad-items","_id":"broken"}}\n{"a": \n'
        + ndjson(
            {"index": {"_index": index, "_id": "array"}}, [1, 2],
            {"delete": {"_index": index}},
            {"update": {"_index": index, "_id": "ok-1"}}, {"doc": 5},
            {"index": {"_index": "BAD-NAME", "_id": "1"}}, {"a": 1},
            {"index": {"_index": index, "_id": "x" * 513}}, {"a": 1},
            {"index": {"_index": index, "_id": "ok-2"}}, {"a": 2},
        )
    )
    status, _, raw = call(shared_sluice, "POST", "/_bulk?refresh=true", body, {"Content-Type": "application/x-ndjson"})
    assert status == 200
    response = json.loads(raw)
    assert response["errors"] is True
    statuses = [next(iter(item.values()))["status"] for item in response["items"]]
    assert statuses == [201, 400, 400, 400, 400, 400, 400, 201]
    for item in response["items"][1:-1]:
        error = next(iter(item.values()))["error"]
        assert error["type"] and error["reason"]
    status, _, raw = call(shared_sluice, "GET", f"/{index}/_count")
    assert json.loads(raw)["count"] == 2


@pytest.mark.parametrize(
    "method, path",
    [
        ("DELETE", "/"),
        ("PATCH", "/wrong-methods/_doc/1"),
        ("DELETE", "/_bulk"),
        ("PUT", "/_search"),
        ("DELETE", "/wrong-methods/_search"),
        ("GET", "/wrong-methods/_update/1"),
        ("PUT", "/_cat/indices"),
        ("GET", "/_nope"),
        ("GET", "/_cat/nothing"),
        ("GET", "/wrong-methods/_nothing"),
        ("POST", "/a/b/c/d/e/f"),
        ("GET", "/wrong-methods/_doc/1/extra"),
    ],
)
def test_wrong_methods_and_unknown_urls_get_an_error_not_a_hang(shared_sluice, method, path):
    call(shared_sluice, "PUT", "/wrong-methods")
    status, _, raw = call(shared_sluice, method, path, b"{}")
    assert status in (400, 404, 405), raw
    body = json.loads(raw)
    assert body["status"] == status and body["error"]
    assert_alive(shared_sluice)


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "7", "null", "true"])
def test_non_object_bodies_are_400(shared_sluice, body):
    call(shared_sluice, "PUT", "/non-object")
    for method, path in (
        ("PUT", "/non-object/_doc/1"),
        ("POST", "/non-object/_doc"),
        ("POST", "/non-object/_update/1"),
        ("POST", "/non-object/_search"),
        ("POST", "/non-object/_count"),
        ("POST", "/non-object/_mget"),
        ("PUT", "/non-object-new"),
        ("PUT", "/non-object/_mapping"),
        ("PUT", "/non-object/_settings"),
    ):
        status, _, raw = call(shared_sluice, method, path, body)
        assert_es_error(status, raw, 400)
    status, _, raw = call(shared_sluice, "GET", "/non-object/_doc/1")
    assert status == 404 and json.loads(raw)["found"] is False
    status, _, _ = call(shared_sluice, "HEAD", "/non-object-new")
    assert status == 404


def test_huge_ids(shared_sluice):
    index = "huge-ids"
    longest = "i" * 512
    status, _, raw = call(shared_sluice, "PUT", f"/{index}/_doc/{longest}", '{"a":1}')
    assert status == 201, raw
    too_long = "i" * 513
    status, _, raw = call(shared_sluice, "PUT", f"/{index}/_doc/{too_long}", '{"a":1}')
    body = assert_es_error(status, raw, 400, "action_request_validation_exception")
    assert "is too long, must be no longer than 512 bytes but was: 513" in body["error"]["reason"]
    # 171 three-byte characters: 513 bytes in only 171 characters.
    multibyte = urllib.parse.quote("€" * 171)
    status, _, raw = call(shared_sluice, "PUT", f"/{index}/_doc/{multibyte}", '{"a":1}')
    assert_es_error(status, raw, 400, "action_request_validation_exception")
    status, _, raw = call(shared_sluice, "POST", f"/{index}/_update/{too_long}", '{"doc":{"a":1},"doc_as_upsert":true}')
    assert_es_error(status, raw, 400)
    status, _, raw = call(shared_sluice, "GET", f"/{index}/_doc/{'x' * 2000}")
    assert status == 404 and json.loads(raw)["found"] is False
    status, _, raw = call(shared_sluice, "GET", f"/{index}/_doc/{longest}")
    assert status == 200 and json.loads(raw)["_id"] == longest
    assert_alive(shared_sluice)


def test_deep_nesting(shared_sluice):
    index = "deep"
    very_deep = '{"a":' * 5000 + "1" + "}" * 5000
    deep_array = "[" * 100_000 + "]" * 100_000
    for method, path, body in (
        ("PUT", f"/{index}/_doc/1", very_deep),
        ("POST", f"/{index}/_search", very_deep),
        ("POST", f"/{index}/_search", deep_array),
        ("PUT", f"/{index}/_doc/2", '{"a":' + deep_array + "}"),
        ("POST", f"/{index}/_update/1", '{"doc":' + very_deep + "}"),
        ("PUT", f"/{index}-new", '{"mappings":' + very_deep + "}"),
    ):
        status, _, raw = call(shared_sluice, method, path, body)
        assert_es_error(status, raw, 400)
    status, _, raw = call(
        shared_sluice, "POST", "/_bulk", ndjson({"index": {"_index": index, "_id": "3"}}) + very_deep + "\n",
        {"Content-Type": "application/x-ndjson"},
    )
    assert status == 200 and json.loads(raw)["items"][0]["index"]["status"] == 400
    # Within the parser's limits but deeper than the mapping allows.
    mapping_too_deep = '{"a":' * 30 + "1" + "}" * 30
    status, _, raw = call(shared_sluice, "PUT", f"/{index}/_doc/4", mapping_too_deep)
    body = assert_es_error(status, raw, 400)
    assert "Limit of mapping depth [20] has been exceeded" in body["error"]["reason"]
    status, _, raw = call(shared_sluice, "GET", f"/{index}/_doc/4")
    assert status == 404
    assert_alive(shared_sluice)


@pytest.mark.parametrize(
    "method, path, body, error_type",
    [
        ("PUT", "/params/_doc/1?version=abc&version_type=external", "{}", "illegal_argument_exception"),
        ("PUT", "/params/_doc/1?version=-3&version_type=external", "{}", "illegal_argument_exception"),
        ("PUT", "/params/_doc/1?version=99999999999999999999&version_type=external", "{}", "illegal_argument_exception"),
        ("PUT", "/params/_doc/1?version=1&version_type=sideways", "{}", "illegal_argument_exception"),
        ("PUT", "/params/_doc/1?version=1", "{}", "action_request_validation_exception"),
        ("PUT", "/params/_doc/1?if_seq_no=1", "{}", "action_request_validation_exception"),
        ("PUT", "/params/_doc/1?if_seq_no=x&if_primary_term=1", "{}", "illegal_argument_exception"),
        ("PUT", "/params/_doc/1?refresh=sometimes", "{}", "illegal_argument_exception"),
        ("PUT", "/params/_doc/1?op_type=upsert", "{}", "illegal_argument_exception"),
        ("POST", "/params/_update/1?version=2", '{"doc":{}}', "action_request_validation_exception"),
        ("POST", "/params/_search?size=abc", None, "illegal_argument_exception"),
        ("POST", "/params/_search?from=-2", None, "illegal_argument_exception"),
        ("POST", "/params/_search?size=100000", None, "illegal_argument_exception"),
        ("GET", "/params/_doc/1?refresh=maybe", None, "illegal_argument_exception"),
        ("GET", "/_cluster/health?wait_for_status=purple", None, "illegal_argument_exception"),
        ("PUT", "/params-new", '{"settings":{"number_of_shards":"x"}}', "illegal_argument_exception"),
        ("PUT", "/params-new", '{"bogus":1}', None),
        ("PUT", "/params-new", '{"mappings":{"properties":{"a":{"type":"nonsense"}}}}', "mapper_parsing_exception"),
        ("PUT", "/params/_settings", '{"index":{"number_of_shards":3}}', "illegal_argument_exception"),
        ("POST", "/params/_update/1", '{"doc":5}', None),
        ("POST", "/params/_update/1", '{"doc":{},"surprise":1}', None),
        ("POST", "/params/_update/1", "{}", "action_request_validation_exception"),
        ("POST", "/_mget", '{"docs":[{"_id":"1"}]}', "action_request_validation_exception"),
        ("PUT", "/params/_doc/1", None, None),
    ],
)
def test_invalid_params_are_400(shared_sluice, method, path, body, error_type):
    call(shared_sluice, "PUT", "/params")
    status, _, raw = call(shared_sluice, method, path, body)
    assert_es_error(status, raw, 400, error_type)
    status, _, raw = call(shared_sluice, "GET", "/params/_doc/1")
    assert status == 404
    status, _, raw = call(shared_sluice, "HEAD", "/params-new")
    assert status == 404


# The seeded fuzz loop: valid requests to the main endpoints, then mutated.
FUZZ_REQUESTS = 300
FUZZ_SEED = 20240501

SEEDS = [
    ("PUT", "/fuzz/_doc/{id}", {"title": "hello", "n": 3, "tags": ["a", "b"], "when": "2024-01-01", "o": {"x": 1.5}}),
    ("POST", "/fuzz/_doc", {"title": "auto", "flag": True}),
    ("POST", "/fuzz/_update/{id}", {"doc": {"n": 4}, "doc_as_upsert": True}),
    ("POST", "/fuzz/_search", {"query": {"term": {"title": "hello"}}, "from": 0, "size": 5}),
    ("POST", "/fuzz/_count", {"query": {"ids": {"values": ["1", "2"]}}}),
    ("POST", "/_mget", {"docs": [{"_index": "fuzz", "_id": "1"}]}),
    ("PUT", "/fuzz-{id}", {"settings": {"number_of_replicas": 0}, "mappings": {"properties": {"a": {"type": "keyword"}}}}),
    ("PUT", "/fuzz/_mapping", {"properties": {"k": {"type": "keyword"}}}),
    ("POST", "/_bulk", None),
    ("GET", "/fuzz/_doc/{id}", None),
    ("HEAD", "/fuzz/_doc/{id}", None),
    ("DELETE", "/fuzz/_doc/{id}", None),
    ("GET", "/_cat/indices?format=json", None),
    ("GET", "/_cluster/health", None),
]
PARAMS = ["refresh", "version", "version_type", "if_seq_no", "if_primary_term", "op_type", "size", "from", "_source", "pretty"]
PARAM_VALUES = ["true", "false", "wait_for", "external", "external_gte", "-1", "0", "1", "18446744073709551616", "abc", "", "%ff", "create"]
JSON_VALUES = [None, True, False, 0, -1, 1.5, 1e308, 2**64, "", "x" * 1000, "\u0000", "\ud7ff", [], {}, [[[]]], {"a": {"b": None}}]


def mutate_json(rng, value):
    """A random structural change somewhere in a JSON value."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        choice = rng.random()
        if choice < 0.3:
            value[key] = rng.choice(JSON_VALUES)
        elif choice < 0.5:
            value.pop(key)
        elif choice < 0.6:
            value[rng.choice(["_id", "_source", "query", "doc", "", "a.b", "..", "x" * 300])] = rng.choice(JSON_VALUES)
        else:
            value[key] = mutate_json(rng, value[key])
        return value
    if isinstance(value, list) and value and rng.random() < 0.7:
        index = rng.randrange(len(value))
        value[index] = mutate_json(rng, value[index])
        return value
    return rng.choice(JSON_VALUES)


def mutate_bytes(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.3 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice < 0.5 and data:
            del data[rng.randrange(len(data)):]
        elif choice < 0.7:
            position = rng.randrange(len(data) + 1)
            data[position:position] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice < 0.85:
            position = rng.randrange(len(data) + 1)
            data[position:position] = rng.choice([b"{", b"}", b"[", b"]", b'"', b",", b":", b"\n", b"\\u", b"\xff"])
        else:
            data = bytearray(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))
    return bytes(data)


def bulk_body(rng):
    lines = []
    for n in range(rng.randint(1, 5)):
        action = rng.choice(["index", "create", "update", "delete"])
        meta = {"_index": rng.choice(["fuzz", "fuzz-bulk", "FUZZ"]), "_id": str(rng.randint(0, 20))}
        if rng.random() < 0.3:
            meta[rng.choice(["version", "if_seq_no", "version_type"])] = rng.choice(JSON_VALUES + ["external"])
        lines.append(json.dumps({action: meta}))
        if action == "update":
            lines.append(json.dumps({"doc": {"n": n}}))
        elif action != "delete":
            lines.append(json.dumps({"n": n, "s": "v"}))
    return ("\n".join(lines) + "\n").encode()


def fuzz_request(rng):
    method, template, seed_body = rng.choice(SEEDS)
    doc_id = rng.choice([str(rng.randint(0, 20)), urllib.parse.quote(bytes(rng.randrange(256) for _ in range(rng.randint(1, 12))))])
    path = template.replace("{id}", doc_id)
    if rng.random() < 0.4:
        separator = "&" if "?" in path else "?"
        path += separator + "&".join(
            f"{rng.choice(PARAMS)}={rng.choice(PARAM_VALUES)}" for _ in range(rng.randint(1, 3))
        )
    if seed_body is None and template == "/_bulk":
        body = bulk_body(rng)
    elif seed_body is None:
        body = None
    else:
        body = json.dumps(mutate_json(rng, json.loads(json.dumps(seed_body))) if rng.random() < 0.5 else seed_body).encode()
    if body is not None and rng.random() < 0.5:
        body = mutate_bytes(rng, body)
    return method, path, body


def test_fuzz_main_endpoints(shared_sluice):
    rng = random.Random(FUZZ_SEED)
    statuses = {}
    for number in range(FUZZ_REQUESTS):
        method, path, body = fuzz_request(rng)
        headers = {"Content-Type": "application/x-ndjson"} if "_bulk" in path else {}
        try:
            status, _, raw = call(shared_sluice, method, path, body, headers)
        except (OSError, http.client.HTTPException) as error:
            pytest.fail(f"request {number} {method} {path} {body!r:.200}: no well-formed answer: {error!r}")
        context = f"request {number}: {method} {path} {body!r:.300} -> {status} {raw!r:.300}"
        assert status < 500, context
        if method == "HEAD":
            assert raw == b"", context
        else:
            parsed = json.loads(raw)
            assert isinstance(parsed, (dict, list)), context
            not_found_document = status == 404 and ("found" in parsed or parsed.get("result") == "not_found")
            if status >= 400 and not not_found_document:
                assert parsed.get("status") == status and parsed.get("error"), context
        statuses[status] = statuses.get(status, 0) + 1
    # The loop exercised both successes and refusals.
    assert any(s < 300 for s in statuses) and any(s >= 400 for s in statuses), statuses
    assert_alive(shared_sluice)


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"POST /_bulk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["request-line", "content-length", "non-ascii-path", "header", "chunk-size"],
)
def test_malformed_http_gets_a_400_not_a_hang(shared_sluice, raw):
    url = urllib.parse.urlsplit(shared_sluice.es_url)
    with socket.create_connection((url.hostname, url.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(raw)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    assert_alive(shared_sluice)
