"""Bounded connections, against the real binary: idle and slow connections do not slow a normal
client down, unfinished bodies stay within the request buffer budget, an exhausted open-file
limit makes the server pause accepting instead of spinning and it recovers, and QLDB sessions
opened and never used keep no one out of a ledger."""

import http.client
import json
import os
import resource
import select
import socket
import threading
import time
import urllib.parse

import boto3
from pyqldb.driver.qldb_driver import QldbDriver

# The bound the issue sets for a normal client's answers while others hold connections.
ANSWER_BOUND_S = 1.0
# Generous bound on anything the tests wait for.
WAIT_S = 30


def address(url):
    parts = urllib.parse.urlsplit(url)
    return parts.hostname, parts.port


def timed_get(url, path="/"):
    """One GET on a fresh connection: (status, seconds it took)."""
    host, port = address(url)
    started = time.monotonic()
    connection = http.client.HTTPConnection(host, port, timeout=WAIT_S)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status, time.monotonic() - started
    finally:
        connection.close()


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the command.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_300_idle_and_slow_connections_do_not_slow_a_normal_client(sluice):
    es = address(sluice.es_url)
    aws = address(sluice.aws_url)
    silent, slow_heads, slow_bodies = [], [], []
    try:
        for n in range(100):
            silent.append(socket.create_connection(es if n % 2 else aws, timeout=WAIT_S))
        for _ in range(100):
            sock = socket.create_connection(es, timeout=WAIT_S)
            sock.sendall(b"POST /_bulk HTTP/1.1\r\nHost: sluice\r\n")
            slow_heads.append(sock)
        for _ in range(100):
            sock = socket.create_connection(es, timeout=WAIT_S)
            sock.sendall(b"POST /_bulk HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/x-ndjson\r\n"
                         b"Content-Length: 1000000\r\n\r\n{\"index\":")
            slow_bodies.append(sock)

        stop = threading.Event()

        def trickle():
            """Keeps the slow heads coming, one header byte at a time."""
            while not stop.is_set():
                for sock in slow_heads:
                    try:
                        sock.send(b"X")
                    except OSError:
                        pass
                stop.wait(0.2)

        trickler = threading.Thread(target=trickle)
        trickler.start()
        try:
            timings = []
            for _ in range(20):
                status, seconds = timed_get(sluice.es_url)
                assert status == 200
                timings.append(seconds)
                status, seconds = timed_get(sluice.aws_url, "/metrics")
                assert status == 200
                timings.append(seconds)
        finally:
            stop.set()
            trickler.join()
        assert max(timings) < ANSWER_BOUND_S, timings
    finally:
        for sock in silent + slow_heads + slow_bodies:
            sock.close()
    assert sluice.process.poll() is None


def test_eight_unfinished_99_mb_bodies_stay_within_the_request_buffer_budget(sluice_factory):
    budget = 256 * 1024 * 1024
    server = sluice_factory(extra_args=["--request-buffer-bytes", str(budget)])
    length = 99_000_000
    first_part = b" " * 65536
    rss_before = rss_bytes(server.process.pid)

    sockets = []
    for _ in range(8):
        sock = socket.create_connection(address(server.es_url), timeout=WAIT_S)
        sock.sendall(f"POST /_bulk HTTP/1.1\r\nHost: sluice\r\nContent-Type: application/x-ndjson\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode() + first_part)
        sockets.append(sock)

    # Refusals come at once, before the bodies are read; admitted bodies get no answer yet.
    answers = {}
    deadline = time.monotonic() + 10
    while len(answers) < 6 and time.monotonic() < deadline:
        readable, _, _ = select.select([s for s in sockets if s not in answers], [], [], 0.5)
        for sock in readable:
            answers[sock] = sock.recv(65536)
    admitted = [sock for sock in sockets if sock not in answers]
    # 256 MiB holds two bodies of 99 MB, not three.
    assert len(admitted) == 2 and len(answers) == 6, answers
    for raw in answers.values():
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 429 "), raw
        error = json.loads(body)
        assert error["status"] == 429
        assert error["error"]["type"] == "es_rejected_execution_exception"
        assert error["error"]["root_cause"][0]["type"] == "es_rejected_execution_exception"

    # The admitted bodies arrive whole but for their last byte, and stay unfinished.
    chunk = b" " * (1 << 20)
    for sock in admitted:
        remaining = length - len(first_part) - 1
        while remaining:
            piece = chunk[: min(len(chunk), remaining)]
            sock.sendall(piece)
            remaining -= len(piece)
    # What the kernel still buffers (a few MB at most) is not in the server's RSS yet; the
    # lower bound below allows for it.
    rss_after = rss_bytes(server.process.pid)
    growth = rss_after - rss_before
    assert growth > 150 * 1024 * 1024, f"the two admitted bodies were not buffered: {growth} bytes"
    assert growth < budget, f"RSS grew by {growth} bytes, beyond the {budget}-byte budget"

    for sock in sockets:
        sock.close()
    status, _ = timed_get(server.es_url)
    assert status == 200


def test_with_open_files_exhausted_the_server_pauses_accepts_and_recovers(sluice):
    pid = sluice.process.pid
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (128, 128))
    clients = [socket.create_connection(address(sluice.es_url), timeout=WAIT_S) for _ in range(200)]
    try:
        # The kernel queues connections the server cannot accept; wait until it ran out.
        deadline = time.monotonic() + WAIT_S
        while not any("accepting a connection failed" in line for line in list(sluice.output)):
            assert time.monotonic() < deadline, "".join(sluice.output)
            time.sleep(0.1)
        assert any("Too many open files" in line for line in sluice.output), "".join(sluice.output)

        # Over three seconds of failing accepts the server burns far less than a core: a spin
        # would use all three seconds.
        cpu_before = cpu_seconds(pid)
        time.sleep(3)
        cpu_used = cpu_seconds(pid) - cpu_before
        assert cpu_used < 1.0, f"{cpu_used} s of CPU in 3 s while accepts fail"
        failures_logged = sum("accepting a connection failed" in line for line in sluice.output)
        assert failures_logged == 1, "".join(sluice.output)
    finally:
        for client in clients:
            client.close()

    # Once the others are gone, a new client is answered.
    status, _ = timed_get(sluice.es_url)
    assert status == 200
    deadline = time.monotonic() + WAIT_S
    while not any("accepting connections again" in line for line in list(sluice.output)):
        assert time.monotonic() < deadline, "".join(sluice.output)
        time.sleep(0.1)


def test_sessions_opened_and_never_used_do_not_lock_a_ledger_out(sluice):
    kwargs = dict(endpoint_url=sluice.aws_url, region_name="us-east-1",
                  aws_access_key_id="sluice", aws_secret_access_key="sluice")
    boto3.client("qldb", **kwargs).create_ledger(Name="crowded", PermissionsMode="STANDARD")
    hoarder = boto3.client("qldb-session", **kwargs)
    # More sessions than the whole server used to allow (1,500), none ever used.
    for _ in range(1_600):
        hoarder.send_command(StartSession={"LedgerName": "crowded"})

    driver = QldbDriver("crowded", **kwargs)
    try:
        driver.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Things"))
        driver.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Things ?", {"n": 1}))
        rows = driver.execute_lambda(lambda txn: list(txn.execute_statement("SELECT n FROM Things")))
        assert [row["n"] for row in rows] == [1]
    finally:
        driver.close()
