"""The crash test: several threads send `_bulk` requests (unique ids, and external-version
overwrites and deletes of their own ids) while the server is killed with SIGKILL; after a restart
on the same data directory every acknowledged write must be there with at least its acknowledged
version, every acknowledged delete must still hold (and refuse stale external writes), nothing
twice, nothing that was never sent, and the server must take writes again. The cycle (load, kill,
restart, check) repeats, and what one restart recovered must survive the next crash."""

import http.client
import json
import threading
import time
import urllib.parse

INDEX = "crash"
ROUNDS = 3
LOAD_THREADS = 4
UNIQUE_ITEMS_PER_BULK = 40
EXTERNAL_ITEMS_PER_BULK = 10
# Each thread overwrites this many ids of its own with ever higher external versions; every
# DELETE_EVERY-th external operation is a delete.
EXTERNAL_IDS_PER_THREAD = 15
DELETE_EVERY = 4
STALE_WRITES_CHECKED_PER_ROUND = 20
LOAD_BEFORE_KILL_S = 1.5
MIN_ACKED_BULKS_BEFORE_KILL = 4
DEADLINE_S = 60
TIMEOUT_S = 30


class Connection:
    """A keep-alive connection to the search API."""

    def __init__(self, server):
        url = urllib.parse.urlsplit(server.es_url)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=TIMEOUT_S)

    def call(self, method, path, body=None, content_type="application/json"):
        self.connection.request(method, path, body=body, headers={"Content-Type": content_type})
        response = self.connection.getresponse()
        return response.status, json.loads(response.read() or b"null")

    def close(self):
        self.connection.close()


class Model:
    """What the clients sent and what the server acknowledged, across all rounds."""

    def __init__(self):
        self.lock = threading.Lock()
        self.attempted = {}  # id -> [(kind, version) sent, in order]; kind is "index" or "delete"
        self.acked = {}  # id -> (version, kind) of the acknowledged operation with the highest version
        self.in_flight = {}  # id -> {(kind, version) sent in requests that got no answer}
        self.settled = {}  # id -> version found after a restart (None: absent), for older rounds
        self.acked_bulks = 0


def load(server, model, round_number, thread_number, stop):
    """Sends bulks until the server dies or `stop` is set; records every acknowledged item."""
    connection = Connection(server)
    sequence = 0
    external_version = round_number * 1_000_000
    try:
        while not stop.is_set():
            items = []  # (id, kind, version)
            lines = []
            for _ in range(UNIQUE_ITEMS_PER_BULK):
                doc_id = f"u-{round_number}-{thread_number}-{sequence}"
                sequence += 1
                items.append((doc_id, "index", 1))
                lines.append(json.dumps({"create": {"_index": INDEX, "_id": doc_id}}))
                lines.append(json.dumps({"kind": "unique", "round": round_number, "n": sequence}))
            for _ in range(EXTERNAL_ITEMS_PER_BULK):
                external_version += 1
                doc_id = f"x-{round_number}-{thread_number}-{external_version % EXTERNAL_IDS_PER_THREAD}"
                kind = "delete" if external_version % DELETE_EVERY == 0 else "index"
                items.append((doc_id, kind, external_version))
                lines.append(json.dumps({kind: {"_index": INDEX, "_id": doc_id, "version": external_version, "version_type": "external"}}))
                if kind == "index":
                    lines.append(json.dumps({"kind": "external", "v": external_version}))
            with model.lock:
                for doc_id, kind, version in items:
                    model.attempted.setdefault(doc_id, []).append((kind, version))
                    model.in_flight.setdefault(doc_id, set()).add((kind, version))
            body = ("\n".join(lines) + "\n").encode()
            status, response = connection.call("POST", "/_bulk", body, "application/x-ndjson")
            assert status == 200, response
            with model.lock:
                model.acked_bulks += 1
                for (doc_id, kind, version), item in zip(items, response["items"], strict=True):
                    result = next(iter(item.values()))
                    model.in_flight[doc_id].discard((kind, version))
                    # A delete of a missing document is acknowledged too: 404 with result not_found.
                    acknowledged = result["status"] in (200, 201) or (
                        kind == "delete" and result["status"] == 404 and result.get("result") == "not_found"
                    )
                    if acknowledged:
                        assert result["_id"] == doc_id and result["_version"] == version, result
                        if version > model.acked.get(doc_id, (0, None))[0]:
                            model.acked[doc_id] = (version, kind)
    except (OSError, http.client.HTTPException):
        pass  # The server was killed: the request in flight stays in `in_flight`.
    finally:
        connection.close()


