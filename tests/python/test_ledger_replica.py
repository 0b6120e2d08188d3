"""Ledger replicas against the real binary: a ledger declared in `--config`'s `ledger_replicas`
is replayed into its target while pyqldb inserts, updates and deletes across three tables; the
server is killed with kill -9 in the middle and restarted; afterwards every table's data in the
replica equal the source's, and the lag metric says so."""

import json
import re
import time
import urllib.request

from pyqldb.config.retry_config import RetryConfig
from pyqldb.driver.qldb_driver import QldbDriver

from conftest import aws_client, kill_9_while_writing
from test_ledger_replica_stream import workload

# Generous bound for the replica to catch up; a healthy run takes well under a second.
CATCH_UP_BOUND_S = 60
TABLES = ["Vehicle", "Person", "Registration"]


def driver(server, ledger, **kwargs):
    return QldbDriver(ledger, endpoint_url=server.aws_url, region_name="us-east-1",
                      aws_access_key_id="x", aws_secret_access_key="x", **kwargs)


def replica_lag(server):
    text = urllib.request.urlopen(server.aws_url + "/metrics", timeout=10).read().decode()
    match = re.search(r'^sluice_ledger_replica_lag_blocks\{source="shop",target="shop-replica"\} (\d+)$',
                      text, re.MULTILINE)
    return int(match.group(1)) if match else None


def wait_for_no_lag(server):
    deadline = time.monotonic() + CATCH_UP_BOUND_S
    while replica_lag(server) != 0:
        assert time.monotonic() < deadline, "the replica did not catch up"
        time.sleep(0.05)


def table_data(qldb, table):
    rows = qldb.execute_lambda(lambda txn: list(txn.execute_statement(f"SELECT * FROM {table}")))
    return sorted(json.dumps(row, sort_keys=True, default=str) for row in rows)


def test_replica_equals_source_after_kill_9(sluice_factory, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"ledger_replicas": [{"source": "shop", "target": "shop-replica"}]}))
    data_dir = tmp_path / "data"
    server = sluice_factory(data_dir, ["--config", str(config)])
    aws_client(server, "qldb").create_ledger(Name="shop", PermissionsMode="STANDARD", DeletionProtection=False)
    setup = driver(server, "shop")
    for table in TABLES:
        setup.execute_lambda(lambda txn, table=table: txn.execute_statement(f"CREATE TABLE {table}"))
    setup.close()

    qldb = driver(server, "shop", retry_config=RetryConfig(retry_limit=0))
    kill_9_while_writing(server, lambda n: workload(qldb, n), 61, CATCH_UP_BOUND_S)

    server = sluice_factory(data_dir, ["--config", str(config)])
    qldb = driver(server, "shop")
    qldb.execute_lambda(lambda txn: txn.execute_statement("DELETE FROM Vehicle WHERE VIN = 'V0'"))
    qldb.execute_lambda(lambda txn: txn.execute_statement("INSERT INTO Person ?", {"PersonId": "last"}))
    wait_for_no_lag(server)
    replica = driver(server, "shop-replica")
    for table in TABLES:
        source_rows = table_data(qldb, table)
        assert source_rows, f"{table} is empty in the source"
        assert table_data(replica, table) == source_rows, f"{table} differs"
