"""Crash tests: kill -9 the real binary while pyqldb commits a stream of transactions (one session,
then many at once, so commits are grouped), restart it, and
check that the chain verifies (with `sluice ledger verify`, which re-checks every hash on the
client), that every acknowledged transaction is there, and that none is there in part."""

import collections
import subprocess
import threading

import boto3
from botocore.config import Config
from pyqldb.config.retry_config import RetryConfig
from pyqldb.driver.qldb_driver import QldbDriver

from conftest import BINARY

LEDGER = "crash"
DOCUMENTS_PER_TRANSACTION = 3
ACKNOWLEDGED_BEFORE_KILL = 40


def aws_kwargs(url):
    return dict(endpoint_url=url, region_name="us-east-1",
                aws_access_key_id="sluice", aws_secret_access_key="sluice")


def test_kill_9_during_commits_loses_no_acknowledged_transaction(sluice_factory, tmp_path):
    data_dir = tmp_path / "crash-data"
    server = sluice_factory(data_dir)
    boto3.client("qldb", **aws_kwargs(server.aws_url)).create_ledger(Name=LEDGER, PermissionsMode="STANDARD")
    setup = QldbDriver(LEDGER, **aws_kwargs(server.aws_url))
    setup.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Events"))
    setup.close()

    acknowledged = []
    enough = threading.Event()
    stopped = threading.Event()

    def writer():
        driver = QldbDriver(
            LEDGER, retry_config=RetryConfig(retry_limit=0),
            config=Config(retries={"max_attempts": 0}, connect_timeout=2, read_timeout=10),
            **aws_kwargs(server.aws_url))
        n = 0
        try:
            while not stopped.is_set():
                driver.execute_lambda(lambda txn, n=n: [
                    txn.execute_statement("INSERT INTO Events ?", {"n": n, "part": part})
                    for part in range(DOCUMENTS_PER_TRANSACTION)])
                acknowledged.append(n)
                n += 1
                if len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL:
                    enough.set()
        except Exception:  # noqa: BLE001 - the server was killed under us: expected
            pass
        finally:
            enough.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    assert enough.wait(120), "the writer made no progress"
    server.kill()  # SIGKILL while the writer keeps committing
    stopped.set()
    thread.join(60)
    assert not thread.is_alive()
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL

    restarted = sluice_factory(data_dir)
    verify = subprocess.run(
        [str(BINARY), "ledger", "verify", LEDGER, "--endpoint", restarted.aws_url],
        capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stderr
    assert "verified" in verify.stdout

    driver = QldbDriver(LEDGER, **aws_kwargs(restarted.aws_url))
    rows = driver.execute_lambda(lambda txn: [(row["n"], row["part"]) for row in
                                              txn.execute_statement("SELECT n, part FROM Events")])
    driver.close()
    parts_by_transaction = collections.defaultdict(list)
    for n, part in rows:
        parts_by_transaction[n].append(part)
    for n in acknowledged:
        assert sorted(parts_by_transaction[n]) == list(range(DOCUMENTS_PER_TRANSACTION)), f"transaction {n}"
    for n, parts in parts_by_transaction.items():
        assert sorted(parts) == list(range(DOCUMENTS_PER_TRANSACTION)), f"transaction {n} is there in part"
    # At most the one transaction in flight at the kill committed without being acknowledged.
    assert len(parts_by_transaction) - len(acknowledged) in (0, 1)


CONCURRENT_WRITERS = 8
CONCURRENT_ACKNOWLEDGED_BEFORE_KILL = 80


def test_kill_9_during_concurrent_sessions_keeps_every_acknowledged_transaction_whole(sluice_factory, tmp_path):
    """Many pyqldb sessions commit at once, so their commits share journal appends (group
    commit); after a kill -9 and a restart, the chain verifies on the client, every acknowledged
    transaction is there whole and in one block, and unacknowledged ones are whole or absent."""
    data_dir = tmp_path / "concurrent-crash-data"
    server = sluice_factory(data_dir)
    boto3.client("qldb", **aws_kwargs(server.aws_url)).create_ledger(Name=LEDGER, PermissionsMode="STANDARD")
    setup = QldbDriver(LEDGER, **aws_kwargs(server.aws_url))
    setup.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE Events"))
    setup.close()

    acknowledged = []  # (writer, n, [document ids])
    lock = threading.Lock()
    enough = threading.Event()
    stopped = threading.Event()

    def writer(writer_id):
        driver = QldbDriver(
            LEDGER, retry_config=RetryConfig(retry_limit=0),
            config=Config(retries={"max_attempts": 0}, connect_timeout=2, read_timeout=10),
            **aws_kwargs(server.aws_url))
        n = 0
        try:
            while not stopped.is_set():
                ids = driver.execute_lambda(lambda txn, n=n: [
                    list(txn.execute_statement("INSERT INTO Events ?",
                                               {"writer": writer_id, "n": n, "part": part}))[0]["documentId"]
                    for part in range(DOCUMENTS_PER_TRANSACTION)])
                with lock:
                    acknowledged.append((writer_id, n, ids))
                    if len(acknowledged) >= CONCURRENT_ACKNOWLEDGED_BEFORE_KILL:
                        enough.set()
                n += 1
        except Exception:  # noqa: BLE001 - the server was killed under us: expected
            pass

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(CONCURRENT_WRITERS)]
    for thread in threads:
        thread.start()
    assert enough.wait(180), "the writers made no progress"
    server.kill()  # SIGKILL while every writer keeps committing
    stopped.set()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()

    restarted = sluice_factory(data_dir)
    verify = subprocess.run(
        [str(BINARY), "ledger", "verify", LEDGER, "--endpoint", restarted.aws_url],
        capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stderr
    assert "verified" in verify.stdout

    driver = QldbDriver(LEDGER, **aws_kwargs(restarted.aws_url))
    rows = driver.execute_lambda(lambda txn: [
        (row["id"], row["writer"], row["n"], row["part"], row["block"]) for row in txn.execute_statement(
            "SELECT r.metadata.id AS id, r.data.writer AS writer, r.data.n AS n, r.data.part AS part, "
            "r.blockAddress.sequenceNo AS block FROM _ql_committed_Events AS r")])
    driver.close()
    transactions = collections.defaultdict(list)
    for document_id, writer_id, n, part, block in rows:
        transactions[(writer_id, n)].append((document_id, part, block))
    for writer_id, n, ids in acknowledged:
        present = transactions[(writer_id, n)]
        assert sorted(document_id for document_id, _, _ in present) == sorted(ids), f"transaction {writer_id}/{n}"
    for key, documents in transactions.items():
        assert sorted(part for _, part, _ in documents) == list(range(DOCUMENTS_PER_TRANSACTION)), \
            f"transaction {key} is there in part"
        assert len({block for _, _, block in documents}) == 1, f"transaction {key} spans blocks"
    # At most one transaction per writer was in flight at the kill.
    assert len(transactions) - len(acknowledged) in range(CONCURRENT_WRITERS + 1)