def run_load_and_kill(server, model, round_number):
    stop = threading.Event()
    threads = [
        threading.Thread(target=load, args=(server, model, round_number, n, stop)) for n in range(LOAD_THREADS)
    ]
    started = time.monotonic()
    acked_before = model.acked_bulks
    for thread in threads:
        thread.start()
    # Let the load run for a while and make sure some of it was acknowledged before the kill.
    while time.monotonic() - started < DEADLINE_S:
        if time.monotonic() - started >= LOAD_BEFORE_KILL_S and model.acked_bulks - acked_before >= MIN_ACKED_BULKS_BEFORE_KILL:
            break
        assert all(t.is_alive() for t in threads), "a load thread stopped before the kill"
        stop.wait(0.02)
    assert model.acked_bulks - acked_before >= MIN_ACKED_BULKS_BEFORE_KILL
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(TIMEOUT_S)
        assert not thread.is_alive()


def fetch_versions(connection, ids):
    """id -> version for the ids that exist, through `_mget` in chunks."""
    found = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        status, response = connection.call("POST", f"/{INDEX}/_mget", json.dumps({"ids": chunk}))
        assert status == 200, response
        for doc in response["docs"]:
            assert "error" not in doc, doc
            if doc["found"]:
                found[doc["_id"]] = doc["_version"]
    return found


def check_after_restart(server, model):
    connection = Connection(server)
    ids = sorted(model.attempted)
    found = fetch_versions(connection, ids)
    problems = []
    for doc_id in ids:
        version = found.get(doc_id)
        if doc_id in model.settled:
            if version != model.settled[doc_id]:
                problems.append(f"{doc_id}: recovered earlier as {model.settled[doc_id]}, now {version}")
            continue
        sent = model.attempted[doc_id]
        unanswered = model.in_flight.get(doc_id, set())
        acked, acked_kind = model.acked.get(doc_id, (0, None))
        if version is not None:
            if ("index", version) not in sent:
                problems.append(f"{doc_id}: found version {version} that was never sent")
            elif len(sent) == 1 and acked and version != acked:
                problems.append(f"{doc_id}: written once, acknowledged version {acked}, found {version}")
            elif version < acked:
                problems.append(f"{doc_id}: acknowledged {acked_kind} version {acked}, found older {version}")
            elif version != acked and ("index", version) not in unanswered:
                problems.append(f"{doc_id}: found version {version}, neither acknowledged nor in flight")
        elif acked_kind == "index" and not any(k == "delete" and v > acked for k, v in unanswered):
            problems.append(f"{doc_id}: acknowledged with version {acked}, lost")
    assert not problems, f"{len(problems)} problems, first: {problems[:10]}"
    # Nothing twice and nothing unknown: the index holds exactly the documents found by id.
    status, response = connection.call("POST", f"/{INDEX}/_refresh")
    assert status == 200, response
    status, response = connection.call("GET", f"/{INDEX}/_count")
    assert status == 200, response
    assert response["count"] == len(found), (response["count"], len(found))
    # An acknowledged delete keeps refusing stale external writes after the crash.
    deleted = [
        (doc_id, version)
        for doc_id, (version, kind) in sorted(model.acked.items())
        if kind == "delete" and doc_id not in found and doc_id not in model.settled
    ]
    for doc_id, version in deleted[:STALE_WRITES_CHECKED_PER_ROUND]:
        status, response = connection.call(
            "PUT", f"/{INDEX}/_doc/{doc_id}?version={version}&version_type=external", json.dumps({"stale": True})
        )
        assert status == 409, (doc_id, version, response)
    # Whatever this restart recovered must survive the next crash as it is.
    for doc_id in ids:
        model.settled.setdefault(doc_id, found.get(doc_id))
    model.in_flight.clear()
    connection.close()
    return len(found)


