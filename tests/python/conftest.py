"""Shared fixtures: start the real `sluice` binary on ephemeral ports in a temporary data
directory, hand its endpoints to the test, and stop it (SIGTERM, then SIGKILL) afterwards."""

import itertools
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from elasticsearch import Elasticsearch
from opensearchpy import OpenSearch

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SLUICE_BIN", ROOT / "target" / "debug" / "sluice"))
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30


class Sluice:
    """A running `sluice up` process."""

    def __init__(self, data_dir, extra_args=()):
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args)
        self.process = None
        self.es_url = None
        self.aws_url = None
        self.ui_url = None
        self.output = []

    def start(self):
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} does not exist: build it with `cargo build -p sluice`")
        args = [str(BINARY), "up", "--data-dir", str(self.data_dir), "--es-port", "0", "--aws-port", "0", "--ui-port", "0", *self.extra_args]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line)
            match = re.search(r"search API \(Elasticsearch\): (https?://\S+)", line)
            if match:
                self.es_url = match.group(1)
            match = re.search(r"dashboard: (https?://\S+)", line)
            if match:
                self.ui_url = match.group(1)
            match = re.search(r"AWS APIs: (https?://\S+)", line)
            if match:
                self.aws_url = match.group(1)
            if self.es_url and self.aws_url:
                break
        if not (self.es_url and self.aws_url):
            self.kill()
            raise RuntimeError("sluice did not start:\n" + "".join(self.output))
        # Keep draining the output so the process never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _drain(self):
        for line in self.process.stdout:
            self.output.append(line)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode if self.process else None

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)


@pytest.fixture
def sluice(tmp_path):
    """A fresh server for one test."""
    server = Sluice(tmp_path / "data").start()
    yield server
    server.stop()


@pytest.fixture
def sluice_factory(tmp_path):
    """Starts servers on demand (for restarts and crash tests); stops them all at the end."""
    servers = []

    def start(data_dir=None, extra_args=()):
        server = Sluice(data_dir or tmp_path / "data", extra_args).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def shared_sluice(tmp_path_factory):
    """One server for all the tests of a module that do not restart it; each test uses its own
    indices, so the tests stay independent while the module pays for one start."""
    server = Sluice(tmp_path_factory.mktemp("shared") / "data").start()
    yield server
    server.stop()


_names = itertools.count()


def unique(prefix):
    """An index name of its own for each test, so tests on the shared server stay independent."""
    return f"{prefix}-{next(_names)}"


@pytest.fixture
def tls_sluice(tmp_path):
    """A fresh server serving TLS on both ports with a self-signed certificate (`--tls-only`);
    `server.ca_file` is the certificate for clients to trust."""
    server = Sluice(tmp_path / "data", ["--tls-self-signed", "--tls-only"]).start()
    server.ca_file = str(server.data_dir / "tls" / "self-signed-cert.pem")
    yield server
    server.stop()


def create_access_key(data_dir, *roles):
    """An access key made offline with `sluice security access-key create` (its roles, or the
    default `all_access`): its (id, secret)."""
    command = [str(BINARY), "security", "--data-dir", str(data_dir), "access-key", "create"]
    for role in roles:
        command += ["--role", role]
    created = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return (re.search(r"access key id: (\S+)", created).group(1),
            re.search(r"secret access key: (\S+)", created).group(1))


def admin_password(server):
    """The password the first start with `--security` printed for `admin`, or None."""
    printed = re.search(r"created user admin with password (\S+)", "".join(server.output))
    return printed.group(1) if printed else None


@pytest.fixture
def secure_sluice(tmp_path):
    """A fresh server with `--security`: `server.admin_password` is the password printed for the
    bootstrap user `admin`, `server.access_key` the (id, secret) of an all_access access key
    created with the CLI before the start."""
    data_dir = tmp_path / "data"
    access_key = create_access_key(data_dir)
    server = Sluice(data_dir, ["--security"]).start()
    server.admin_password = admin_password(server)
    server.access_key = access_key
    yield server
    server.stop()


def kill_9_while_writing(server, write_round, rounds, timeout_s):
    """Runs `write_round(n)` for n = 0, 1, … in a thread, kills `server` with SIGKILL once
    `rounds` rounds are done, and waits for the thread, whose write in flight then fails as a
    client's would (its error is expected and dropped)."""
    enough = threading.Event()

    def writer():
        try:
            for n in itertools.count():
                write_round(n)
                if n + 1 >= rounds:
                    enough.set()
        except Exception:  # noqa: BLE001 - the server was killed under us: expected
            pass
        finally:
            enough.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    assert enough.wait(timeout_s), "the writer made no progress"
    server.kill()
    thread.join(timeout_s)


def wait_until(condition, timeout_s=60, what="condition"):
    """Polls `condition` until it returns something true, and returns that; fails after
    `timeout_s` saying what it waited for."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def aws_client(server, service, resource=False, verify=None):
    """A boto3 client (or resource) for `service` on `server`'s AWS port. It retries nothing, so
    a test sees each error it expects at once. `verify` is a CA file for a TLS server."""
    make = boto3.resource if resource else boto3.client
    return make(
        service,
        endpoint_url=server.aws_url,
        verify=verify,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


# Aggregations over many documents take seconds in the debug binary: a generous client timeout.
CLIENT_TIMEOUT_S = 60


@pytest.fixture
def es(shared_sluice):
    """The official `elasticsearch` client on the module's shared server."""
    client = Elasticsearch(shared_sluice.es_url, request_timeout=CLIENT_TIMEOUT_S)
    yield client
    client.close()


@pytest.fixture
def opensearch(shared_sluice):
    """`opensearch-py` on the module's shared server."""
    client = OpenSearch(hosts=[shared_sluice.es_url], timeout=CLIENT_TIMEOUT_S)
    yield client
    client.close()
