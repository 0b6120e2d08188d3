"""Stopping the real server: a request still in flight holds the first SIGTERM's grace period,
and a second SIGTERM during it exits at once. (A SIGTERM during a long import is in
test_ledger_imports.py.)"""

import signal
import socket
import time
from urllib.parse import urlparse

# 128 + SIGTERM: the status after a second stop signal.
EXIT_SECOND_SIGNAL = 143


def test_a_second_sigterm_exits_at_once(sluice):
    url = urlparse(sluice.es_url)
    # A request whose body never finishes arriving: the graceful shutdown waits for it.
    client = socket.create_connection((url.hostname, url.port))
    client.sendall(b"PUT /slow/_doc/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Expect: 100-continue\r\nContent-Length: 1000\r\n\r\n")
    # The server says 100 Continue once it reads the body: the request is then in flight.
    client.settimeout(30)
    assert client.recv(64).startswith(b"HTTP/1.1 100 Continue")
    client.sendall(b'{"a":')
    sluice.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while not any("shutting down" in line for line in sluice.output):
        assert time.monotonic() < deadline, "".join(sluice.output)
        time.sleep(0.05)
    assert sluice.process.poll() is None, "the request in flight should hold the grace period"
    started = time.monotonic()
    sluice.process.send_signal(signal.SIGTERM)
    sluice.process.wait(5)
    assert time.monotonic() - started < 5
    assert sluice.process.returncode == EXIT_SECOND_SIGNAL
    assert any("second stop signal" in line for line in sluice.output), "".join(sluice.output)
    client.close()