def check_takes_writes(server, round_number):
    connection = Connection(server)
    status, response = connection.call("PUT", f"/{INDEX}/_doc/after-{round_number}?refresh=true", json.dumps({"after": round_number}))
    assert status == 201, response
    status, response = connection.call("GET", f"/{INDEX}/_doc/after-{round_number}")
    assert status == 200 and response["_source"] == {"after": round_number}
    connection.close()


def test_acknowledged_bulk_writes_survive_kill_9(sluice_factory, tmp_path):
    data_dir = tmp_path / "crash-data"
    model = Model()
    server = sluice_factory(data_dir)
    connection = Connection(server)
    status, response = connection.call("PUT", f"/{INDEX}", json.dumps({"settings": {"number_of_replicas": 0}}))
    assert status == 200, response
    connection.close()
    documents = 0
    for round_number in range(1, ROUNDS + 1):
        run_load_and_kill(server, model, round_number)
        server = sluice_factory(data_dir)
        documents = check_after_restart(server, model)
        check_takes_writes(server, round_number)
        model.attempted[f"after-{round_number}"] = [("index", 1)]
        model.settled[f"after-{round_number}"] = 1
    assert len(model.acked) > ROUNDS * MIN_ACKED_BULKS_BEFORE_KILL * UNIQUE_ITEMS_PER_BULK // 2
    # Every id whose last acknowledged operation is an index is there (deleted ones are not).
    assert documents >= sum(1 for _, kind in model.acked.values() if kind == "index")
    server.stop()


def test_acknowledged_index_metadata_survives_kill_9(sluice_factory, tmp_path):
    """Created indices, put mappings, dynamic mappings of acknowledged documents and index deletes
    are durable once acknowledged, like documents."""
    data_dir = tmp_path / "metadata-data"
    server = sluice_factory(data_dir)
    connection = Connection(server)
    requests = [
        ("PUT", "/made", {"settings": {"number_of_replicas": 0}, "mappings": {"properties": {"k": {"type": "keyword"}}}}),
        ("PUT", "/made/_mapping", {"properties": {"n": {"type": "long"}}}),
        ("PUT", "/dynamic/_doc/1", {"when": "2024-01-01", "x": 5}),
        ("PUT", "/strict", {"mappings": {"dynamic": "strict", "properties": {"a": {"type": "long"}}}}),
        ("PUT", "/gone/_doc/1", {"a": 1}),
        ("DELETE", "/gone", None),
    ]
    for method, path, body in requests:
        status, response = connection.call(method, path, None if body is None else json.dumps(body))
        assert status in (200, 201), (path, response)
    connection.close()
    server.kill()

    server = sluice_factory(data_dir)
    connection = Connection(server)
    status, response = connection.call("GET", "/made/_mapping")
    assert response["made"]["mappings"]["properties"] == {"k": {"type": "keyword"}, "n": {"type": "long"}}
    status, response = connection.call("GET", "/made/_settings")
    assert response["made"]["settings"]["index"]["number_of_replicas"] == "0"
    status, response = connection.call("GET", "/dynamic/_mapping")
    assert response["dynamic"]["mappings"]["properties"] == {"when": {"type": "date"}, "x": {"type": "long"}}
    status, response = connection.call("PUT", "/dynamic/_doc/2", json.dumps({"x": "not a long"}))
    assert status == 400 and response["error"]["type"] == "document_parsing_exception"
    status, response = connection.call("PUT", "/strict/_doc/1", json.dumps({"b": 1}))
    assert status == 400 and response["error"]["type"] == "strict_dynamic_mapping_exception"
    status, response = connection.call("GET", "/gone/_doc/1")
    assert status == 404 and response["error"]["type"] == "index_not_found_exception"
    connection.close()
